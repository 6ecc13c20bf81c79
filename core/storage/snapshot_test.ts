import { assertEquals, assertThrows } from "../testing.ts";
import { MemoryDisk } from "./memory_disk.ts";
import { decodeSnapshot, encodeSnapshot, Snapshotter } from "./snapshot.ts";

const enc = new TextEncoder();

Deno.test("snapshot round-trips index, term and data", () => {
  const s = { index: 42, term: 3, data: enc.encode("state") };
  const back = decodeSnapshot(encodeSnapshot(s));
  assertEquals(back.index, 42);
  assertEquals(back.term, 3);
  assertEquals(back.data, s.data);
});

Deno.test("snapshot with a flipped byte fails its checksum", () => {
  const bytes = encodeSnapshot({ index: 1, term: 1, data: enc.encode("abcdef") });
  bytes[bytes.length - 1] ^= 1;
  assertThrows(() => decodeSnapshot(bytes), Error, "checksum");
});

Deno.test("snapshotter loads the newest valid snapshot and skips a broken one", async () => {
  const disk = new MemoryDisk();
  const snaps = new Snapshotter(disk, "snap");
  await snaps.save({ index: 10, term: 2, data: enc.encode("ten") });
  await snaps.save({ index: 20, term: 2, data: enc.encode("twenty") });
  const names = await disk.list("snap");
  disk.corrupt(`snap/${names.find((n) => n.endsWith("14.snap"))}`, 40, enc.encode("!"));
  const skipped: string[] = [];
  const s = await snaps.loadNewest((name) => skipped.push(name));
  assertEquals(s?.index, 10);
  assertEquals(skipped.length, 1);
});

Deno.test("snapshotter keeps the newest two: the newest and the one to fall back to", async () => {
  const disk = new MemoryDisk();
  const snaps = new Snapshotter(disk, "snap");
  for (let i = 1; i <= 8; i++) await snaps.save({ index: i, term: 2, data: enc.encode(`${i}`) });
  assertEquals((await disk.list("snap")).length, 2);
  assertEquals((await snaps.loadNewest(() => {}))?.index, 8);
  // The newest unreadable: the previous one is there.
  disk.corrupt(`snap/${(await disk.list("snap"))[1]}`, 36, enc.encode("x"));
  assertEquals((await snaps.loadNewest(() => {}))?.index, 7);
});
