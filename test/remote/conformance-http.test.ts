/** The backend conformance suite against nginx (WebDAV PUT, basic auth), the HTTP remote's server. */
import { NGINX_PASSWORD, NGINX_USER, startNginx } from '../support/servers.js';
import { conformance } from './conformance.js';

const WRONG = 'not-the-password-7f3a';

conformance({
  name: 'HTTP (nginx WebDAV)',
  wrongCredentials: /HTTP 401/,
  wrongSecret: WRONG,
  async start() {
    const ng = await startNginx();
    return {
      // The /basic/ location: every request of the suite is authenticated.
      remote: ({ prefix, base, timeoutMs, wrongCredentials }) => ({
        settings: {
          url: `${base ?? ng.url}/basic/${prefix}`,
          readOnly: false,
          timeoutMs,
          username: NGINX_USER,
          password: wrongCredentials ? WRONG : NGINX_PASSWORD,
        },
        env: {},
      }),
      cli: (prefix, base) => ({
        config: {},
        env: {
          TASKVAULT_REMOTE_URL: `${base ?? ng.url}/basic/${prefix}`,
          TASKVAULT_REMOTE_USER: NGINX_USER,
          TASKVAULT_REMOTE_PASSWORD: NGINX_PASSWORD,
        },
      }),
      stop: () => ng.stop(),
    };
  },
});
