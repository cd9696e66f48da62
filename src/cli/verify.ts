import type { CAC } from 'cac';
import { checkEntryPaths } from '../store/entry-paths.js';
import { corruptIndex, corruptionText, isIndexCorruption } from '../store/index-errors.js';
import { Store } from '../store/store.js';
import { type VerifyReport, verifyStore } from '../store/verify.js';
import { formatBytes } from '../util/format.js';
import type { Failure } from '../util/result.js';
import { color } from '../util/term.js';
import { action, type CommonFlags, report, settingsFor, withCommonOptions, writeJson } from './shared.js';

interface VerifyFlags extends CommonFlags {
  repair?: boolean;
}

export function registerVerify(cli: CAC): void {
  withCommonOptions(cli.command('verify', 'Check every cached entry: blobs present and intact, paths safe'))
    .option('--repair', 'Remove broken entries, corrupt blobs and leftovers of killed runs')
    .example('taskvault verify')
    .example('taskvault verify --repair')
    .action(action(verify));
}

/** Exit code: 0 if the store is sound (or was repaired), 1 if broken entries remain, 74 if the index is corrupt. */
async function verify(flags: VerifyFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  if (!Store.exists(settings.cacheDir)) {
    if (flags.json) writeJson({ entries: 0, blobs: 0, bytes: 0, broken: [], leftovers: 0 });
    else process.stdout.write(`no cache at ${settings.cacheDir}: nothing to verify\n`);
    return 0;
  }
  // Plain verify only reports a corrupt index; --repair moves it aside and rebuilds it from hot/.
  const opened = Store.open(settings.cacheDir, { repair: flags.repair === true });
  if (!opened.ok) return report(opened.error);
  let store = opened.value;
  const check = (s: Store) =>
    verifyStore(s, {
      repair: flags.repair === true,
      checkEntry: (e) => {
        const paths = checkEntryPaths(settings.root, e.outputs);
        return paths.ok ? undefined : paths.error.message;
      },
    });
  try {
    let r: VerifyReport;
    try {
      r = await check(store);
    } catch (e) {
      // Damage the open did not meet (inside a database's pages), found reading every entry.
      if (!isIndexCorruption(e)) throw e;
      if (!flags.repair) return report(corruptIndex(settings.cacheDir, corruptionText(e)));
      const rebuilt = await Store.rebuildIndex(store, corruptionText(e));
      if (!rebuilt.ok) return report(rebuilt.error);
      store = rebuilt.value;
      r = await check(store);
    }
    if (flags.json) writeJson(r);
    else {
      for (const b of r.broken)
        process.stdout.write(
          `${color.red('broken')} ${b.key.slice(0, 12)} ${b.task}: ${b.problem}${b.removed ? ' (removed)' : ''}\n`,
        );
      const removed = r.broken.filter((b) => b.removed).length;
      process.stdout.write(
        `checked ${r.entries} entr${r.entries === 1 ? 'y' : 'ies'}, ${r.blobs} blob${r.blobs === 1 ? '' : 's'} (${formatBytes(r.bytes)}): ${r.broken.length} broken` +
          (flags.repair
            ? `, ${removed} removed, ${r.leftovers} leftover file${r.leftovers === 1 ? '' : 's'} removed`
            : '') +
          (r.broken.length > 0 && !flags.repair ? " (run 'taskvault verify --repair' to remove them)" : '') +
          '\n',
      );
    }
    return r.broken.some((b) => !b.removed) ? 1 : 0;
  } finally {
    // The work is done and reported; what is left to write is bookkeeping (access times, counters).
    await store.flush().catch(() => {});
    await store.close().catch(() => {});
  }
}
