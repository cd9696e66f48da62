/**
 * TASKVAULT_TRACE=1: one stderr line per run with the time each phase took since the last mark
 * (from process start), to see where a slow hit or miss spends its time. Off by default; a mark
 * then costs one property check.
 */
const enabled = Boolean(process.env.TASKVAULT_TRACE);
const marks: string[] = [];
const notes: string[] = [];
let last = 0;

export function mark(phase: string): void {
  if (!enabled) return;
  const now = performance.now();
  marks.push(`${phase} ${(now - last).toFixed(1)}ms`);
  last = now;
}

/** A fact for the trace line that is not a phase (which way a step went): said after the phases. */
export function note(text: string): void {
  if (enabled) notes.push(text);
}

if (enabled) {
  process.on('exit', () => {
    mark('exit');
    process.stderr.write(`taskvault: trace: ${[...marks, ...notes].join(' · ')}\n`);
  });
}
