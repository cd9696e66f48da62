// Resolving the remote settings is config's job (config/ may not import remote/); re-exported here
// so that remote/ keeps its imports. New code imports from config/remote.js.
export { DEFAULT_REMOTE_TIMEOUT_MS, type RemoteSettings, resolveRemote } from '../config/remote.js';
