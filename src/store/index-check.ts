import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';

/*
 * lmdb maps data.mdb and trusts what it finds: garbage in its meta pages or in a root page makes it
 * crash the whole process (SIGSEGV, SIGBUS) or print raw C diagnostics, and a crash after the
 * wrapped command has run would lose its exit code. So those pages are checked here, in JS, before
 * lmdb sees them. Layout (lmdb-js's LMDB): every page starts with a 24-byte header
 *   pgno u64 @0, txnid u64 @8, pad u16 @16, flags u16 @18, lower/upper u16 @20
 * and pages 0 and 1 are meta pages: magic u32 @24, version u32 @28, then two 48-byte db records
 * (free db @48, main db @96; page size in the free db's first u32, root page u64 @40 of each),
 * last used page u64 @144, txnid u64 @152. Only pages in use are checked: a freed page may hold
 * any stale bytes (the tail of an old overflow run, say), so a scan of every page would misjudge.
 */

const MAGIC = 0xbeefc0de;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
const P_META = 0x08;
/** Only in sub-pages of duplicate-key databases, which the store does not use. */
const P_LEAF2 = 0x20;

/** Marks an empty database in its root field. */
const NO_PAGE = 0xffffffffffffffffn;

/**
 * Why the LMDB environment in `dir` must not be opened, or undefined when it looks sound (or does
 * not exist yet). Reads the two meta pages and the headers of the two root pages they name: a few
 * hundred bytes. Damage deeper in the tree is left to lmdb, which mostly reports it as an error.
 */
export function indexDamage(dir: string): string | undefined {
  // A data.mdb that another process is creating right now looks damaged for a moment (lmdb writes
  // its meta pages under its own lock, which JS cannot take): only damage that stays counts.
  let damage: string | undefined;
  for (const ms of [0, 50, 250]) {
    if (ms) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    damage = checkFile(dir);
    if (damage === undefined) return undefined;
  }
  return damage;
}

function checkFile(dir: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(join(dir, 'data.mdb'), 'r');
  } catch {
    return undefined; // no index yet (or unreadable: lmdb will say so itself)
  }
  try {
    return check(fd);
  } catch {
    return undefined; // a read error: lmdb meets it too, and reports it
  } finally {
    closeSync(fd);
  }
}

/**
 * The offsets above are those of 64-bit little-endian builds; elsewhere (32-bit ARM prebuilds, a
 * big-endian source build) page headers differ, and a sound index would be judged damaged.
 */
const LAYOUT_KNOWN = (process.arch === 'x64' || process.arch === 'arm64') && endianness() === 'LE';

function check(fd: number): string | undefined {
  if (!LAYOUT_KNOWN) return undefined;
  const size = fstatSync(fd).size;
  if (size === 0) return undefined; // created but never written: lmdb initialises it
  const head = Buffer.alloc(160);
  const read = (pos: number) => readSync(fd, head, 0, head.length, pos) === head.length;
  if (!read(0)) return 'data.mdb is truncated';
  const pageSize = head.readUInt32LE(48);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0 || size < 2 * pageSize)
    return 'its first meta page is invalid';
  // lmdb reads the meta page with the higher txnid, but both must be meta pages.
  let roots: bigint[] = [];
  let txnid = -1n;
  for (const n of [0, 1]) {
    if (!read(n * pageSize)) return 'data.mdb is truncated';
    if ((head.readUInt16LE(18) & P_META) === 0 || head.readUInt32LE(24) !== MAGIC)
      return `meta page ${n} is invalid`;
    const t = head.readBigUInt64LE(152);
    if (t >= txnid) {
      txnid = t;
      roots = [head.readBigUInt64LE(48 + 40), head.readBigUInt64LE(96 + 40)];
    }
  }
  const pages = BigInt(Math.floor(size / pageSize));
  for (const root of roots) {
    if (root === NO_PAGE) continue;
    if (root < 2n || root >= pages) return `its meta page names root page ${root} of ${pages}`;
    if (!read(Number(root) * pageSize)) return 'data.mdb is truncated';
    // lmdb trusts these bits to decide how to read the page: exactly one of branch, leaf, overflow.
    const kind = head.readUInt16LE(18) & (P_BRANCH | P_LEAF | P_OVERFLOW | P_META | P_LEAF2);
    if (head.readBigUInt64LE(0) !== root || (kind !== P_BRANCH && kind !== P_LEAF && kind !== P_OVERFLOW))
      return `root page ${root} has a damaged header`;
  }
  return undefined;
}
