import type { CAC } from 'cac';
import { resolveTask, taskLabel } from '../config/resolve.js';
import { argvText, describeChange } from '../fingerprint/diff.js';
import type { Fingerprint } from '../fingerprint/fingerprint.js';
import { type Explanation, explainTask } from '../runner/explain.js';
import type { Entry } from '../store/entry.js';
import { formatBytes, formatDuration } from '../util/format.js';
import type { Failure } from '../util/result.js';
import { action, settingsFor, writeJson } from './shared.js';
import { type RunFlags, taskFlags, withTaskOptions } from './task-flags.js';

/** How many input files the human output lists before summarising (--json has them all). */
const SHOWN_INPUTS = 20;

export function registerExplain(cli: CAC): void {
  withTaskOptions(
    cli.command('explain [task]', 'Show the key a run would use and why it would hit or miss; runs nothing'),
  )
    .usage('explain [TASK] [options] -- <cmd> [args...]')
    // The policy flags of `run` change the verdict (an entry past --ttl would miss), so they apply here too.
    .option('--ttl <duration>', "Override the policy's TTL, e.g. 2h, 7d")
    .option('--max-entry-size <size>', "Override the policy's per-entry size limit, e.g. 500MB")
    .example('taskvault explain build')
    .example('taskvault explain --inputs "src/**" --env NODE_ENV -- tsc -p .')
    .action(action(explain));
}

async function explain(task: string | undefined, flags: RunFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  const spec = resolveTask(settings, task, flags['--'] ?? [], taskFlags(flags));
  // resolveTask's usage hint is written for `run`; explain takes the same arguments.
  if (!spec.ok)
    return spec.error.hint
      ? { ...spec.error, hint: spec.error.hint.replace('taskvault run ', 'taskvault explain ') }
      : spec.error;
  const explained = await explainTask(settings, spec.value);
  if (!explained.ok) return explained.error;
  const e = explained.value;
  if (flags.json) writeJson(e);
  else process.stdout.write(explainText(e, taskLabel(spec.value)));
  return 0;
}

export function explainText(e: Explanation, label: string, now = Date.now()): string {
  const lines = [`${label}  key ${e.key.slice(0, 12)}`, ...fingerprintLines(e.fingerprint), ''];
  if (e.status === 'hit' && e.entry) {
    lines.push(`would hit: ${entrySummary(e.entry, now)}`);
    const files = e.entry.outputs.filter((o) => o.type === 'file').length;
    lines.push(
      `  restores ${files} file${files === 1 ? '' : 's'}, exit code ${e.entry.exitCode}; ${e.hits ?? 0} hit${e.hits === 1 ? '' : 's'} so far${
        e.hits && e.lastAccess ? `, last ${ago(e.lastAccess, now)}` : ''
      }`,
    );
  } else if (e.status === 'expired' && e.entry) {
    lines.push(`would miss: the entry for this exact state expired (${entrySummary(e.entry, now)})`);
  } else if (!e.previous) {
    lines.push(
      'would miss: no earlier entry of this task is in the cache, so there is nothing to compare with',
    );
  } else if (!e.previous.fingerprint) {
    lines.push(
      `would miss: the most recent entry of this task (${e.previous.key.slice(0, 12)}) is no longer in the cache (evicted or removed)`,
    );
  } else {
    const n = e.previous.changes.length;
    const prev = e.previous.entry ? entrySummary(e.previous.entry, now) : `${e.previous.key.slice(0, 12)}`;
    lines.push(
      `would miss: ${n} difference${n === 1 ? '' : 's'} from the most recent entry of this task (${prev}):`,
    );
    for (const c of e.previous.changes) lines.push(`  ${describeChange(c)}`);
  }
  return `${lines.join('\n')}\n`;
}

function fingerprintLines(fp: Fingerprint): string[] {
  const rows: Array<[string, string]> = [
    ['command', `${argvText(fp.argv)}${fp.shell ? '  (through the shell)' : ''}`],
    ['cwd', fp.cwd || '.'],
    ['algorithm', fp.algorithm],
  ];
  const env = Object.entries(fp.env);
  if (env.length)
    rows.push(['env', env.map(([k, v]) => `${k}=${v === null ? '(unset)' : JSON.stringify(v)}`).join(' ')]);
  rows.push(['outputs', fp.outputs.join(', ') || '(none)']);
  if (fp.salt) rows.push(['salt', JSON.stringify(fp.salt)]);
  rows.push(['inputs', `${fp.inputs.length} file${fp.inputs.length === 1 ? '' : 's'}`]);
  const out = rows.map(([k, v]) => `  ${k.padEnd(10)} ${v}`);
  for (const [path, hash, x] of fp.inputs.slice(0, SHOWN_INPUTS))
    out.push(`    ${hash.slice(0, 8)}${x ? ' x' : '  '} ${path}`);
  if (fp.inputs.length > SHOWN_INPUTS)
    out.push(`    ... and ${fp.inputs.length - SHOWN_INPUTS} more (--json lists all)`);
  return out;
}

/** "entry 3f2a9c01b2d4, created 2h ago by ada@box with taskvault 0.1.0 at commit 1a2b3c4, ran 1.52s" */
export function entrySummary(entry: Entry, now = Date.now()): string {
  const p = entry.provenance;
  const who = [p.user, p.host].filter(Boolean).join('@');
  return [
    `entry ${entry.key.slice(0, 12)}`,
    `created ${ago(entry.createdAt, now)}${who ? ` by ${who}` : ''} with taskvault ${p.version}${
      p.gitCommit ? ` at commit ${p.gitCommit.slice(0, 7)}` : ''
    }${p.origin === 'remote' ? ' (from the remote cache)' : ''}`,
    `ran ${formatDuration(entry.durationMs)}`,
    formatBytes(entry.bytes),
  ].join(', ');
}

export const ago = (t: number, now = Date.now()): string => `${formatDuration(Math.max(0, now - t))} ago`;
