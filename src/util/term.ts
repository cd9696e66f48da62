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

export function warn(message: string): void {
  process.stderr.write(`${color.yellow(PREFIX)} warning: ${message}\n`);
}

export function info(message: string): void {
  process.stderr.write(`${color.dim(PREFIX)} ${message}\n`);
}

export function errorLine(message: string, hint?: string): void {
  process.stderr.write(`${color.red(PREFIX)} error: ${message}${hint ? ` (${hint})` : ''}\n`);
}
