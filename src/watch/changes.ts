export type ChangeKind = 'add' | 'change' | 'unlink';

export interface Change {
  /** Absolute path. */
  path: string;
  kind: ChangeKind;
}

/**
 * The net file changes since the last run. Folding events per path makes an editor's atomic save
 * (write a temp file, rename it over the original) one change to the original and nothing for the
 * temp file, which appeared and vanished within the same burst.
 */
export class ChangeSet {
  private readonly byPath = new Map<string, ChangeKind>();

  record(kind: ChangeKind, path: string): void {
    const before = this.byPath.get(path);
    if (before === 'add' && kind === 'unlink') this.byPath.delete(path);
    else if (before === 'unlink' && kind === 'add') this.byPath.set(path, 'change');
    else if (before === 'add' && kind === 'change') return;
    else this.byPath.set(path, kind);
  }

  /** Puts back changes no run has seen yet (the config was broken); newer events on a path win. */
  putBack(changes: Change[]): void {
    for (const c of changes) if (!this.byPath.has(c.path)) this.byPath.set(c.path, c.kind);
  }

  get size(): number {
    return this.byPath.size;
  }

  /** Returns the changes sorted by path and starts a new set. */
  take(): Change[] {
    const out = [...this.byPath].map(([path, kind]) => ({ path, kind }));
    this.byPath.clear();
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}
