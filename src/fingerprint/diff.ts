import type { Fingerprint } from './fingerprint.js';

/**
 * One reason two fingerprints give different keys. Inputs are compared by path; everything else
 * field by field. The list is ordered: what the user most likely changed (inputs, env, argv) first.
 */
export type FingerprintChange =
  | { kind: 'input-added'; path: string }
  | { kind: 'input-removed'; path: string }
  | { kind: 'input-changed'; path: string; from: string; to: string }
  | { kind: 'input-mode'; path: string; executable: boolean }
  | { kind: 'env'; name: string; from: string | null; to: string | null }
  | { kind: 'env-declared'; name: string; declared: boolean }
  | { kind: 'argv'; from: string[]; to: string[] }
  | { kind: 'shell'; from: boolean; to: boolean }
  | { kind: 'cwd'; from: string; to: string }
  | { kind: 'outputs'; from: string[]; to: string[] }
  | { kind: 'salt'; from: string; to: string }
  | { kind: 'stdin'; from: string | null; to: string | null }
  | { kind: 'algorithm'; from: string; to: string }
  | { kind: 'schema'; from: number; to: number }
  | { kind: 'task'; from: string; to: string };

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Why `next` does not have the key of `prev`. Empty means the fingerprints are identical. When the
 * hash algorithm changed, content hashes are not comparable, so changed-content is not reported
 * (only the algorithm, and files added or removed).
 */
export function diffFingerprints(prev: Fingerprint, next: Fingerprint): FingerprintChange[] {
  const changes: FingerprintChange[] = [];
  const comparable = prev.algorithm === next.algorithm;

  const before = new Map(prev.inputs.map(([p, h, x]) => [p, { h, x }]));
  const after = new Map(next.inputs.map(([p, h, x]) => [p, { h, x }]));
  const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
  for (const path of paths) {
    const a = before.get(path);
    const b = after.get(path);
    if (!a && b) changes.push({ kind: 'input-added', path });
    else if (a && !b) changes.push({ kind: 'input-removed', path });
    else if (a && b) {
      if (comparable && a.h !== b.h) changes.push({ kind: 'input-changed', path, from: a.h, to: b.h });
      if (a.x !== b.x) changes.push({ kind: 'input-mode', path, executable: b.x });
    }
  }

  const names = [...new Set([...Object.keys(prev.env), ...Object.keys(next.env)])].sort();
  for (const name of names) {
    const inPrev = name in prev.env;
    const inNext = name in next.env;
    if (inPrev !== inNext) changes.push({ kind: 'env-declared', name, declared: inNext });
    else if (prev.env[name] !== next.env[name])
      changes.push({ kind: 'env', name, from: prev.env[name] ?? null, to: next.env[name] ?? null });
  }

  if (!sameList(prev.argv, next.argv)) changes.push({ kind: 'argv', from: prev.argv, to: next.argv });
  if (prev.shell !== next.shell) changes.push({ kind: 'shell', from: prev.shell, to: next.shell });
  if (prev.cwd !== next.cwd) changes.push({ kind: 'cwd', from: prev.cwd, to: next.cwd });
  if (!sameList(prev.outputs, next.outputs))
    changes.push({ kind: 'outputs', from: prev.outputs, to: next.outputs });
  if (prev.salt !== next.salt) changes.push({ kind: 'salt', from: prev.salt, to: next.salt });
  if ((prev.stdin ?? null) !== (next.stdin ?? null))
    changes.push({ kind: 'stdin', from: prev.stdin ?? null, to: next.stdin ?? null });
  if (!comparable) changes.push({ kind: 'algorithm', from: prev.algorithm, to: next.algorithm });
  if (prev.schema !== next.schema) changes.push({ kind: 'schema', from: prev.schema, to: next.schema });
  if (prev.task !== next.task) changes.push({ kind: 'task', from: prev.task, to: next.task });
  return changes;
}

const q = (v: string | null): string => (v === null ? '(unset)' : JSON.stringify(v));
export const argvText = (a: string[]): string =>
  a.map((x) => (/^[\w@%+=:,./-]+$/.test(x) ? x : JSON.stringify(x))).join(' ');

/** One human line per change, e.g. `input changed  src/a.ts`, `env NODE_ENV: "dev" → "prod"`. */
export function describeChange(c: FingerprintChange): string {
  switch (c.kind) {
    case 'input-added':
      return `input added      ${c.path}`;
    case 'input-removed':
      return `input removed    ${c.path}`;
    case 'input-changed':
      return `input changed    ${c.path} (${c.from.slice(0, 8)} → ${c.to.slice(0, 8)})`;
    case 'input-mode':
      return `input mode       ${c.path} (${c.executable ? 'now executable' : 'no longer executable'})`;
    case 'env':
      return `env changed      ${c.name}: ${q(c.from)} → ${q(c.to)}`;
    case 'env-declared':
      return `env ${c.declared ? 'declared  ' : 'undeclared'}   ${c.name}`;
    case 'argv':
      return `command changed  ${argvText(c.from)} → ${argvText(c.to)}`;
    case 'shell':
      return `shell changed    ${c.from ? 'through the shell' : 'argv'} → ${c.to ? 'through the shell' : 'argv'}`;
    case 'cwd':
      return `cwd changed      ${c.from || '.'} → ${c.to || '.'}`;
    case 'outputs':
      return `outputs changed  ${c.from.join(', ') || '(none)'} → ${c.to.join(', ') || '(none)'}`;
    case 'salt':
      return `salt changed     ${q(c.from)} → ${q(c.to)}`;
    case 'stdin':
      return `stdin changed    ${c.from ? c.from.slice(0, 12) : '(not keyed)'} → ${c.to ? c.to.slice(0, 12) : '(not keyed)'}`;
    case 'algorithm':
      return `algorithm        ${c.from} → ${c.to} (every content hash differs)`;
    case 'schema':
      return `key schema       ${c.from} → ${c.to} (TaskVault upgraded)`;
    case 'task':
      return `task changed     ${c.from} → ${c.to}`;
  }
}
