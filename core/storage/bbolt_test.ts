import assert from "node:assert/strict";
import {
  type BoltBucket,
  boltFile,
  BoltFormatError,
  type BoltSource,
  BoltWriter,
  decodeBolt,
  encodeBolt,
} from "./bbolt.ts";
import { compareBytes, keyId } from "../bytes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (s: string) => encoder.encode(s);
const str = (b: Uint8Array) => decoder.decode(b);

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function randomBytes(next: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = next() & 0xff;
  return out;
}

/** Buckets in the order decodeBolt returns them: names and keys sorted bytewise. */
function normalized(buckets: BoltBucket[]): BoltBucket[] {
  return buckets
    .map((b) => ({
      name: b.name,
      entries: b.entries.slice().sort((x, y) => compareBytes(x[0], y[0])),
    }))
    .sort((x, y) => compareBytes(x.name, y.name));
}

function assertSameBuckets(actual: BoltBucket[], expected: BoltBucket[]): void {
  const want = normalized(expected);
  assert.equal(actual.length, want.length);
  for (let i = 0; i < want.length; i++) {
    assert.deepEqual(actual[i].name, want[i].name);
    assert.equal(actual[i].entries.length, want[i].entries.length, `bucket ${str(want[i].name)}`);
    for (let j = 0; j < want[i].entries.length; j++) {
      assert.deepEqual(actual[i].entries[j][0], want[i].entries[j][0]);
      assert.deepEqual(actual[i].entries[j][1], want[i].entries[j][1]);
    }
  }
}

function roundTrip(buckets: BoltBucket[], pageSize?: number): Uint8Array {
  const file = encodeBolt(buckets, { pageSize });
  assertSameBuckets(decodeBolt(file), buckets);
  return file;
}

/** Page ids of pages with the given flags (scan of a file we encoded: every page is in place). */
function pagesWithFlags(file: Uint8Array, flags: number, pageSize = 4096): number[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const found: number[] = [];
  for (let id = 2; id * pageSize < file.length; id++) {
    if (view.getUint32(id * pageSize, true) !== id) continue; // overflow continuation
    if (view.getUint16(id * pageSize + 8, true) === flags) found.push(id);
  }
  return found;
}

Deno.test("encodeBolt/decodeBolt round-trip an empty bucket and no buckets at all", () => {
  roundTrip([]);
  const file = roundTrip([{ name: bytes("alarm"), entries: [] }]);
  assert.equal(file.length % 4096, 0);
  assert.equal(file.length, 5 * 4096); // 2 meta, freelist, bucket leaf, root leaf
});

Deno.test("encodeBolt writes valid meta pages: magic, version, page size, newer txid wins", () => {
  const file = encodeBolt([{ name: bytes("a"), entries: [[bytes("k"), bytes("v")]] }], {
    txid: 7,
  });
  const view = new DataView(file.buffer);
  for (const page of [0, 1]) {
    assert.equal(view.getUint32(page * 4096, true), page);
    assert.equal(view.getUint16(page * 4096 + 8, true), 0x04);
    assert.equal(view.getUint32(page * 4096 + 16, true), 0xed0cdaed);
    assert.equal(view.getUint32(page * 4096 + 20, true), 2);
    assert.equal(view.getUint32(page * 4096 + 24, true), 4096);
  }
  assert.equal(view.getUint32(1 * 4096 + 64, true), 7); // txid 7 lives on page 7 % 2
  assert.equal(view.getUint32(0 * 4096 + 64, true), 6);
});

Deno.test("encodeBolt/decodeBolt round-trip many buckets, unsorted input and binary keys", () => {
  const next = prng(42);
  const buckets: BoltBucket[] = [];
  for (let b = 0; b < 300; b++) {
    const seen = new Set<string>();
    const entries: Array<[Uint8Array, Uint8Array]> = [];
    const count = next() % 40;
    while (entries.length < count) {
      const key = randomBytes(next, 1 + (next() % 20));
      const id = keyId(key);
      if (seen.has(id)) continue;
      seen.add(id);
      entries.push([key, randomBytes(next, next() % 300)]);
    }
    buckets.push({ name: bytes(`bucket-${(next() % 1e9).toString(36)}-${b}`), entries });
  }
  // Keys with 0x00 and 0xff bytes and prefixes of each other sort bytewise.
  buckets.push({
    name: new Uint8Array([0xff, 0x00, 0x01]),
    entries: [
      [new Uint8Array([0xff]), new Uint8Array(0)],
      [new Uint8Array([0x00]), new Uint8Array([1])],
      [new Uint8Array([0x00, 0x00]), new Uint8Array([2])],
      [new Uint8Array([0x7f, 0x80]), new Uint8Array([3])],
    ],
  });
  roundTrip(buckets);
  roundTrip(buckets, 1024);
  roundTrip(buckets, 65536);
});

Deno.test("encodeBolt/decodeBolt round-trip 100k keys of 256 bytes through branch pages", () => {
  const entries: Array<[Uint8Array, Uint8Array]> = [];
  for (let i = 0; i < 100_000; i++) {
    const value = new Uint8Array(256).fill(i & 0xff);
    value[0] = i >> 16;
    entries.push([bytes(`/registry/pods/${String(i * 7919 % 100_000).padStart(6, "0")}`), value]);
  }
  const buckets = [{ name: bytes("key"), entries }, { name: bytes("meta"), entries: [] }];
  let t = performance.now();
  const file = encodeBolt(buckets);
  const encodeMs = performance.now() - t;
  t = performance.now();
  const decoded = decodeBolt(file);
  const decodeMs = performance.now() - t;
  console.log(
    `100k x 256 B: encode ${encodeMs.toFixed(0)} ms, decode ${decodeMs.toFixed(0)} ms, ` +
      `${(file.length / 1048576).toFixed(1)} MiB`,
  );
  assertSameBuckets(decoded, buckets);
  assert.ok(pagesWithFlags(file, 0x01).length > 1, "expected several branch pages");
  assert.ok(encodeMs < 5000, `encode took ${encodeMs} ms`);
});

/** A source over `entries` whose key() and value() each hand out one buffer, rewritten per call. */
function scratchSource(name: string, entries: Array<[Uint8Array, Uint8Array]>): BoltSource {
  const key = new Uint8Array(64);
  let value = new Uint8Array(64);
  return {
    name: bytes(name),
    length: entries.length,
    key(i) {
      key.fill(0xee);
      key.set(entries[i][0]);
      return key.subarray(0, entries[i][0].length);
    },
    valueSize: (i) => entries[i][1].length,
    value(i) {
      const v = entries[i][1];
      if (value.length < v.length) value = new Uint8Array(v.length);
      value.fill(0xee);
      value.set(v);
      return value.subarray(0, v.length);
    },
  };
}

Deno.test("a BoltWriter over sources that reuse their key and value buffers, and whose pages come in one reused buffer, writes encodeBolt's file", () => {
  const next = prng(11);
  const entries: Array<[Uint8Array, Uint8Array]> = [];
  for (let i = 0; i < 30_000; i++) {
    const size = i === 12_345 ? 20_000 : 1 + next() % 200; // one value over several pages
    entries.push([bytes(`k/${String(i).padStart(6, "0")}`), randomBytes(next, size)]);
  }
  const meta: Array<[Uint8Array, Uint8Array]> = [[bytes("x"), bytes("y")]];
  const file = boltFile([scratchSource("key", entries), scratchSource("meta", meta)]);
  const expected = encodeBolt([{ name: bytes("key"), entries }, {
    name: bytes("meta"),
    entries: meta,
  }]);
  assert.ok(pagesWithFlags(file, 0x01).length > 1, "several branch pages");
  assert.equal(file.length, expected.length);
  assert.equal(file.findIndex((b, i) => b !== expected[i]), -1, "the same bytes");
  // Out of order is still seen when the previous key's buffer has been rewritten.
  const swapped = entries.slice(0, 100);
  [swapped[40], swapped[41]] = [swapped[41], swapped[40]];
  const bad = new BoltWriter([scratchSource("key", swapped)]);
  assert.throws(() => {
    for (const _ of bad.plan());
  }, BoltFormatError);
});

Deno.test("encodeBolt/decodeBolt round-trip values that span overflow pages", () => {
  const next = prng(7);
  const buckets: BoltBucket[] = [{
    name: bytes("key"),
    entries: [
      [bytes("a"), randomBytes(next, 10)],
      [bytes("big"), randomBytes(next, 1_572_864)], // 1.5 MiB
      [bytes("edge"), randomBytes(next, 4096 - 16 - 16 - 4)], // exactly one full page
      [bytes("edge+1"), randomBytes(next, 4096 - 16 - 16 - 6 + 1)], // one byte more
      [bytes("mid"), randomBytes(next, 9000)],
      [bytes("z"), randomBytes(next, 3)],
    ],
  }];
  const file = roundTrip(buckets);
  const view = new DataView(file.buffer);
  const overflows = pagesWithFlags(file, 0x02).map((id) => view.getUint32(id * 4096 + 12, true));
  assert.ok(overflows.includes(384), `1.5 MiB value spans 385 pages, got ${overflows}`);
  assert.ok(overflows.includes(0));
});

/** A leaf page image (as bbolt lays one out) holding `entries` with element `flags`. */
function leafImage(
  pgid: number,
  flags: number,
  entries: Array<[Uint8Array, Uint8Array]>,
): Uint8Array {
  let size = 16 + 16 * entries.length;
  for (const [k, v] of entries) size += k.length + v.length;
  const page = new Uint8Array(size);
  const view = new DataView(page.buffer);
  view.setUint32(0, pgid, true);
  view.setUint16(8, 0x02, true);
  view.setUint16(10, entries.length, true);
  let data = 16 + 16 * entries.length;
  entries.forEach(([k, v], i) => {
    const element = 16 + 16 * i;
    view.setUint32(element, flags, true);
    view.setUint32(element + 4, data - element, true);
    view.setUint32(element + 8, k.length, true);
    view.setUint32(element + 12, v.length, true);
    page.set(k, data);
    page.set(v, data + k.length);
    data += k.length + v.length;
  });
  return page;
}

Deno.test("decodeBolt reads inline buckets (small buckets stored inside the root leaf)", () => {
  const file = encodeBolt([]); // meta root = page 3, an empty leaf; high water mark 4
  assert.equal(file.length, 4 * 4096);
  const inline = (entries: Array<[Uint8Array, Uint8Array]>) => {
    const page = leafImage(0, 0, entries);
    const value = new Uint8Array(16 + page.length); // bucket header {root 0, sequence 0}
    value.set(page, 16);
    return value;
  };
  const buckets: BoltBucket[] = [
    { name: bytes("alarm"), entries: [] },
    {
      name: bytes("meta"),
      entries: [[bytes("consistent_index"), new Uint8Array([0, 0, 0, 0, 0, 0, 0, 8])]],
    },
    { name: bytes("members"), entries: [[bytes("a"), bytes("1")], [bytes("bb"), bytes("{}")]] },
  ];
  const ordered = normalized(buckets);
  file.set(leafImage(3, 1, ordered.map((b) => [b.name, inline(b.entries)])), 3 * 4096);
  assertSameBuckets(decodeBolt(file), buckets);
  // An inline page whose element points past the value is refused.
  const broken = file.slice();
  const view = new DataView(broken.buffer);
  const firstValueAt = 3 * 4096 + 16 + 3 * 16 + "alarm".length; // alarm's value
  view.setUint16(firstValueAt + 16 + 10, 5, true); // count 5 elements in an empty inline page
  assert.throws(() => decodeBolt(broken), BoltFormatError);
});

Deno.test("encodeBolt refuses duplicate keys, duplicate buckets and bad options", () => {
  assert.throws(
    () =>
      encodeBolt([{
        name: bytes("k"),
        entries: [[bytes("b"), bytes("1")], [bytes("b"), bytes("2")]],
      }]),
    BoltFormatError,
  );
  assert.throws(
    () => encodeBolt([{ name: bytes("k"), entries: [] }, { name: bytes("k"), entries: [] }]),
    BoltFormatError,
  );
  assert.throws(() => encodeBolt([], { pageSize: 3000 }), RangeError);
  assert.throws(() => encodeBolt([], { txid: 0 }), RangeError);
});

function sampleFile(): Uint8Array {
  const entries: Array<[Uint8Array, Uint8Array]> = [];
  for (let i = 0; i < 3000; i++) entries.push([bytes(`key-${i}`), bytes(`value-${i}`.repeat(3))]);
  entries.push([bytes("large"), new Uint8Array(20_000).fill(9)]);
  return encodeBolt([
    { name: bytes("key"), entries },
    { name: bytes("meta"), entries: [[bytes("consistent_index"), new Uint8Array(8)]] },
  ]);
}

Deno.test("decodeBolt refuses short, truncated and meta-less files with BoltFormatError", () => {
  const file = sampleFile();
  assert.throws(() => decodeBolt(new Uint8Array(0)), /file too small/);
  assert.throws(() => decodeBolt(file.subarray(0, 100)), /file too small/);
  assert.throws(() => decodeBolt(file.subarray(0, file.length - 4096)), /truncated/);
  assert.throws(() => decodeBolt(new Uint8Array(16384)), /no valid meta page/);
  const broken = file.slice();
  broken[16 + 20] ^= 1; // meta 0 checksum no longer matches
  broken[4096 + 16 + 20] ^= 1; // nor does meta 1's
  assert.throws(() => decodeBolt(broken), /no valid meta page.*checksum/);
});

Deno.test("decodeBolt falls back to the older meta page when the newer one is corrupt", () => {
  const file = sampleFile(); // txid 1: newer meta on page 1
  const expected = decodeBolt(file);
  const broken = file.slice();
  broken[4096 + 16 + 40] ^= 0xff; // corrupt page 1's high water mark: checksum fails
  assertSameBuckets(decodeBolt(broken), expected);
  const appended = new Uint8Array(file.length + 32); // etcd's sha256 trailer is ignored
  appended.set(file);
  assertSameBuckets(decodeBolt(appended), expected);
});

Deno.test("decodeBolt accepts etcd's unsynced freelist (pgid all ones) and zero checksums", () => {
  const file = sampleFile();
  const expected = decodeBolt(file);
  const etcdStyle = file.slice();
  for (const page of [0, 1]) {
    etcdStyle.fill(0xff, page * 4096 + 16 + 32, page * 4096 + 16 + 40); // meta.freelist
    etcdStyle.fill(0, page * 4096 + 16 + 56, page * 4096 + 16 + 64); // checksum 0: not verified
  }
  assertSameBuckets(decodeBolt(etcdStyle), expected);
});

Deno.test("decodeBolt detects cycles and out-of-range page ids in branch pages", () => {
  const file = sampleFile();
  const branches = pagesWithFlags(file, 0x01);
  assert.ok(branches.length > 0);
  const cyclic = file.slice();
  const view = new DataView(cyclic.buffer);
  const id = branches[0];
  view.setUint32(id * 4096 + 16 + 8, id, true); // first child := the branch page itself
  assert.throws(() => decodeBolt(cyclic), /referenced twice/);
  // A leaf whose overflow run is stretched over the next page: that page is then owned twice.
  const overlapping = file.slice();
  const overlapView = new DataView(overlapping.buffer);
  const overflowing = pagesWithFlags(file, 0x02).find((p) =>
    overlapView.getUint32(p * 4096 + 12, true) > 0
  );
  assert.ok(overflowing !== undefined);
  const overflow = overlapView.getUint32(overflowing * 4096 + 12, true);
  overlapView.setUint32(overflowing * 4096 + 12, overflow + 1, true);
  assert.throws(() => decodeBolt(overlapping), /referenced twice|high water mark/);
  view.setUint32(id * 4096 + 16 + 8, 1_000_000, true);
  assert.throws(() => decodeBolt(cyclic), /outside/);
  view.setUint32(id * 4096 + 16 + 12, 0xffffffff, true);
  assert.throws(() => decodeBolt(cyclic), /out of range/);
});

Deno.test("decodeBolt either decodes or throws BoltFormatError on randomly damaged files", () => {
  const file = sampleFile();
  const next = prng(2024);
  let refused = 0;
  for (let round = 0; round < 400; round++) {
    const damaged = file.slice();
    const flips = 1 + (next() % 8);
    for (let i = 0; i < flips; i++) {
      // Aim at page headers and elements more often than at value bytes.
      const page = next() % (file.length / 4096);
      const offset = page * 4096 + (next() % 2 === 0 ? next() % 96 : next() % 4096);
      damaged[offset] ^= 1 << (next() % 8);
    }
    try {
      decodeBolt(damaged);
    } catch (e) {
      assert.ok(e instanceof BoltFormatError, `round ${round}: ${e}`);
      refused++;
    }
  }
  assert.ok(refused > 0);
});
