/**
 * Whether a process with this pid exists on this host. EPERM means it does, but belongs to another
 * user. A recycled pid reads as alive: callers err on the side of keeping what it might own.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
