/** The backend conformance suite against Azurite (Azure Blob Storage's emulator, from npm). */
import { AZURITE_ACCOUNT, startAzurite } from '../support/team-servers.js';
import { conformance } from './conformance.js';

const CONTAINER = 'team-cache';
const WRONG_KEY = Buffer.from('not-the-account-key-5a7c').toString('base64');

conformance({
  name: 'Azure Blob (Azurite)',
  // Azure says AuthenticationFailed; Azurite says AuthorizationFailure.
  wrongCredentials: /HTTP 403 \((AuthenticationFailed|AuthorizationFailure)\)/,
  wrongSecret: WRONG_KEY,
  async start() {
    const az = await startAzurite();
    await az.createContainer(CONTAINER);
    return {
      // SharedKey from the connection string Azure's tools take; `base` moves the endpoint.
      remote: ({ prefix, base, timeoutMs, wrongCredentials }) => ({
        settings: {
          url: `azure://${AZURITE_ACCOUNT}/${CONTAINER}/${prefix}`,
          endpoint: base ? `${base}/${AZURITE_ACCOUNT}` : az.endpoint,
          readOnly: false,
          timeoutMs,
        },
        env: wrongCredentials
          ? { AZURE_STORAGE_KEY: WRONG_KEY }
          : { AZURE_STORAGE_CONNECTION_STRING: az.connectionString },
      }),
      cli: (prefix, base) => ({
        config: {
          remote: {
            url: `azure://${AZURITE_ACCOUNT}/${CONTAINER}/${prefix}`,
            ...(base ? { endpoint: `${base}/${AZURITE_ACCOUNT}` } : {}),
          },
        },
        env: { AZURE_STORAGE_CONNECTION_STRING: az.connectionString },
      }),
      stop: () => az.stop(),
    };
  },
});
