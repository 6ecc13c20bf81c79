import { assertEquals, assertThrows } from "../testing.ts";
import { clusterId, idHex, memberId, parseInitialCluster } from "./ids.ts";

Deno.test("member and cluster IDs match the ones etcd 3.4.23 derives", () => {
  // Observed from real etcd: --initial-advertise-peer-urls http://127.0.0.1:26380, default token.
  const m = memberId(["http://127.0.0.1:26380"], "etcd-cluster");
  assertEquals(idHex(m), "8876210cd96651c6");
  assertEquals(idHex(clusterId([m])), "7e1de051b63089b8");
});

Deno.test("member ID ignores peer URL order but not the token", () => {
  const a = memberId(["http://b:2380", "http://a:2380"], "t");
  assertEquals(a, memberId(["http://a:2380", "http://b:2380"], "t"));
  assertEquals(a === memberId(["http://a:2380", "http://b:2380"], "u"), false);
});

Deno.test("initial cluster merges URLs of the same name and rejects garbage", () => {
  assertEquals(parseInitialCluster("a=http://x:1,b=http://y:2,a=http://z:3"), [
    { name: "a", peerUrls: ["http://x:1", "http://z:3"] },
    { name: "b", peerUrls: ["http://y:2"] },
  ]);
  assertThrows(() => parseInitialCluster("nonsense"), Error, "--initial-cluster");
});
