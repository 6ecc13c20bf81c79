import assert from "node:assert/strict";
import { MemoryDisk } from "./memory_disk.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array | null) => data === null ? null : new TextDecoder().decode(data);

Deno.test("MemoryDisk crash: a created file survives only once its directory is synced", async () => {
  const disk = new MemoryDisk();
  const a = await disk.openAppend("d/a");
  await a.write(bytes("one"));
  await a.sync(); // the bytes are synced, the directory entry is not
  disk.crash();
  assert.equal(await disk.readFile("d/a"), null);
  assert.deepEqual(await disk.list("d"), []);

  const b = await disk.openAppend("d/b");
  await b.write(bytes("two"));
  await b.sync();
  await disk.syncDir("d");
  await b.write(bytes("-unsynced"));
  disk.crash();
  assert.equal(text(await disk.readFile("d/b")), "two");
});

Deno.test("MemoryDisk crash: a removal not followed by a directory sync is undone", async () => {
  const disk = new MemoryDisk();
  const f = await disk.openAppend("d/x");
  await f.write(bytes("kept"));
  await f.sync();
  await disk.syncDir("d");
  await disk.remove("d/x");
  assert.equal(await disk.readFile("d/x"), null);
  disk.crash();
  assert.equal(text(await disk.readFile("d/x")), "kept");
  await disk.remove("d/x");
  await disk.syncDir("d");
  disk.crash();
  assert.equal(await disk.readFile("d/x"), null);
});

Deno.test("MemoryDisk crash: reopening for append truncates durably only at the next sync", async () => {
  const disk = new MemoryDisk();
  const f = await disk.openAppend("d/w");
  await f.write(bytes("old contents"));
  await f.sync();
  await disk.syncDir("d");
  const again = await disk.openAppend("d/w");
  assert.equal(text(await disk.readFile("d/w")), "");
  await again.write(bytes("new"));
  assert.equal(text(await disk.readFile("d/w")), "new");
  disk.crash();
  assert.equal(text(await disk.readFile("d/w")), "old contents");
  const third = await disk.openAppend("d/w");
  await third.write(bytes("new"));
  await third.sync();
  disk.crash();
  assert.equal(text(await disk.readFile("d/w")), "new");
});

Deno.test("MemoryDisk crash: atomic writes and truncations are durable on return", async () => {
  const disk = new MemoryDisk();
  await disk.writeFileAtomic("d/snap", bytes("snapshot"));
  const f = await disk.openAppend("d/seg");
  await f.write(bytes("0123456789"));
  await f.sync();
  await disk.syncDir("d");
  await disk.truncate("d/seg", 4);
  disk.crash();
  assert.equal(text(await disk.readFile("d/snap")), "snapshot");
  assert.equal(text(await disk.readFile("d/seg")), "0123");
});
