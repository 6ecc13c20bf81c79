/**
 * Synced range watchers, indexed for the one question every applied event asks: whose range holds
 * this key? etcd keeps an interval tree for it; a scan of every range watcher per event (what this
 * replaces) costs O(watchers) per event, so 1,000 prefix watchers slowed every put.
 *
 * Three kinds, each answered in time that depends on the matches, not on the number of watchers:
 *
 * - prefix watchers (`--prefix`: [p, prefixEnd(p)), the common case) by prefix: an event key of
 *   length L is looked up once per distinct prefix length in use, at most L lookups;
 * - from-key watchers ([k, "\0"): every key ≥ k) sorted by k: those at or before the event key;
 * - any other range: scanned (rare: an explicit range end).
 */
import { compareBytes, keyId, prefixRangeEnd } from "../bytes.ts";

/** A watcher as the index sees it: its range and whether a key falls in it. */
export interface RangeWatcher {
  readonly key: Uint8Array;
  /** [0]: every key from `key`. Otherwise the exclusive end. */
  readonly end: Uint8Array;
  matches(key: Uint8Array): boolean;
}

type Kind = "prefix" | "from" | "range";

function kindOf(w: RangeWatcher): Kind {
  if (w.end.length === 1 && w.end[0] === 0) return "from";
  if (w.key.length > 0 && compareBytes(w.end, prefixRangeEnd(w.key)) === 0) return "prefix";
  return "range";
}

/** The index of synced range watchers (single-key watchers live in a map of their own). */
export class RangeWatchers<W extends RangeWatcher> {
  #prefixes = new Map<string, Set<W>>();
  /** Watchers per prefix length, and the lengths in use, ascending. */
  #lengthCounts = new Map<number, number>();
  #lengths: number[] = [];
  /** From-key watchers, sorted by key. */
  #from: W[] = [];
  #ranges = new Set<W>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(w: W): void {
    switch (kindOf(w)) {
      case "prefix": {
        const id = keyId(w.key);
        let set = this.#prefixes.get(id);
        if (set === undefined) {
          set = new Set();
          this.#prefixes.set(id, set);
        }
        if (set.has(w)) return;
        set.add(w);
        const n = this.#lengthCounts.get(w.key.length) ?? 0;
        this.#lengthCounts.set(w.key.length, n + 1);
        if (n === 0) this.#lengths = [...this.#lengthCounts.keys()].sort((a, b) => a - b);
        break;
      }
      case "from": {
        if (this.#from.includes(w)) return;
        this.#from.splice(this.#lowerBound(w.key), 0, w);
        break;
      }
      case "range":
        if (this.#ranges.has(w)) return;
        this.#ranges.add(w);
        break;
    }
    this.#size++;
  }

  delete(w: W): boolean {
    switch (kindOf(w)) {
      case "prefix": {
        const id = keyId(w.key);
        const set = this.#prefixes.get(id);
        if (set === undefined || !set.delete(w)) return false;
        if (set.size === 0) this.#prefixes.delete(id);
        const n = this.#lengthCounts.get(w.key.length)! - 1;
        if (n === 0) {
          this.#lengthCounts.delete(w.key.length);
          this.#lengths = [...this.#lengthCounts.keys()].sort((a, b) => a - b);
        } else {
          this.#lengthCounts.set(w.key.length, n);
        }
        break;
      }
      case "from": {
        let i = this.#lowerBound(w.key);
        while (i < this.#from.length && this.#from[i] !== w) i++;
        if (i === this.#from.length) return false;
        this.#from.splice(i, 1);
        break;
      }
      case "range":
        if (!this.#ranges.delete(w)) return false;
        break;
    }
    this.#size--;
    return true;
  }

  clear(): void {
    this.#prefixes.clear();
    this.#lengthCounts.clear();
    this.#lengths = [];
    this.#from = [];
    this.#ranges.clear();
    this.#size = 0;
  }

  /** Calls `visit` once for each watcher whose range holds `key`. */
  forEachMatch(key: Uint8Array, visit: (w: W) => void): void {
    for (const length of this.#lengths) {
      if (length > key.length) break;
      const set = this.#prefixes.get(keyId(key.subarray(0, length)));
      if (set !== undefined) { for (const w of set) visit(w); }
    }
    for (const w of this.#from) {
      if (compareBytes(w.key, key) > 0) break;
      visit(w);
    }
    for (const w of this.#ranges) if (w.matches(key)) visit(w);
  }

  /** Every watcher, once. */
  *[Symbol.iterator](): IterableIterator<W> {
    for (const set of this.#prefixes.values()) yield* set;
    yield* this.#from;
    yield* this.#ranges;
  }

  /** The first index in #from whose key is not below `key`. */
  #lowerBound(key: Uint8Array): number {
    let lo = 0;
    let hi = this.#from.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareBytes(this.#from[mid].key, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
