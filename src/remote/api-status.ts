import type { IncomingMessage } from 'node:http';
import { problem, type RemoteProblem } from './backend.js';
import { readAll, redact, statusProblem } from './transport.js';

type Failure = { ok: false; problem: RemoteProblem };

/**
 * Refusals of the token-based cache APIs (Turborepo, Nx), said so a user knows what to fix: the
 * server's own text (it is written for the CLI user in both APIs) plus where the token comes from.
 */
export async function tokenApiProblem(
  api: string,
  method: string,
  url: URL,
  status: number,
  body: IncomingMessage,
): Promise<Failure> {
  const text = (await readAll(body, 4096).catch(() => Buffer.alloc(0))).toString().trim();
  const said = text ? ` (${oneLine(text)})` : '';
  const where = `${method} ${redact(url)}: HTTP ${status}`;
  if (status === 401 || status === 403)
    return problem({
      message: `${where}${said}: the ${api} token was refused; check TASKVAULT_REMOTE_TOKEN (or remote.token)${status === 403 ? ' and the team' : ''}`,
      retryable: false,
      stop: true,
      status,
    });
  if (status === 413)
    return problem({
      message: `${where}${said}: the server refuses a body this large (raise its upload limit)`,
      retryable: false,
      status,
    });
  return statusProblem(method, url, status, said.trim());
}

const oneLine = (s: string): string => {
  // JSON error bodies (fastify, Vercel) carry the reason in `message` or `error.message`.
  try {
    const j = JSON.parse(s) as { message?: unknown; error?: { message?: unknown } | string };
    const m = j.message ?? (typeof j.error === 'object' ? j.error?.message : j.error);
    if (typeof m === 'string') return m.slice(0, 160);
  } catch {
    // not JSON: the text is the message
  }
  return s.split('\n')[0]!.slice(0, 160);
};

/**
 * Rate limits (429): each request is retried with pauses by the caller; the third 429 in a row
 * also says stop, so the run goes on without the remote after one warning instead of one per task.
 */
export class RateLimit {
  private inARow = 0;

  note(r: Failure): Failure {
    if (r.problem.status !== 429) this.inARow = 0;
    else if (++this.inARow >= 3) r.problem.stop = true;
    return r;
  }
}
