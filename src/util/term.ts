/** Messages from TaskVault itself: always on stderr, coloured only on a TTY without NO_COLOR. */

const useColor = (): boolean =>
  process.stderr.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb';

const paint = (code: string) => (s: string) => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const color = {
  dim: paint('2'),
  bold: paint('1'),
  red: paint('31'),
  green: paint('32'),
  yellow: paint('33'),
  cyan: paint('36'),
};

const PREFIX = 'taskvault:';

/**
 * Whether the command's own output (run, or replayed from the cache) left our stderr, or the
 * terminal both streams share, in the middle of a line. TaskVault's next line then starts on a
 * line of its own, so that it is never glued to the command's last one; except with `--json`,
 * whose reader (the Python SDK's run()) takes the summary off the last line to give back the
 * command's stderr byte for byte.
 */
const midLine = { 1: false, 2: false };
let lastStream: 1 | 2 = 2;
/** Set for `--json`: a program reads stderr, and must get the command's bytes exactly. */
let exact = false;

/** No line break of TaskVault's own goes between the command's output and TaskVault's lines. */
export function keepOutputExact(): void {
  exact = true;
}

/** Notes bytes of the command's output written to our stdout (1) or stderr (2). */
export function passedThrough(stream: 1 | 2, chunk: Uint8Array): void {
  if (chunk.byteLength === 0) return;
  midLine[stream] = chunk[chunk.byteLength - 1] !== 0x0a;
  lastStream = stream;
}

/** A line of TaskVault's own for stderr, after a line break if the command's output ended mid-line. */
export function ownLine(text: string): string {
  const shared = process.stdout.isTTY === true && process.stderr.isTTY === true;
  const broken = !exact && (midLine[2] || (shared && lastStream === 1 && midLine[1]));
  midLine[1] = midLine[2] = false;
  return `${broken ? '\n' : ''}${text}\n`;
}

export function warn(message: string): void {
  process.stderr.write(ownLine(`${color.yellow(PREFIX)} warning: ${message}`));
}

export function info(message: string): void {
  process.stderr.write(ownLine(`${color.dim(PREFIX)} ${message}`));
}

export function errorLine(message: string, hint?: string): void {
  process.stderr.write(ownLine(`${color.red(PREFIX)} error: ${message}${hint ? ` (${hint})` : ''}`));
}
