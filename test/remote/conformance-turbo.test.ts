/**
 * The backend conformance suite against the `turborepo-remote-cache` npm package (Turborepo's
 * remote cache API, local storage), each namespace of the suite being a team of that server.
 */
import { startTurboServer, TURBO_TOKEN } from '../support/team-servers.js';
import { conformance } from './conformance.js';

const WRONG = 'not-the-turbo-token-4b2d';

conformance({
  name: 'Turborepo API (turborepo-remote-cache)',
  wrongCredentials: /HTTP 401.*Turborepo token was refused/,
  wrongSecret: WRONG,
  async start() {
    const turbo = await startTurboServer();
    return {
      remote: ({ prefix, base, timeoutMs, wrongCredentials }) => ({
        settings: {
          url: base ?? turbo.url,
          protocol: 'turbo',
          team: prefix,
          token: wrongCredentials ? WRONG : TURBO_TOKEN,
          readOnly: false,
          timeoutMs,
        },
        env: {},
      }),
      // The url form with the API in its scheme, the team and token from the environment.
      cli: (prefix, base) => ({
        config: { remote: { url: `turbo+${base ?? turbo.url}` } },
        env: { TASKVAULT_REMOTE_TOKEN: TURBO_TOKEN, TASKVAULT_REMOTE_TEAM: prefix },
      }),
      stop: () => turbo.stop(),
    };
  },
});
