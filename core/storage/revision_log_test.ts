import { assert, assertEquals, assertRejects, assertThrows } from "../testing.ts";
import { MemoryDisk } from "./memory_disk.ts";
import type { Disk } from "./disk.ts";
import { RevisionLog, RevisionLogCorruptError, type RevisionRecord } from "./revision_log.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const DIR = "data/member/revs";

function value(i: number): Uint8Array {
  return enc.encode(`value-${i}-${"v".repeat(i % 50)}`);
}

async function openCollect(disk: Disk, segmentBytes = 4096) {
  const seen: RevisionRecord[] = [];
  const log = await RevisionLog.open(disk, DIR, (r) => seen.push({ ...r, data: r.data.slice() }), {
    segmentBytes,
  });
  return { log, seen };
}

Deno.test("revision log: appended records read back before and after they are written, across segments", async () => {
  const disk = new MemoryDisk();
  const { log } = await openCollect(disk);
  const locations: { location: number; size: number }[] = [];
  for (let i = 0; i < 300; i++) {
    locations.push(log.append(i + 2, i % 3, i % 7 === 0, value(i)));
    // Buffered: readable at once.
    assertEquals(
      dec.decode(log.read(locations[i].location, locations[i].size)),
      dec.decode(value(i)),
    );
  }
  await log.flush();
  for (let i = 0; i < 300; i++) {
    assertEquals(
      dec.decode(log.read(locations[i].location, locations[i].size)),
      dec.decode(value(i)),
    );
  }
  const segments = (await disk.list(DIR)).filter((n) => n.endsWith(".rev"));
  assert(segments.length > 3, `rolled over 4 KiB segments (${segments.length})`);
  log.close();
});

Deno.test("revision log: reopening visits every record in order, then appends to a new segment", async () => {
  const disk = new MemoryDisk();
  const first = await openCollect(disk);
  for (let i = 0; i < 120; i++) first.log.append(i + 2, 0, i % 10 === 9, value(i));
  await first.log.sync();
  first.log.close();

  const second = await openCollect(disk);
  assertEquals(second.seen.length, 120);
  second.seen.forEach((r, i) => {
    assertEquals([r.main, r.sub, r.tombstone, dec.decode(r.data)], [
      i + 2,
      0,
      i % 10 === 9,
      dec.decode(value(i)),
    ]);
    assertEquals(dec.decode(second.log.read(r.location, r.size)), dec.decode(value(i)));
  });
  const before = await disk.list(DIR);
  const added = second.log.append(500, 0, false, enc.encode("after"));
  await second.log.flush();
  const after = await disk.list(DIR);
  assertEquals(after.length, before.length, "appends go to the segment created at open");
  assertEquals(dec.decode(second.log.read(added.location, added.size)), "after");
  second.log.close();
  const third = await openCollect(disk);
  assertEquals(third.seen.length, 121);
  third.log.close();
});

Deno.test("revision log: a torn tail of the last segment is cut off; the records before it stay", async () => {
  const disk = new MemoryDisk();
  const { log } = await openCollect(disk, 1 << 20);
  const sizes: number[] = [];
  for (let i = 0; i < 10; i++) sizes.push(log.append(i + 2, 0, false, value(i)).size);
  await log.sync();
  log.close();
  const [name] = (await disk.list(DIR)).filter((n) => n.endsWith(".rev"));
  const full = sizes.reduce((a, b) => a + b, 0);
  // A crash in the middle of the last record's write.
  await disk.truncate(`${DIR}/${name}`, full - 3);
  const again = await openCollect(disk, 1 << 20);
  assertEquals(again.seen.length, 9);
  assertEquals((await disk.readFile(`${DIR}/${name}`))!.length, full - sizes[9], "cut at a record");
  again.log.close();
});

Deno.test("revision log: a bad record before the last segment is corruption, not a tail", async () => {
  const disk = new MemoryDisk();
  const { log } = await openCollect(disk);
  for (let i = 0; i < 200; i++) log.append(i + 2, 0, false, value(i));
  await log.sync();
  log.close();
  const [firstSegment] = (await disk.list(DIR)).filter((n) => n.endsWith(".rev"));
  disk.corrupt(`${DIR}/${firstSegment}`, 20, enc.encode("XX"));
  await assertRejects(() => openCollect(disk), RevisionLogCorruptError);
});

Deno.test("revision log: a read whose bytes changed on disk fails its checksum", async () => {
  const disk = new MemoryDisk();
  const { log } = await openCollect(disk, 1 << 20);
  const a = log.append(2, 0, false, enc.encode("hello world"));
  await log.flush();
  const [name] = (await disk.list(DIR)).filter((n) => n.endsWith(".rev"));
  disk.corrupt(`${DIR}/${name}`, a.size - 2, enc.encode("W"));
  assertThrows(() => log.read(a.location, a.size), RevisionLogCorruptError);
  log.close();
});

Deno.test("revision log: released records are counted as garbage", async () => {
  const { log } = await openCollect(new MemoryDisk());
  const a = log.append(2, 0, false, value(1));
  const b = log.append(3, 0, false, value(2));
  assertEquals(log.sizes, { totalBytes: a.size + b.size, liveBytes: a.size + b.size });
  log.release(a.location, a.size);
  assertEquals(log.sizes, { totalBytes: a.size + b.size, liveBytes: b.size });
  log.close();
});

Deno.test("revision log: a sequential reader serves records from blocks, buffered ones directly, and checks each", async () => {
  const disk = new MemoryDisk();
  const { log } = await openCollect(disk);
  const at: { location: number; size: number }[] = [];
  for (let i = 0; i < 200; i++) at.push(log.append(i + 2, 0, false, value(i)));
  await log.flush();
  for (let i = 200; i < 220; i++) at.push(log.append(i + 2, 0, false, value(i))); // not written
  const read = log.sequentialReader(1024);
  // In order, out of order, and past the written end: every record is itself.
  const order = [...at.keys(), 5, 150, 0, 219, 3];
  for (const i of order) {
    assertEquals(dec.decode(read(at[i].location, at[i].size)), dec.decode(value(i)));
  }
  // A changed byte inside a block fails that record's checksum.
  const name = (await disk.list(DIR)).sort()[0];
  disk.corrupt(`${DIR}/${name}`, at[1].location % 2 ** 32 + at[1].size - 1, enc.encode("#"));
  const fresh = log.sequentialReader(1024);
  fresh(at[0].location, at[0].size);
  assertThrows(() => fresh(at[1].location, at[1].size), RevisionLogCorruptError);
  // So does a record whose length in its header changed (its bytes still check).
  disk.corrupt(`${DIR}/${name}`, at[3].location % 2 ** 32, new Uint8Array([at[3].size]));
  const again = log.sequentialReader(1024);
  assertEquals(dec.decode(again(at[2].location, at[2].size)), dec.decode(value(2)));
  assertThrows(() => again(at[3].location, at[3].size), RevisionLogCorruptError);
  assertEquals(dec.decode(again(at[4].location, at[4].size)), dec.decode(value(4)));
  log.close();
});

Deno.test("revision log: a long run of writes is synced in the background every few MiB, one sync at a time", async () => {
  // A disk that can sync in the background, and says when it is asked to and how many overlap.
  let started = 0;
  let running = 0;
  let overlapping = 0;
  let waiting: (() => void)[] = [];
  let held = true;
  const release = () => {
    for (const resolve of waiting) resolve();
    waiting = [];
  };
  class BackgroundSyncDisk extends MemoryDisk {
    override async openAppend(path: string, preallocateBytes = 0) {
      const file = await super.openAppend(path, preallocateBytes);
      return {
        ...file,
        syncInBackground: async () => {
          started++;
          running++;
          overlapping = Math.max(overlapping, running);
          if (held) await new Promise<void>((resolve) => waiting.push(resolve));
          running--;
          await file.sync();
        },
      };
    }
  }
  const disk = new BackgroundSyncDisk();
  const log = await RevisionLog.open(disk, DIR, () => {}, { segmentBytes: 64 * 1024 * 1024 });
  const value = new Uint8Array(1000);
  const write = async (records: number, from: number) => {
    for (let i = 0; i < records; i++) log.append(from + i, 0, false, value);
    await log.flush();
  };
  await write(3 * 1024, 2); // ~3 MiB: below the step, nothing started
  assertEquals(started, 0);
  await write(2 * 1024, 10_000); // past 4 MiB: one background sync
  assertEquals(started, 1);
  await write(6 * 1024, 20_000); // another 6 MiB while it still runs: not a second one
  assertEquals([started, overlapping], [1, 1]);
  release();
  await new Promise((resolve) => setTimeout(resolve, 0));
  await write(5 * 1024, 30_000); // once it is done, the next step starts one again
  assertEquals([started, overlapping], [2, 1]);
  held = false;
  release();
  await log.sync();
  log.close();
});
