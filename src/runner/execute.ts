import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import type { TaskSpec } from '../config/resolve.js';
import type { StreamId } from '../store/entry.js';
import { monotonicMs } from '../util/monotonic.js';
import { passedThrough } from '../util/term.js';
import { mark } from '../util/trace.js';
import { loadExeca } from '../util/vendor.js';
import { descendants, signalAll, signalReachedChild } from './process-tree.js';
import { noteCommandStarted } from './started.js';
import { childStdin, feedChild } from './stdin.js';

export interface Execution {
  exitCode: number;
  /** Set when the child was killed by a signal. */
  signal?: NodeJS.Signals;
  /** True when TaskVault received SIGINT/SIGTERM/SIGHUP during the run (never cached). */
  interrupted: boolean;
  durationMs: number;
  /** Set when the command could not be started at all (e.g. not found). */
  spawnError?: string;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
/**
 * What a terminal sends on Ctrl-C and Ctrl-\ to its whole foreground process group, the command
 * (which stays in TaskVault's group) included: passed on only when it did not reach the command too
 * (signalReachedChild), or a command that takes a second Ctrl-C for "quit now" would skip its
 * clean-up. The others are always passed on.
 */
const GROUP_SIGNALS = new Set<NodeJS.Signals>(['SIGINT', 'SIGQUIT']);

/** Exit code a shell reports for a child killed by `signal`. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 1);
}

/**
 * Runs the command with stdin as prepared (stdin.ts: inherited by default) and stdout/stderr piped, passing every chunk to the
 * terminal (unchanged) and to `onChunk` (for capture) in arrival order. Signals TaskVault receives
 * are forwarded to the child, but for a Ctrl-C or Ctrl-\ that reached it already (GROUP_SIGNALS);
 * TaskVault exits only after the child does.
 * execa is imported lazily so that the hit path never loads it.
 */
export async function execute(
  spec: TaskSpec,
  onChunk: (stream: StreamId, chunk: Uint8Array) => void,
  cancel?: AbortSignal,
): Promise<Execution> {
  const { execa } = await loadExeca();
  mark('load execa');
  const started = monotonicMs();
  const [file, ...args] = spec.command as [string, ...string[]];
  const child = execa(file, args, {
    cwd: spec.cwd,
    shell: spec.shell,
    // Inherited, unless the run read it first to key it (stdin.ts): then fed what was read.
    stdin: childStdin(),
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    encoding: 'buffer',
    stripFinalNewline: false,
    // The child is ours to stop, but only by forwarding what we receive.
    cleanup: true,
    forceKillAfterDelay: false,
  });
  const stopFeeding = feedChild(child.stdin);
  noteCommandStarted();

  let interrupted = false;
  const forward = (signal: NodeJS.Signals) => {
    interrupted = true;
    const pid = child.pid;
    if (!GROUP_SIGNALS.has(signal) || pid === undefined) child.kill(signal);
    else void signalReachedChild(pid).then((reached) => reached || child.kill(signal));
  };
  for (const s of FORWARDED) process.on(s, forward);
  // Cancellation (watch --restart): SIGTERM the child and everything below it (a shell's own
  // children would otherwise keep running and hold the output pipes open). The run counts as
  // interrupted, so it is never cached.
  const onCancel = () => {
    interrupted = true;
    const below = child.pid === undefined ? Promise.resolve([]) : descendants(child.pid);
    void below.then((pids) => {
      child.kill('SIGTERM');
      signalAll(pids, 'SIGTERM');
    });
  };
  if (cancel?.aborted) onCancel();
  else cancel?.addEventListener('abort', onCancel, { once: true });

  const pump = (
    stream: StreamId,
    source: (NodeJS.ReadableStream & { destroy(): void }) | null,
    sink: NodeJS.WriteStream,
  ) =>
    new Promise<void>((resolve) => {
      if (!source) return resolve();
      let closed = false;
      // Our stdout closed early (`taskvault run -- cmd | head -1`): the child gets SIGPIPE, just as
      // it would have on its next write without TaskVault in between.
      const onSinkError = () => {
        closed = true;
        child.kill('SIGPIPE');
        source.destroy();
        resolve();
      };
      sink.once('error', onSinkError);
      source.on('data', (chunk: Buffer) => {
        if (closed) return;
        onChunk(stream, chunk);
        passedThrough(stream, chunk);
        // Backpressure: a slow terminal or pipe pauses the child rather than filling memory.
        if (!sink.write(chunk)) {
          source.pause();
          sink.once('drain', () => source.resume());
        }
      });
      const done = () => {
        sink.off('error', onSinkError);
        resolve();
      };
      source.on('end', done);
      source.on('close', done);
      source.on('error', done);
    });

  const pumps = Promise.all([pump(1, child.stdout, process.stdout), pump(2, child.stderr, process.stderr)]);
  const result = await child;
  stopFeeding();
  await pumps;
  for (const s of FORWARDED) process.off(s, forward);
  cancel?.removeEventListener('abort', onCancel);

  const durationMs = monotonicMs() - started;
  const signal = result.signal as NodeJS.Signals | undefined;
  if (result.failed && result.exitCode === undefined && !signal) {
    const code = (result.cause as NodeJS.ErrnoException | undefined)?.code;
    return {
      exitCode: code === 'ENOENT' ? 127 : code === 'EACCES' ? 126 : 1,
      interrupted,
      durationMs,
      spawnError: spawnErrorLine(file, spec.cwd, code, result.shortMessage ?? String(result.cause)),
    };
  }
  const execution: Execution = {
    exitCode: signal ? signalExitCode(signal) : (result.exitCode ?? 1),
    interrupted,
    durationMs,
  };
  if (signal) execution.signal = signal;
  return execution;
}

/** One line (execa's message spans several) saying what could not start and why. */
function spawnErrorLine(file: string, cwd: string, code: string | undefined, message: string): string {
  if (code === 'ENOENT')
    return existsSync(cwd) ? `command not found: ${file}` : `working directory does not exist: ${cwd}`;
  if (code === 'EACCES') return `permission denied: ${file} (is it executable?)`;
  const line = message.split('\n').find((l) => l.trim() !== '') ?? message;
  return `cannot start ${file}: ${line}`;
}
