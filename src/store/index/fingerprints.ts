import type { Database } from 'lmdb';
import type { Fingerprint } from '../../fingerprint/fingerprint.js';
import { background } from './writes.js';

/**
 * Fingerprints (what `explain` compares against, and `ls`'s name for anonymous entries), kept as
 * JSON text in `fingerprintText`: msgpack-packing 2,000 input tuples costs a fresh process ~5 ms
 * (its packer not yet optimised) while the command starts, JSON.stringify ~0.5 ms. Versions before
 * kept msgpack objects in `fingerprints`, which is still read and cleaned up but no longer written:
 * an older TaskVault sharing the cache dir reads only that one, and so finds no fingerprint for a
 * newer entry rather than a string it would fail on.
 */
export class Fingerprints {
  constructor(
    private readonly text: Database<string, string>,
    private readonly legacy: Database<Fingerprint, string>,
  ) {}

  get(key: string): Fingerprint | undefined {
    const text = this.text.get(key);
    return text === undefined ? this.legacy.get(key) : (JSON.parse(text) as Fingerprint);
  }

  has(key: string): boolean {
    return this.text.doesExist(key) || this.legacy.doesExist(key);
  }

  put(key: string, fingerprint: Fingerprint): Promise<boolean> {
    return this.putText(key, Fingerprints.text(fingerprint));
  }

  /** Stores a fingerprint already serialised with `Fingerprints.text`. */
  putText(key: string, text: string): Promise<boolean> {
    return this.text.put(key, text);
  }

  /** A fingerprint as it is stored. */
  static text(fingerprint: Fingerprint): string {
    return JSON.stringify(fingerprint);
  }

  remove(key: string): void {
    background(this.text.remove(key));
    background(this.legacy.remove(key));
  }

  *keys(): Iterable<string> {
    yield* this.text.getKeys();
    yield* this.legacy.getKeys();
  }
}
