/**
 * Proposals.decode: a write this member proposed comes back to apply as the object it encoded
 * (no decode), anything else is decoded from the entry's bytes, and the two always mean the same.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { AuthUserAddEntrySchema, InternalRequestSchema } from "../../gen/detcdpb/internal_pb.ts";
import { PutRequestSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals } from "../testing.ts";
import { Proposals } from "./proposals.ts";

function proposals() {
  const sent: Uint8Array[] = [];
  const p = new Proposals({
    memberId: 1n,
    startMs: 0,
    maxRequestBytes: 1 << 20,
    raft: { propose: (data) => void sent.push(data), proposeConfChange() {} },
    schedule() {},
  });
  return { p, sent };
}

Deno.test("decode: a proposed put comes back as its own object once; copies of its bytes decode to the same request", () => {
  const { p, sent } = proposals();
  const put = create(PutRequestSchema, { key: new Uint8Array([1, 2]), value: new Uint8Array([3]) });
  void p.propose({ case: "put", value: put }, 100, 1n, 0, { username: "alice", revision: 4 });
  const [data] = sent;
  const mine = p.decode(data);
  assert(mine.request.case === "put" && mine.request.value === put, "the proposed object");
  assertEquals(mine.authUsername, "alice");
  // A follower (or this member after a restart) has only the bytes: the same request.
  const copy = p.decode(data.slice());
  assert(copy.request.value !== put);
  assertEquals(toBinary(InternalRequestSchema, copy), data);
  assertEquals(copy.id, mine.id);
  // Applied once: the same array again (never in practice) is decoded, not handed out twice.
  assert(p.decode(data).request.value !== put);
});

Deno.test("decode: a request with strings is always decoded (a lone surrogate becomes U+FFFD, as on every other member)", () => {
  const { p, sent } = proposals();
  const add = create(AuthUserAddEntrySchema, { name: "bad\ud800name", hashedPassword: "h" });
  void p.propose({ case: "authUserAdd", value: add }, 100, 1n);
  const decoded = p.decode(sent[0]);
  assert(decoded.request.case === "authUserAdd");
  assert(decoded.request.value !== add, "decoded, not the proposed object");
  assertEquals(decoded.request.value.name, "bad\ufffdname");
  // A put by a user whose name is not well-formed is decoded too.
  void p.propose(
    { case: "put", value: create(PutRequestSchema, { key: new Uint8Array([1]) }) },
    100,
    1n,
    0,
    {
      username: "x\udc00",
      revision: 1,
    },
  );
  assertEquals(p.decode(sent[1]).authUsername, "x\ufffd");
});

Deno.test("propose: entries' bytes share slabs (Raft keeps them past the young generation), each exactly its request", () => {
  const { p, sent } = proposals();
  const puts = Array.from({ length: 2000 }, (_, i) =>
    create(PutRequestSchema, {
      key: new TextEncoder().encode(`key-${i}`),
      value: new Uint8Array(300).fill(i & 0xff),
    }));
  for (const put of puts) void p.propose({ case: "put", value: put }, 100, 1n);
  assertEquals(sent.length, puts.length);
  // Far fewer buffers than entries: ~800 of these fit a slab.
  const buffers = new Set(sent.map((d) => d.buffer));
  assert(buffers.size <= 5, `${buffers.size} buffers for ${sent.length} entries`);
  for (let i = 0; i < sent.length; i++) {
    // Decoded from a copy of its bytes (not the proposed object): nothing of a neighbour in them.
    const decoded = p.decode(sent[i].slice());
    assert(decoded.request.case === "put");
    assertEquals(decoded.request.value.key, puts[i].key);
    assertEquals(decoded.request.value.value, puts[i].value);
  }
});
