import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

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

/** A process's group and its terminal's foreground group (-1: it has no terminal). */
interface Groups {
  pgrp: number;
  tpgid: number;
}

/** From /proc (Linux): fields 5 and 8 of /proc/<pid>/stat, counted after the command name. */
function procGroups(pid: number): Groups | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name, in parentheses, may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    const tpgid = Number(fields[5]);
    return Number.isInteger(pgrp) && Number.isInteger(tpgid) ? { pgrp, tpgid } : undefined;
  } catch {
    return undefined;
  }
}

/** From ps(1) where there is no /proc (macOS): one call for both processes. */
function psGroups(pids: number[]): Promise<Map<number, Groups>> {
  return new Promise((resolve) => {
    execFile('ps', ['-o', 'pid=,pgid=,tpgid=', '-p', pids.join(',')], (error, stdout) => {
      const found = new Map<number, Groups>();
      if (!error)
        for (const line of stdout.split('\n')) {
          const [pid, pgrp, tpgid] = line.trim().split(/\s+/).map(Number);
          if (Number.isInteger(pid) && Number.isInteger(pgrp) && Number.isInteger(tpgid))
            found.set(pid!, { pgrp: pgrp!, tpgid: tpgid! });
        }
      resolve(found);
    });
  });
}

/**
 * Whether a SIGINT or SIGQUIT this process received has, as far as can be told, reached its child
 * `pid` too, so that passing it on would deliver it twice. Node does not say who sent a signal, and
 * not even the kernel's siginfo tells a kill of this process from a kill of its process group, so
 * this is the rule (docs/guarantees.md, guarantee 10): yes when the child is in this process's group
 * and that group is the foreground group of its terminal (Ctrl-C and Ctrl-\ go to all of it) or is
 * led by this process (whoever gave it a group of its own signals the group, as a terminal would).
 * No when the child is in another group, or this process's group is neither (a `kill -INT <pid>`,
 * say), or nothing can be found out.
 */
export async function signalReachedChild(pid: number): Promise<boolean> {
  let self = procGroups(process.pid);
  let child = self && procGroups(pid);
  if (!self) {
    const found = await psGroups([process.pid, pid]);
    self = found.get(process.pid);
    child = found.get(pid);
  }
  if (!self || !child || child.pgrp !== self.pgrp) return false;
  return self.pgrp === self.tpgid || self.pgrp === process.pid;
}
