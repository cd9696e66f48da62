/**
 * The backend conformance suite against an Nx self-hosted cache server. Nx publishes an OpenAPI
 * spec and no server, so the server is a test fixture written from that spec (support/nx-server.ts).
 */
import { startNxServer } from '../support/nx-server.js';
import { conformance } from './conformance.js';

const TOKEN = 'nx-write-token-1';
const WRONG = 'not-the-nx-token-8e1f';

conformance({
  name: 'Nx self-hosted cache API (spec fixture)',
  wrongCredentials: /HTTP 401.*Nx token was refused/,
  wrongSecret: WRONG,
  async start() {
    const nx = await startNxServer({ write: [TOKEN] });
    return {
      remote: ({ prefix, base, timeoutMs, wrongCredentials }) => ({
        settings: {
          url: `${base ?? nx.url}/${prefix}`,
          protocol: 'nx',
          token: wrongCredentials ? WRONG : TOKEN,
          readOnly: false,
          timeoutMs,
        },
        env: {},
      }),
      cli: (prefix, base) => ({
        config: { remote: { url: `nx+${base ?? nx.url}/${prefix}` } },
        env: { TASKVAULT_REMOTE_TOKEN: TOKEN },
      }),
      stop: () => nx.stop(),
    };
  },
});
