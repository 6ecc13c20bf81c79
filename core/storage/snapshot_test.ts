import { assert, assertEquals, assertRejects, assertThrows } from "../testing.ts";
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

/** Reads a SnapshotFile's data whole (small test data). */
function dataOf(file: { size: number; readAt(buf: Uint8Array, position: number): number }) {
  const out = new Uint8Array(file.size);
  assertEquals(file.readAt(out, 0), file.size);
  return out;
}

Deno.test("a snapshot received in chunks is written as it comes, installed, and read back verified", async () => {
  const disk = new MemoryDisk();
  const snaps = new Snapshotter(disk, "snap");
  await snaps.save({ index: 5, term: 1, data: enc.encode("older") });
  const data = enc.encode("the state, in three chunks");
  const receiving = await snaps.receive(9, 2, data.length);
  await receiving.write(data.subarray(0, 4));
  await receiving.write(data.subarray(4, 10));
  await receiving.write(data.subarray(10));
  await receiving.finish();
  // Not this member's snapshot until installed (Raft may refuse the message).
  assertEquals((await snaps.loadNewest(() => {}))?.index, 5);
  await snaps.install(9, 2);
  const newest = await snaps.loadNewest(() => {});
  assertEquals([newest?.index, newest?.term, newest?.data], [9, 2, data]);
  const file = await snaps.open(9, 2);
  assertEquals(dataOf(file!), data);
  assertEquals([file!.index, file!.term], [9, 2]);
  file!.close();
  // A file written whole opens the same way.
  assertEquals(dataOf((await snaps.open(5, 1))!), enc.encode("older"));
  assertEquals(await snaps.open(7, 1), null);
});

Deno.test("a received snapshot that does not verify or did not all arrive is refused", async () => {
  const disk = new MemoryDisk();
  const snaps = new Snapshotter(disk, "snap");
  const data = enc.encode("0123456789");
  const short = await snaps.receive(3, 1, data.length);
  await short.write(data.subarray(0, 6));
  await assertRejects(() => short.finish(), Error, "6 bytes of 10 arrived");
  await short.abort();
  const long = await snaps.receive(3, 1, 4);
  await assertRejects(() => long.write(data), Error, "more data than announced");
  await long.abort();
  assertEquals(await disk.list("snap"), []);

  const ok = await snaps.receive(4, 1, data.length);
  await ok.write(data);
  await ok.finish();
  await snaps.install(4, 1);
  const name = (await disk.list("snap"))[0];
  disk.corrupt(`snap/${name}`, 40, enc.encode("!"));
  await assertRejects(() => snaps.open(4, 1), Error, "checksum mismatch");
  const bytes = (await disk.readFile(`snap/${name}`))!;
  assertThrows(() => decodeSnapshot(bytes), Error, "checksum");
});

Deno.test("received snapshots never installed are removed, and an install survives a crash once done", async () => {
  const disk = new MemoryDisk();
  const snaps = new Snapshotter(disk, "snap");
  for (const index of [6, 8]) {
    const r = await snaps.receive(index, 1, 3);
    await r.write(enc.encode("abc"));
    await r.finish();
  }
  await snaps.install(8, 1);
  await snaps.removePartial();
  assertEquals((await disk.list("snap")).length, 1);
  disk.crash();
  assertEquals((await snaps.loadNewest(() => {}))?.index, 8);
});

Deno.test("a large snapshot being received is synced in the background every few MiB, not only at its end", async () => {
  const syncs: number[] = [];
  let written = 0;
  class BackgroundSyncDisk extends MemoryDisk {
    override async openAppend(path: string, preallocateBytes = 0) {
      const file = await super.openAppend(path, preallocateBytes);
      return {
        ...file,
        write: async (data: Uint8Array) => {
          written += data.length;
          await file.write(data);
        },
        syncInBackground: async () => {
          syncs.push(written);
          await file.sync();
        },
      };
    }
  }
  const snaps = new Snapshotter(new BackgroundSyncDisk(), "snap");
  const length = 10 * 1024 * 1024 + 5;
  const receiving = await snaps.receive(9, 2, length);
  const chunk = new Uint8Array(32 * 1024).fill(7);
  for (let at = 0; at < length; at += chunk.length) {
    await receiving.write(chunk.subarray(0, Math.min(chunk.length, length - at)));
  }
  await receiving.finish();
  // Two along the way (after 4 and 8 MiB of data, plus the header), and the last one at its end.
  assertEquals(syncs.length, 3, `syncs after ${syncs.join(", ")} bytes`);
  assert(syncs[0] < 4.1 * 1024 * 1024 && syncs[1] < 8.1 * 1024 * 1024, `${syncs}`);
  assertEquals(syncs[2], written);
  await snaps.install(9, 2);
  const file = await snaps.open(9, 2);
  assertEquals(file!.size, length);
  file!.close();
});
