/**
 * A range over a large key space (several MB of response) as etcd #12342 made it an issue: detcd
 * writes such a response as it encodes it. What etcdctl prints from it must be etcd 3.4.23's,
 * byte for byte: all values, keys only, and a limit with a count.
 */
import assert from "node:assert/strict";
import {
  assertReference,
  KvClient,
  type MemberKind,
  requireReference,
  runCtl,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  startMember,
} from "./harness.ts";

const reference = requireReference();
const KEYS = 8000;
const VALUE = "x".repeat(300);

async function outputs(kind: MemberKind): Promise<string[]> {
  // The same advertised peer URL and name: the same member and cluster IDs in `-w fields`.
  const member = await startMember({
    kind,
    name: SHARED_MEMBER_NAME,
    advertisePeerUrl: SHARED_PEER_URL,
  });
  const client = new KvClient(member.endpoint);
  try {
    // Concurrent puts: revisions differ between runs, keys and values do not.
    for (let i = 0; i < KEYS; i += 200) {
      const batch = [];
      for (let j = i; j < Math.min(KEYS, i + 200); j++) {
        batch.push(client.put(`big/${String(j).padStart(6, "0")}`, `${VALUE}${j}`));
      }
      await Promise.all(batch);
    }
    const out: string[] = [];
    for (
      const args of [
        ["get", "big/", "--prefix"],
        ["get", "big/", "--prefix", "--keys-only"],
        ["get", "big/000100", "big/007900", "--print-value-only"],
        ["get", "big/", "--prefix", "--limit=5000", "-w", "fields"],
      ]
    ) {
      const r = await runCtl("etcdctl", ["--endpoints", member.endpoint, ...args], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, `${kind}: ${args.join(" ")}: ${r.stderr}`);
      // -w fields prints revisions, which concurrent puts make differ: keep the rest.
      out.push(r.stdout.replace(/"(Revision|CreateRevision|ModRevision)" : \d+/g, '"$1" : <REV>'));
    }
    return out;
  } finally {
    client.close();
    await member.stop();
  }
}

Deno.test({
  name: "etcd #12342, #12678: a multi-megabyte range is written as it is encoded and prints as " +
    "etcd's: every value, keys only, a sub-range, a limit",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assertReference();
    const [etcd, detcd] = await Promise.all([outputs("etcd"), outputs("detcd")]);
    assert.ok(etcd[0].length > 2_000_000, `a large response (${etcd[0].length} bytes printed)`);
    for (let i = 0; i < etcd.length; i++) {
      assert.ok(
        detcd[i] === etcd[i],
        `output ${i} differs (${detcd[i].length} vs ${etcd[i].length} bytes)`,
      );
    }
  },
});
