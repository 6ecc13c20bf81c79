/**
 * An ordered set of records keyed by a binary-string id, for range scans over the key space.
 * A list of sorted chunks (at most 2 * LOAD records each) keeps inserts at O(log n + LOAD) and
 * in-order scans cache-friendly, without the bookkeeping of a full B-tree. Keys are only removed
 * by compaction: one at a time (an emptied chunk goes) or in one pass.
 *
 * With a `weight` (the store's: 1 for a key that exists now, 0 for one whose latest revision is a
 * deletion), each chunk keeps the sum of its records' weights, so that the weight of a range is
 * summed chunk by chunk: O(LOAD + n / LOAD) instead of a visit of every record. The owner reports
 * each change of a record's weight with `reweigh`.
 */

/** Anything with an order-defining id (see keyId()). */
export interface HasId {
  readonly id: string;
}

const LOAD = 512;

/** Sorted chunks of records; ids are unique. */
export class SortedRecords<T extends HasId> {
  #chunks: T[][] = [];
  #maxes: string[] = [];
  /** Each chunk's sum of weights. */
  #weights: number[] = [];
  #size = 0;
  readonly #weight: (record: T) => number;

  constructor(weight: (record: T) => number = () => 0) {
    this.#weight = weight;
  }

  /** Number of records held. */
  get size(): number {
    return this.#size;
  }

  /** Builds the set from records already sorted by id (used when restoring a snapshot). */
  static fromSorted<T extends HasId>(
    records: readonly T[],
    weight?: (record: T) => number,
  ): SortedRecords<T> {
    const set = new SortedRecords<T>(weight);
    for (let i = 0; i < records.length; i += LOAD) {
      const chunk = records.slice(i, i + LOAD);
      set.#chunks.push(chunk);
      set.#maxes.push(chunk[chunk.length - 1].id);
      set.#weights.push(set.#sum(chunk));
    }
    set.#size = records.length;
    return set;
  }

  #sum(chunk: readonly T[]): number {
    let total = 0;
    for (const record of chunk) total += this.#weight(record);
    return total;
  }

  /** A record's weight changed by `delta` (the record is in the set). */
  reweigh(id: string, delta: number): void {
    const ci = this.#chunkFor(id);
    if (ci < this.#chunks.length) this.#weights[ci] += delta;
  }

  /** The sum of the weights of the records with start <= id < end (end undefined: no bound). */
  weightBetween(start: string, end: string | undefined): number {
    const chunks = this.#chunks;
    let ci = this.#chunkFor(start);
    if (ci === chunks.length) return 0;
    let pos = lowerBound(chunks[ci], start);
    let total = 0;
    for (; ci < chunks.length; ci++, pos = 0) {
      if (pos === 0 && (end === undefined || this.#maxes[ci] < end)) {
        total += this.#weights[ci];
        continue;
      }
      const chunk = chunks[ci];
      for (; pos < chunk.length; pos++) {
        const record = chunk[pos];
        if (end !== undefined && record.id >= end) return total;
        total += this.#weight(record);
      }
    }
    return total;
  }

  /** Index of the first chunk whose max id is >= id, or the chunk count if none. */
  #chunkFor(id: string): number {
    const maxes = this.#maxes;
    let lo = 0;
    let hi = maxes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (maxes[mid] < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The record with this id, if present (two binary searches: the chunk, then inside it). */
  get(id: string): T | undefined {
    const ci = this.#chunkFor(id);
    if (ci === this.#chunks.length) return undefined;
    const chunk = this.#chunks[ci];
    const record = chunk[lowerBound(chunk, id)];
    return record !== undefined && record.id === id ? record : undefined;
  }

  /** Inserts a record whose id is not yet present. */
  insert(record: T): void {
    const id = record.id;
    this.#size++;
    const weight = this.#weight(record);
    if (this.#chunks.length === 0) {
      this.#chunks.push([record]);
      this.#maxes.push(id);
      this.#weights.push(weight);
      return;
    }
    let ci = this.#chunkFor(id);
    if (ci === this.#chunks.length) {
      ci--;
      const chunk = this.#chunks[ci];
      chunk.push(record);
      this.#maxes[ci] = id;
      this.#weights[ci] += weight;
      if (chunk.length > 2 * LOAD) this.#split(ci);
      return;
    }
    const chunk = this.#chunks[ci];
    const pos = lowerBound(chunk, id);
    chunk.splice(pos, 0, record);
    this.#weights[ci] += weight;
    if (chunk.length > 2 * LOAD) this.#split(ci);
  }

  #split(ci: number): void {
    const chunk = this.#chunks[ci];
    const right = chunk.splice(LOAD);
    this.#chunks.splice(ci + 1, 0, right);
    this.#maxes[ci] = chunk[chunk.length - 1].id;
    this.#maxes.splice(ci + 1, 0, right[right.length - 1].id);
    const rightWeight = this.#sum(right);
    this.#weights[ci] -= rightWeight;
    this.#weights.splice(ci + 1, 0, rightWeight);
  }

  /** Removes the record with this id, if present. */
  remove(id: string): void {
    const ci = this.#chunkFor(id);
    if (ci === this.#chunks.length) return;
    const chunk = this.#chunks[ci];
    const pos = lowerBound(chunk, id);
    if (pos === chunk.length || chunk[pos].id !== id) return;
    const [record] = chunk.splice(pos, 1);
    this.#weights[ci] -= this.#weight(record);
    this.#size--;
    if (chunk.length === 0) {
      this.#chunks.splice(ci, 1);
      this.#maxes.splice(ci, 1);
      this.#weights.splice(ci, 1);
    } else if (pos === chunk.length) this.#maxes[ci] = chunk[chunk.length - 1].id;
  }

  /** Keeps only the records for which keep() is true, preserving order. */
  retain(keep: (record: T) => boolean): void {
    const all: T[] = [];
    for (const chunk of this.#chunks) {
      for (const record of chunk) if (keep(record)) all.push(record);
    }
    const rebuilt = SortedRecords.fromSorted(all, this.#weight);
    this.#chunks = rebuilt.#chunks;
    this.#maxes = rebuilt.#maxes;
    this.#weights = rebuilt.#weights;
    this.#size = rebuilt.#size;
  }

  /**
   * Calls visit(record) for each record with start <= id < end in ascending order (end undefined:
   * no upper bound); stops early when visit returns false.
   */
  scan(start: string, end: string | undefined, visit: (record: T) => boolean | void): void {
    const chunks = this.#chunks;
    let ci = this.#chunkFor(start);
    if (ci === chunks.length) return;
    let pos = lowerBound(chunks[ci], start);
    for (; ci < chunks.length; ci++, pos = 0) {
      const chunk = chunks[ci];
      for (; pos < chunk.length; pos++) {
        const record = chunk[pos];
        if (end !== undefined && record.id >= end) return;
        if (visit(record) === false) return;
      }
    }
  }

  /** Every record in ascending id order. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const chunk of this.#chunks) yield* chunk;
  }
}

function lowerBound<T extends HasId>(chunk: readonly T[], id: string): number {
  let lo = 0;
  let hi = chunk.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (chunk[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
