import { assertEquals } from "../core/testing.ts";
import { RevisionLog } from "../core/storage/mod.ts";
import { DenoDisk } from "./deno_disk.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function value(i: number): Uint8Array {
  return enc.encode(`value-${i}-${"v".repeat(i % 50)}`);
}

Deno.test("DenoDisk.openRead: a missing file is null", async () => {
  const root = await Deno.makeTempDir();
  try {
    assertEquals(await new DenoDisk().openRead(`${root}/nothing`), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("DenoDisk.mkdirp syncs the parent of each directory it makes, outermost first", async () => {
  const root = await Deno.makeTempDir();
  const synced: string[] = [];
  class Recording extends DenoDisk {
    override async syncDir(dir: string): Promise<void> {
      synced.push(dir);
      await super.syncDir(dir);
    }
  }
  try {
    const disk = new Recording();
    await disk.mkdirp(`${root}/a/b/c/`);
    assertEquals(synced, [root, `${root}/a`, `${root}/a/b`]);
    assertEquals((await Deno.stat(`${root}/a/b/c`)).mode! & 0o777, 0o700);
    synced.length = 0;
    await disk.mkdirp(`${root}/a/b`);
    assertEquals(synced, [], "an existing directory needs no sync");
    await disk.mkdirp(`${root}/a/d`);
    assertEquals(synced, [`${root}/a`]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("revision log on real files: positional reads after flush and after reopening", async () => {
  const root = await Deno.makeTempDir();
  try {
    const disk = new DenoDisk();
    const dir = `${root}/revs`;
    const log = await RevisionLog.open(disk, dir, () => {}, { segmentBytes: 8192 });
    const locs = [];
    for (let i = 0; i < 500; i++) locs.push(log.append(i + 2, 0, false, value(i)));
    await log.sync();
    for (const i of [0, 1, 250, 499]) {
      assertEquals(dec.decode(log.read(locs[i].location, locs[i].size)), dec.decode(value(i)));
    }
    log.close();
    const seen: string[] = [];
    const again = await RevisionLog.open(disk, dir, (r) => seen.push(dec.decode(r.data)), {
      segmentBytes: 8192,
    });
    assertEquals(seen.length, 500);
    assertEquals(seen[321], dec.decode(value(321)));
    assertEquals(dec.decode(again.read(locs[7].location, locs[7].size)), dec.decode(value(7)));
    again.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("DenoDisk.writeFileAtomic: a file written and synced a few MiB at a time reads back whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "detcd-disk-" });
  try {
    const disk = new DenoDisk();
    // Not a multiple of the write-and-sync step, so the last piece is a short one.
    const data = new Uint8Array(9 * 1024 * 1024 + 12345);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    let syncs = 0;
    await disk.writeFileAtomic(`${dir}/big.snap`, data, () => syncs++);
    assertEquals(await disk.readFile(`${dir}/big.snap`), data);
    assertEquals(syncs, 1, "the last sync is the one observed");
    assertEquals(await disk.list(dir), ["big.snap"], "no temporary file left");
    // Replacing it with a small file leaves only the small one.
    await disk.writeFileAtomic(`${dir}/big.snap`, new Uint8Array([1, 2, 3]));
    assertEquals(await disk.readFile(`${dir}/big.snap`), new Uint8Array([1, 2, 3]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
