import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { done, problem, type RemoteProblem, type RemoteResult } from './backend.js';
import { discard, readAll, redact, statusProblem } from './transport.js';
import { isPermanent } from './wire.js';

// What a GET or HEAD reply means is the same for every backend of the /ac + /cas layout; only how
// a request is sent (auth, signing) and how an error body reads differ. These turn replies into
// results so each backend file only builds requests.

/** Remote entries are small JSON documents; anything bigger is not ours. */
export const MAX_ENTRY_BYTES = 64 * 1024 * 1024;

type Sent = RemoteResult<{ status: number; body: IncomingMessage }>;
type Failure = { ok: false; problem: RemoteProblem };

/** Turns an unexpected status into a problem; S3 overrides it to quote its XML error code. */
export type OnStatus = (
  method: string,
  url: URL,
  status: number,
  body: IncomingMessage,
) => Promise<Failure> | Failure;

export const plainStatus: OnStatus = (method, url, status, body) => {
  discard(body);
  return statusProblem(method, url, status);
};

const bodyProblem = (method: string, url: URL, e: unknown): Failure =>
  problem({ message: `${method} ${redact(url)}: ${(e as Error).message}`, retryable: !isPermanent(e) });

/** GET /ac/<key>: 200 → the entry's bytes, 404 → undefined. */
export async function entryReply(
  url: URL,
  r: Sent,
  onStatus = plainStatus,
): Promise<RemoteResult<Buffer | undefined>> {
  if (!r.ok) return r;
  const { status, body } = r.value;
  if (status === 404) {
    discard(body);
    return done(undefined);
  }
  if (status !== 200) return onStatus('GET', url, status, body);
  try {
    return done(await readAll(body, MAX_ENTRY_BYTES));
  } catch (e) {
    return bodyProblem('GET', url, e);
  }
}

/** HEAD /cas/<key>: 200 → true, 404 → false. */
export function existsReply(url: URL, r: Sent): RemoteResult<boolean> {
  if (!r.ok) return r;
  discard(r.value.body);
  if (r.value.status === 200) return done(true);
  if (r.value.status === 404) return done(false);
  return statusProblem('HEAD', url, r.value.status);
}

/** GET /cas/<key>: 200 → the body handed to `consume` (true), 404 → false. */
export async function blobReply(
  url: URL,
  r: Sent,
  consume: (body: Readable) => Promise<void>,
  onStatus = plainStatus,
): Promise<RemoteResult<boolean>> {
  if (!r.ok) return r;
  const { status, body } = r.value;
  if (status === 404) {
    discard(body);
    return done(false);
  }
  if (status !== 200) return onStatus('GET', url, status, body);
  try {
    await consume(body);
    return done(true);
  } catch (e) {
    body.destroy();
    return bodyProblem('GET', url, e);
  }
}
