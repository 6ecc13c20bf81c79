import { assert, assertEquals, assertRejects, assertThrows } from "../testing.ts";
import { MemoryDisk } from "./memory_disk.ts";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WalEntrySchema } from "../../gen/detcdpb/internal_pb.ts";
import {
  decodeRecords,
  decodeWalEntry,
  encodeRecords,
  encodeWalEntry,
  Wal,
  WalCorruptError,
  walEntry,
  walHardState,
  WalRecordKind,
  walSnapshotMarker,
} from "./wal.ts";

const enc = new TextEncoder();
const entries = (from: number, n: number, term = 2) =>
  Array.from({ length: n }, (_, i) => walEntry(from + i, term, enc.encode(`v${from + i}`)));

Deno.test("wal returns every synced entry after a reopen", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "d/wal", 0);
  await wal.append(entries(1, 3));
  await wal.append(entries(4, 2));
  wal.close();
  const again = await Wal.open(disk, "d/wal", 0);
  assertEquals(again.entries.map((e) => Number(e.index)), [1, 2, 3, 4, 5]);
  assertEquals(again.truncatedTail, null);
  assertEquals(again.wal.lastIndex, 5);
});

Deno.test("wal skips entries covered by the snapshot index", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 5));
  const again = await Wal.open(disk, "w", 3);
  assertEquals(again.entries.map((e) => Number(e.index)), [4, 5]);
});

Deno.test("entries recovered after the snapshot do not keep their segment's whole buffer alive", async () => {
  const disk = new MemoryDisk({ preallocate: true });
  const segmentBytes = 64 * 1024;
  const { wal } = await Wal.open(disk, "w", 0, segmentBytes);
  const value = new Uint8Array(1000).fill(7);
  for (let i = 1; i <= 150; i++) await wal.append([walEntry(i, 2, value)], false);
  await wal.sync();
  wal.close();
  const again = await Wal.open(disk, "w", 100, segmentBytes);
  assertEquals(again.entries.map((e) => e.index), Array.from({ length: 50 }, (_, i) => 101 + i));
  for (const e of again.entries) {
    assertEquals(e.data, value);
    // Only the span of the entries kept: not the 64 KiB the segment was read into.
    assert(e.data.buffer.byteLength < 60 * 1024, `${e.data.buffer.byteLength} bytes held`);
  }
});

Deno.test("wal cuts a torn last record and keeps the ones before it", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 2));
  const [name] = await disk.list("w");
  const data = (await disk.readFile(`w/${name}`))!;
  // Simulate a write cut in the middle of the second record.
  await disk.truncate(`w/${name}`, data.length - 3);
  const again = await Wal.open(disk, "w", 0);
  assertEquals(again.entries.map((e) => Number(e.index)), [1]);
  assertEquals(typeof again.truncatedTail, "string");
  // New appends continue after the surviving entry.
  await again.wal.append(entries(2, 1));
  const third = await Wal.open(disk, "w", 0);
  assertEquals(third.entries.map((e) => Number(e.index)), [1, 2]);
});

Deno.test("wal loses unsynced writes on a crash but nothing synced", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 4));
  disk.crash();
  const again = await Wal.open(disk, "w", 0);
  assertEquals(again.entries.length, 4);
});

Deno.test("wal refuses corruption in the middle instead of replaying garbage", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 3));
  const [name] = await disk.list("w");
  disk.corrupt(`w/${name}`, 10, enc.encode("XX"));
  await assertRejects(() => Wal.open(disk, "w", 0), WalCorruptError);
});

Deno.test("CVE-2020-15106/15112: wal refuses an oversized record length without allocating it", () => {
  const data = encodeRecords(entries(1, 2));
  const view = new DataView(data.buffer);
  view.setUint32(0, 0x7fffffff, true);
  assertThrows(() => decodeRecords(data), WalCorruptError);
});

Deno.test("wal release drops only segments fully covered by the snapshot", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0, 64);
  for (let i = 1; i <= 10; i++) await wal.append(entries(i, 1));
  const first = (await disk.list("w"))[0];
  await wal.releaseTo(6);
  const again = await Wal.open(disk, "w", 6);
  assertEquals(again.entries.map((e) => Number(e.index)), [7, 8, 9, 10]);
  assertEquals((await disk.list("w")).includes(first), false);
  assertEquals((await disk.list("w")).length, wal.segmentCount);
});

Deno.test("wal on preallocated zero-filled segments treats the zero tail as the end", async () => {
  const disk = new MemoryDisk({ preallocate: true });
  const { wal } = await Wal.open(disk, "w", 0, 4096);
  await wal.append(entries(1, 3));
  await wal.append(entries(4, 1));
  disk.crash();
  const again = await Wal.open(disk, "w", 0, 4096);
  assertEquals(again.entries.map((e) => Number(e.index)), [1, 2, 3, 4]);
  await again.wal.append(entries(5, 2));
  const third = await Wal.open(disk, "w", 0, 4096);
  assertEquals(third.entries.map((e) => Number(e.index)), [1, 2, 3, 4, 5, 6]);
});

Deno.test("wal treats a half-written last batch on a preallocated segment as torn, not corrupt", async () => {
  const disk = new MemoryDisk({ preallocate: true });
  const { wal } = await Wal.open(disk, "w", 0, 8192);
  await wal.append(entries(1, 2));
  const big = [walEntry(3, 2, new Uint8Array(2000).fill(7))];
  await wal.append(big);
  const [name] = await disk.list("w");
  const data = (await disk.readFile(`w/${name}`))!;
  const start = encodeRecords(entries(1, 2)).length;
  // The sector in the middle of record 3 never reached the disk.
  const sector = Math.ceil((start + 600) / 512) * 512;
  disk.corrupt(`w/${name}`, sector, new Uint8Array(512));
  assertEquals(data.length, 8192);
  const again = await Wal.open(disk, "w", 0, 8192);
  assertEquals(again.entries.map((e) => Number(e.index)), [1, 2]);
  assertEquals(typeof again.truncatedTail, "string");
});

Deno.test("the hand-written WalEntry encoding is byte-identical to protobuf-es", () => {
  const cases: [number, number, number, number, number, bigint, number][] = [
    [0, 0, 0, 0, 0, 0n, 0],
    [1, 1, 0, 1, 0, 0n, 0],
    [127, 128, 1, 0, 0, 0n, 0],
    [16384, 2, 300, 0, 0, 0n, 0],
    [2 ** 35 + 7, 2 ** 31, 70000, 1, 0, 0n, 0],
    [Number.MAX_SAFE_INTEGER, 3, 5, 0, 0, 0n, 0],
    [0, 9, 0, 0, 1, 0xffffffffffffffffn, 12345],
    [77, 5, 0, 0, 2, 0n, 0],
  ];
  for (const [index, term, size, type, kind, vote, commit] of cases) {
    const r = { kind, index, term, type, data: new Uint8Array(size).fill(9), vote, commit };
    const proto = create(WalEntrySchema, {
      index: BigInt(index),
      term: BigInt(term),
      data: r.data,
      type,
      kind,
      vote,
      commit: BigInt(commit),
    });
    const label = `${index}/${term}/${size}/${kind}`;
    assertEquals(encodeWalEntry(r), toBinary(WalEntrySchema, proto), label);
    assertEquals(decodeWalEntry(encodeWalEntry(r)), r, label);
    assertEquals(fromBinary(WalEntrySchema, encodeWalEntry(r)), proto, label);
  }
});

Deno.test("wal recovery keeps the newest version of an overwritten tail", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 5, 2));
  // A new leader's log disagrees from index 4 on: the follower overwrites 4 and 5 with term 3.
  await wal.append(entries(4, 1, 3));
  assertEquals(wal.lastIndex, 4);
  await wal.append(entries(5, 2, 3));
  const again = await Wal.open(disk, "w", 0);
  assertEquals(again.entries.map((e) => [e.index, e.term]), [
    [1, 2],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [6, 3],
  ]);
  assertEquals(again.wal.lastIndex, 6);
});

Deno.test("wal refuses a gap in the log", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 2));
  await assertRejects(() => wal.append(entries(4, 1)));
});

Deno.test("wal returns the last hard state, also after old segments are released", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0, 128);
  await wal.append([walHardState(2, 7n, 0), ...entries(1, 2)]);
  for (let i = 3; i <= 12; i++) await wal.append([...entries(i, 1), walHardState(2, 7n, i - 1)]);
  // Without sync: durable only with the next synced append or sync().
  await wal.append([walHardState(3, 0n, 11)], false);
  await wal.sync();
  await wal.releaseTo(10);
  const again = await Wal.open(disk, "w", 10, 128);
  assertEquals(again.hardState?.kind, WalRecordKind.HardState);
  assertEquals([again.hardState?.term, again.hardState?.vote, again.hardState?.commit], [
    3,
    0n,
    11,
  ]);
  assertEquals(again.entries.map((e) => e.index), [11, 12]);
});

Deno.test("a snapshot marker restarts the log after the snapshot", async () => {
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 4));
  await wal.append([walSnapshotMarker(20, 5)]);
  assertEquals(wal.lastIndex, 20);
  await wal.append(entries(21, 2, 5));
  const again = await Wal.open(disk, "w", 20);
  assertEquals(again.entries.map((e) => e.index), [21, 22]);
  // Without the snapshot file the marker cannot be honoured: refuse instead of losing 5..20.
  await assertRejects(() => Wal.open(disk, "w", 4), WalCorruptError);
});

Deno.test("simulation seed 42921: a received snapshot whose marker never reached the WAL covers the gap after a restart", async () => {
  // Entries 1..4 durable; then a snapshot at 20 arrived, its file was saved and the member crashed
  // before the WAL's marker was written. It restarts from the file (WAL opened after 20) and logs
  // on from 21, so the WAL holds 1..4 and then 21.. with nothing between.
  const disk = new MemoryDisk();
  const { wal } = await Wal.open(disk, "w", 0);
  await wal.append(entries(1, 4));
  wal.close();
  const restarted = await Wal.open(disk, "w", 20);
  assertEquals(restarted.entries, []);
  await restarted.wal.append(entries(21, 2, 5));
  restarted.wal.close();
  // Opened again from the same snapshot: the gap 5..20 is the snapshot's, as it was at the restart.
  const again = await Wal.open(disk, "w", 20);
  assertEquals(again.entries.map((e) => e.index), [21, 22]);
  again.wal.close();
  // Without that snapshot (an older one loaded) the gap is a hole: refuse.
  await assertRejects(() => Wal.open(disk, "w", 4), WalCorruptError, "entry 21 follows 4");
  await assertRejects(() => Wal.open(disk, "w", 19), WalCorruptError, "entry 21 follows 4");
});

Deno.test("a WAL that rolled over preallocated segments reopens with every entry", async () => {
  const disk = new MemoryDisk({ preallocate: true });
  const { wal } = await Wal.open(disk, "w", 0, 4096);
  for (let i = 1; i <= 40; i++) {
    await wal.append([walEntry(i, 2, new Uint8Array(300).fill(i)), walHardState(2, 1n, i)]);
  }
  assert(wal.segmentCount > 2, `segments rolled (${wal.segmentCount})`);
  wal.close();
  const again = await Wal.open(disk, "w", 0, 4096);
  assertEquals(again.entries.map((e) => e.index), Array.from({ length: 40 }, (_, i) => i + 1));
  assertEquals(again.hardState?.commit, 40);
  // A closed segment is cut to its records (no zero tail left in the middle of the log).
  const names = (await disk.list("w")).sort();
  const first = (await disk.readFile(`w/${names[0]}`))!;
  assert(first.length < 4096, `closed segment cut to ${first.length} bytes`);
});

/** A MemoryDisk that records which files were opened for appending and which were renamed. */
class RecordingDisk extends MemoryDisk {
  opened: string[] = [];
  renamed: string[] = [];
  override openAppend(path: string, preallocateBytes = 0) {
    this.opened.push(path);
    return super.openAppend(path, preallocateBytes);
  }
  override rename(from: string, to: string) {
    this.renamed.push(`${from} -> ${to}`);
    return super.rename(from, to);
  }
}

Deno.test("a roll takes the spare segment made while the last one filled, and a crash right after loses nothing", async () => {
  const disk = new RecordingDisk({ preallocate: true });
  const { wal } = await Wal.open(disk, "w", 0, 4096);
  // 4 KiB segments, ~340 B a batch: a spare once a segment is a quarter full, a roll every ~12.
  for (let i = 1; i <= 40; i++) {
    await wal.append([walEntry(i, 2, new Uint8Array(300).fill(i)), walHardState(2, 1n, i)]);
  }
  assert(wal.segmentCount >= 3, `segments rolled (${wal.segmentCount})`);
  const segments = disk.opened.filter((p) => p.endsWith(".wal"));
  // Only the first segment is made by the roll itself; every later one is a renamed spare.
  assertEquals(segments.length, 1, `segments made at a roll: ${segments.join(", ")}`);
  assertEquals(disk.renamed.length, wal.segmentCount - 1);
  assert(
    disk.renamed.every((r) => /spare\.tmp -> w\/[0-9a-f]{16}-[0-9a-f]{16}\.wal$/.test(r)),
    disk.renamed.join("; "),
  );
  // A spare for the next roll is ready beside the log, and a crash now (a power cut) keeps every
  // synced entry: each renamed segment's name was made durable before its entries were written.
  assert((await disk.list("w")).some((n) => n.endsWith(".spare.tmp")), "no spare made");
  disk.crash();
  const again = await Wal.open(disk, "w", 0, 4096);
  assertEquals(again.entries.map((e) => e.index), Array.from({ length: 40 }, (_, i) => i + 1));
  // The start removed the spare: it was never part of the log.
  assertEquals((await disk.list("w")).filter((n) => !n.endsWith(".wal")), []);
  again.wal.close();
});

Deno.test("a closed segment not yet cut to its records reads as ending at them", async () => {
  // The roll leaves the cut to the background: a crash before it leaves a zero tail in a segment
  // that is not the last, which a start must read as that segment's end, not as corruption.
  const disk = new MemoryDisk({ preallocate: true });
  const { wal } = await Wal.open(disk, "w", 0, 4096);
  for (let i = 1; i <= 15; i++) await wal.append([walEntry(i, 2, new Uint8Array(300).fill(i))]);
  wal.close();
  const names = (await disk.list("w")).filter((n) => n.endsWith(".wal")).sort();
  assert(names.length >= 2, `rolled: ${names}`);
  const first = (await disk.readFile(`w/${names[0]}`))!;
  const padded = new Uint8Array(4096);
  padded.set(first);
  await disk.writeFileAtomic(`w/${names[0]}`, padded);
  const again = await Wal.open(disk, "w", 0, 4096);
  assertEquals(again.entries.map((e) => e.index), Array.from({ length: 15 }, (_, i) => i + 1));
});

Deno.test("a release after a snapshot removes no segment while a roll's new name is not yet synced", async () => {
  // The directory's changes one at a time: a crash after a removal never finds the renamed
  // segment's name lost (the real-process strace test checks the same on a member).
  const ops: string[] = [];
  let hold: Promise<void> | null = null;
  class OrderDisk extends MemoryDisk {
    override rename(from: string, to: string) {
      ops.push("rename");
      return super.rename(from, to);
    }
    override remove(path: string) {
      ops.push("remove");
      return super.remove(path);
    }
    override async syncDir(path: string) {
      if (hold !== null) await hold;
      ops.push("syncDir");
      return super.syncDir(path);
    }
  }
  const disk = new OrderDisk({ preallocate: true });
  const { wal } = await Wal.open(disk, "w", 0, 4096);
  let i = 0;
  while (wal.segmentCount < 3) await wal.append([walEntry(++i, 2, new Uint8Array(300).fill(1))]);
  // Fill the last segment up to its roll, with its spare made.
  const before = wal.segmentCount;
  let release = () => {};
  ops.length = 0;
  for (;;) {
    const appended = i + 1;
    hold = new Promise<void>((r) => (release = r));
    const append = wal.append([walEntry(appended, 2, new Uint8Array(300).fill(2))]);
    await new Promise((r) => setTimeout(r, 0));
    i = appended;
    if (wal.segmentCount > before || ops.includes("rename")) {
      // The roll renamed the spare and waits in its directory sync: now the release.
      const released = wal.releaseTo(i - 1);
      await new Promise((r) => setTimeout(r, 0));
      hold = null;
      release();
      await append;
      await released;
      break;
    }
    hold = null;
    release();
    await append;
    ops.length = 0;
  }
  const rename = ops.indexOf("rename");
  assert(rename >= 0, `no roll seen: ${ops}`);
  const synced = ops.indexOf("syncDir", rename);
  const removed = ops.indexOf("remove", rename);
  assert(removed >= 0, `the release removed nothing: ${ops}`);
  assert(synced >= 0 && synced < removed, `removed before the new name was synced: ${ops}`);
  wal.close();
});
