/**
 * etcd #14685: a member killed while it defragments must restart with all of its data. A detcd
 * member defragments by rewriting its revision log's garbage away while it serves; the log is
 * rebuilt from the snapshot and WAL at start, so a kill at any point of the rewrite loses nothing.
 * The member is loaded (history on four keys, most of it compacted away), `detcdctl defrag` is
 * started, and the member is SIGKILLed a moment later, then again while a second defragment runs
 * right after the restart.
 */
import assert from "node:assert/strict";
import { KvClient, type Member, requireDetcd, runCtl, sleep, startMember } from "./harness.ts";

const detcd = requireDetcd();

async function latest(member: Member): Promise<{ revision: number; values: string[] }> {
  const client = new KvClient(member.endpoint);
  try {
    const r = await client.range("k", "l");
    const dec = new TextDecoder();
    return {
      revision: Number(r.header?.revision ?? 0n),
      values: r.kvs.map((kv) => `${dec.decode(kv.key)}=${dec.decode(kv.value).slice(-6)}`),
    };
  } finally {
    client.close();
  }
}

Deno.test({
  name: "etcd #14685: a member killed while it defragments restarts with all its data",
  ignore: detcd.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const member = await startMember({ kind: "detcd" });
    try {
      const client = new KvClient(member.endpoint);
      const filler = "x".repeat(32 * 1024);
      try {
        for (let i = 0; i < 300; i++) {
          await client.put(`k${i % 4}`, `${filler}${String(i).padStart(6, "0")}`);
        }
      } finally {
        client.close();
      }
      const before = await latest(member);
      assert.deepEqual(before.values, ["k0=000296", "k1=000297", "k2=000298", "k3=000299"]);
      const compact = await runCtl("etcdctl", [
        `--endpoints=${member.endpoint}`,
        "compaction",
        String(before.revision),
      ]);
      assert.equal(compact.code, 0, compact.stderr);

      for (const round of [1, 2]) {
        const defrag = runCtl("detcdctl", [`--endpoints=${member.endpoint}`, "defrag"]);
        await sleep(round === 1 ? 400 : 50);
        await member.kill("SIGKILL");
        await defrag; // failed or finished: either way the member is gone
        await member.restart();
        assert.deepEqual(await latest(member), before, `after kill ${round}`);
      }
      // And a defragment that is let finish leaves the same data.
      const done = await runCtl("detcdctl", [`--endpoints=${member.endpoint}`, "defrag"]);
      assert.equal(done.code, 0, done.stderr);
      assert.deepEqual(await latest(member), before);
    } finally {
      await member.stop();
    }
  },
});
