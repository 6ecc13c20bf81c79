/**
 * The real-process chaos run (tests/chaos): its watch checks and its peer proxy on their own, then
 * a bounded run against detcd and the same run against etcd 3.4.23, each of which must end with a
 * linearizable history, every watch guarantee kept and equal hashes on every member.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { freePort, requireDetcd, requireReference, sleep } from "./harness.ts";
import { runChaos } from "./chaos/run.ts";
import { WatchCheck } from "./chaos/run.ts";
import { Partitions, PeerProxy } from "./chaos/proxy.ts";

const encoder = new TextEncoder();

function response(
  events: [number, string, string | null][],
  extra: { created?: boolean; canceled?: boolean; compactRevision?: number; header?: number } = {},
) {
  return {
    header: extra.header === undefined ? undefined : { revision: BigInt(extra.header) },
    created: extra.created ?? false,
    canceled: extra.canceled ?? false,
    compactRevision: BigInt(extra.compactRevision ?? 0),
    events: events.map(([rev, key, value]) => ({
      type: value === null ? 1 : 0,
      kv: {
        key: encoder.encode(key),
        value: encoder.encode(value ?? ""),
        modRevision: BigInt(rev),
      },
    })),
  };
}

Deno.test("chaos watch check: in order, no repeat, no gap, members agree, progress not ahead", () => {
  const check = new WatchCheck();
  const a = check.watcher("a");
  const b = check.watcher("b");
  assert.deepEqual(a.take(response([], { created: true, header: 1 }), 1), []);
  assert.deepEqual(a.take(response([[2, "k", "1"], [3, "k", "2"]]), 1), []);
  assert.deepEqual(b.take(response([[2, "k", "1"]]), 1), []);
  // A repeat, a gap, a disagreement.
  assert.match(a.take(response([[3, "k", "2"]]), 1)[0], /revision 3 after 3/);
  assert.match(a.take(response([[5, "k", "3"]]), 1)[0], /a gap/);
  assert.match(b.take(response([[3, "k", "other"]]), 1)[0], /disagree on revision 3/);
  // Progress at 7, then an event at 6: counted as etcd #15220.
  const c = check.watcher("c");
  c.take(response([], { header: 7 }), 1);
  assert.deepEqual(c.take(response([[6, "j", "x"]]), 1), []);
  assert.deepEqual(check.progressAhead, 1);
  // A cancel as compacted at 10 allows the gap across the compaction (10 itself may be a delete
  // the compaction dropped), and no further.
  const d = check.watcher("d");
  d.take(response([[2, "k", "1"]]), 1);
  d.take(response([], { canceled: true, compactRevision: 10 }), 3);
  assert.deepEqual(d.take(response([[11, "k", "9"]]), 10), []);
  assert.match(d.take(response([[13, "k", "9"]]), 10)[0], /a gap/);
  assert.ok(!check.caughtUp(14));
  const e = check.watcher("e");
  e.take(response([[2, "k", "1"]]), 1);
  e.take(response([], { canceled: true, compactRevision: 10 }), 3);
  assert.deepEqual(e.take(response([[10, "j", "x"], [11, "k", "9"]]), 10), []);
  assert.match(e.take(response([[14, "k", "9"]]), 10)[0], /a gap/);
});

/** Connects through the proxy as member `from`; resolves with what came back before the close. */
function exchange(port: number, from: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let got = "";
    socket.on("data", (d: Uint8Array) => got += new TextDecoder().decode(d));
    socket.on("error", () => {});
    socket.on("close", () => resolve(got));
    socket.write(`POST /raft/stream HTTP/1.1\r\nX-Server-From: ${from}\r\n\r\nping`);
    setTimeout(() => socket.end(), 500);
  });
}

Deno.test("chaos peer proxy: passes bytes, drops a cut link by X-Server-From, heals", async () => {
  const echo = net.createServer((s) => s.on("data", (d: Uint8Array) => s.write(d)));
  const target = freePort();
  await new Promise<void>((r) => echo.listen(target, "127.0.0.1", () => r()));
  const partitions = new Partitions(3);
  const listen = freePort();
  const proxy = new PeerProxy(
    0,
    listen,
    target,
    (hex) => ({ a1: 1, a2: 2 })[hex] ?? -1,
    partitions.policy,
  );
  await proxy.listen();
  try {
    assert.match(await exchange(listen, "a1"), /ping$/);
    partitions.separate([1]);
    proxy.refresh();
    assert.deepEqual(await exchange(listen, "a1"), "");
    assert.match(await exchange(listen, "a2"), /ping$/); // member 2 still reaches member 0
    partitions.healAll();
    proxy.refresh();
    assert.match(await exchange(listen, "a1"), /ping$/);
  } finally {
    await proxy.close();
    await new Promise((r) => echo.close(r));
    await sleep(10);
  }
});

for (const target of ["detcd", "etcd"] as const) {
  const requirement = target === "etcd" ? requireReference() : requireDetcd();
  Deno.test({
    name:
      `chaos run against ${target}: 15 s of faults, then linearizable, watches kept, equal hashes`,
    ignore: requirement.ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const lines: string[] = [];
      const summary = await runChaos({
        seconds: 15,
        seed: 20261205,
        members: 3,
        target,
        log: (line) => lines.push(line),
      });
      const context = `${summary.line}\n${summary.problems.join("\n")}\n${lines.join("\n")}`;
      assert.deepEqual(summary.problems, [], context);
      assert.deepEqual(summary.linearizable, "yes", context);
      assert.deepEqual(summary.hashes, "equal", context);
      assert.ok(summary.faults >= 2, context);
      // A run in which little succeeded proves little.
      assert.ok(summary.ok >= 500, context);
      assert.ok(summary.watchEvents >= 500, context);
    },
  });
}
