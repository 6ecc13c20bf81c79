/**
 * Byte strings as etcd treats them: ordered bytewise (Go's `bytes.Compare`), compared for
 * equality, and turned into strings for use as `Map`/`Set` keys. One copy for all of core,
 * the server and the CLI, so every place orders and keys bytes the same way.
 *
 * A pure leaf: this module imports nothing. That is why `core/raft`, which otherwise imports
 * nothing but its own types (DESIGN.md, "Dependency direction"), may import it: it is the one
 * allowed exception.
 *
 * @example
 * ```ts
 * import { bytesEqual, compareBytes, keyId } from "./bytes.ts";
 *
 * const a = new Uint8Array([0x61]);
 * const b = new Uint8Array([0x61, 0x00]);
 * compareBytes(a, b); // -1: a prefix sorts first
 * bytesEqual(a, a.slice()); // true
 * new Set([keyId(a), keyId(a.slice())]).size; // 1
 * ```
 *
 * @module
 */

/**
 * Go's `bytes.Compare`: -1, 0 or 1. etcd orders keys, bolt buckets and lease keys this way, so
 * every sort and range check that must agree with etcd goes through here.
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Whether two byte strings hold the same bytes (Go's `bytes.Equal`), without a full compare. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const CHUNK_BYTES = 8192;

/**
 * The "binary string" form of a byte string: one UTF-16 code unit per byte (0..255). Byte
 * strings are not usable as `Map`/`Set` keys (arrays compare by identity); these strings are,
 * cheaply, and JavaScript compares them code unit by code unit, which is exactly bytewise order.
 * Not TextDecoder's "latin1", which is windows-1252 and maps some bytes elsewhere.
 */
export function keyId(key: Uint8Array): string {
  if (key.length <= CHUNK_BYTES) {
    return String.fromCharCode.apply(null, key as unknown as number[]);
  }
  let out = "";
  for (let offset = 0; offset < key.length; offset += CHUNK_BYTES) {
    const part = key.subarray(offset, offset + CHUNK_BYTES);
    out += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return out;
}

/** Bytes back from keyId(), for the places where the original array is not at hand. */
export function idBytes(id: string): Uint8Array {
  const out = new Uint8Array(id.length);
  writeIdBytes(id, out, 0);
  return out;
}

/** keyId()'s bytes written into `into` at `at` (room for `id.length` bytes); the end offset. */
export function writeIdBytes(id: string, into: Uint8Array, at: number): number {
  for (let i = 0; i < id.length; i++) into[at++] = id.charCodeAt(i);
  return at;
}

/**
 * A 30-bit hash of an id (FNV-1a over its code units): a small integer, which a `Map` holds
 * as is.
 */
export function idHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 30)) & 0x3fffffff;
}

interface IdEntry<V> {
  readonly id: string;
  value: V;
}

/**
 * A map from ids (keyId) to values for maps that may hold a key of every key in the store (a
 * restore's records, a lease's keys). A `Map` keyed by the strings themselves has V8 internalize
 * them as it grows: a million keys then stay in the isolate's string table for as long as they
 * live, and every full collection of the heap updates and sweeps that table in its pause (~30 ms at
 * 1M keys on this machine, every time). This one keys a `Map` by idHash and keeps the id beside
 * its value, so the strings are never keys. The ids of a hash shared by more than one (about a
 * hundred at 1M keys) go in a `Map` of their own: a few internalized strings cost nothing, and keys
 * made to collide (the hash is not secret) cost a lookup in that `Map`, not a walk of a list.
 */
export class IdMap<V> {
  readonly #buckets = new Map<number, IdEntry<V> | Map<string, V>>();
  readonly #hash: (id: string) => number;
  #size = 0;

  /** `hash` is for tests (a constant one makes every id collide). */
  constructor(hash: (id: string) => number = idHash) {
    this.#hash = hash;
  }

  get size(): number {
    return this.#size;
  }

  get(id: string): V | undefined {
    const bucket = this.#buckets.get(this.#hash(id));
    if (bucket === undefined) return undefined;
    if (bucket instanceof Map) return bucket.get(id);
    return bucket.id === id ? bucket.value : undefined;
  }

  has(id: string): boolean {
    const bucket = this.#buckets.get(this.#hash(id));
    if (bucket === undefined) return false;
    if (bucket instanceof Map) return bucket.has(id);
    return bucket.id === id;
  }

  set(id: string, value: V): this {
    const hash = this.#hash(id);
    const bucket = this.#buckets.get(hash);
    if (bucket === undefined) {
      this.#buckets.set(hash, { id, value });
    } else if (bucket instanceof Map) {
      const size = bucket.size;
      bucket.set(id, value);
      if (bucket.size === size) return this;
    } else if (bucket.id === id) {
      bucket.value = value;
      return this;
    } else {
      this.#buckets.set(hash, new Map([[bucket.id, bucket.value], [id, value]]));
    }
    this.#size++;
    return this;
  }

  delete(id: string): boolean {
    const hash = this.#hash(id);
    const bucket = this.#buckets.get(hash);
    if (bucket === undefined) return false;
    if (bucket instanceof Map) {
      if (!bucket.delete(id)) return false;
      if (bucket.size === 0) this.#buckets.delete(hash);
    } else {
      if (bucket.id !== id) return false;
      this.#buckets.delete(hash);
    }
    this.#size--;
    return true;
  }

  clear(): void {
    this.#buckets.clear();
    this.#size = 0;
  }

  /** The values, in no particular order. */
  *values(): IterableIterator<V> {
    for (const bucket of this.#buckets.values()) {
      if (bucket instanceof Map) yield* bucket.values();
      else yield bucket.value;
    }
  }
}

/** The bytes of every part, one after the other, in a new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * clientv3.GetPrefixRangeEnd: the first key after every key that starts with `prefix`; when every
 * byte is 0xff no key follows them all, and the range is open ended ("\x00", from-key).
 */
export function prefixRangeEnd(prefix: Uint8Array): Uint8Array {
  // A copy made with the constructor: a key decoded from a request may be a Node Buffer, whose
  // slice() is a view, and incrementing it would change the caller's key.
  const end = new Uint8Array(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

/**
 * Bytes read by position, without holding them all (a file, or a range of one); see
 * `bytesSource` for bytes in memory.
 */
export interface ByteSource {
  readonly size: number;
  /** Reads up to buf.length bytes at `position` into buf; returns how many. */
  readAt(buf: Uint8Array, position: number): number;
}

/** Bytes in memory as a ByteSource. */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    readAt: (buf, position) => {
      const n = Math.max(0, Math.min(buf.length, bytes.length - position));
      buf.set(bytes.subarray(position, position + n));
      return n;
    },
  };
}

/** A source's bytes, whole (throws when it ends early). */
export function readSource(source: ByteSource): Uint8Array {
  const out = new Uint8Array(source.size);
  for (let at = 0; at < out.length;) {
    const n = source.readAt(out.subarray(at), at);
    if (n <= 0) throw new Error("source truncated");
    at += n;
  }
  return out;
}

/**
 * Copies of small byte arrays packed into shared slabs: one ArrayBuffer per slab instead of one
 * per array (each ArrayBuffer costs ~100 bytes of bookkeeping plus its allocation), and nothing
 * of the caller's buffer is kept alive. A slab is freed once no copy in it is referenced. Arrays
 * over a quarter of a slab get their own buffer.
 */
export class ByteArena {
  readonly #slabBytes: number;
  #slab: Uint8Array;
  #used = 0;

  constructor(slabBytes = 64 * 1024) {
    this.#slabBytes = slabBytes;
    this.#slab = new Uint8Array(0);
  }

  /** A copy of `bytes` (a view into a slab, or its own buffer when large). */
  copy(bytes: Uint8Array): Uint8Array {
    const out = this.alloc(bytes.length);
    out.set(bytes);
    return out;
  }

  /**
   * `bytes` in a slab, or `bytes` itself when it is too large for one (only for arrays nobody
   * else holds or changes, such as a fresh encoding: a large one is not copied for nothing).
   */
  keep(bytes: Uint8Array): Uint8Array {
    return bytes.length > this.#slabBytes >> 2 ? bytes : this.copy(bytes);
  }

  /** `n` zeroed bytes of their own (a view into a slab, or a buffer of their own when large). */
  alloc(n: number): Uint8Array {
    if (n > this.#slabBytes >> 2) return new Uint8Array(n);
    if (this.#used + n > this.#slab.length) {
      this.#slab = new Uint8Array(this.#slabBytes);
      this.#used = 0;
    }
    // The constructor, not subarray(): measured 2.7x faster per copy.
    const out = new Uint8Array(this.#slab.buffer, this.#used, n);
    this.#used += n;
    return out;
  }
}
