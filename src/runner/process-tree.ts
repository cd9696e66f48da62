import { execFile } from 'node:child_process';

/**
 * Every process below `pid`, from one `ps` snapshot (Linux and macOS). Empty when `ps` is not
 * available: callers then only reach the direct child.
 */
export function descendants(pid: number): Promise<number[]> {
  return new Promise((resolve) => {
    execFile('ps', ['-A', '-o', 'pid=,ppid='], (error, stdout) => {
      if (error) return resolve([]);
      const children = new Map<number, number[]>();
      for (const line of stdout.split('\n')) {
        const [p, pp] = line.trim().split(/\s+/).map(Number);
        if (!p || pp === undefined || Number.isNaN(pp)) continue;
        children.set(pp, [...(children.get(pp) ?? []), p]);
      }
      const found: number[] = [];
      for (let queue = [pid]; queue.length > 0; ) {
        const next = children.get(queue.shift()!) ?? [];
        found.push(...next);
        queue.push(...next);
      }
      resolve(found);
    });
  });
}

/** Sends `signal` to each pid that still exists. */
export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {
      // Already gone.
    }
  }
}
