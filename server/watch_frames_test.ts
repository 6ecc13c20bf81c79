/**
 * The Watch service's event frames (EventFrames) are byte for byte the gRPC frames of the
 * WatchResponse protobuf-es encodes: puts and deletes, prev_kv, leases, several events, watch IDs
 * 0, small, large and negative, and headers that change between calls (a cached header or event
 * must never leak into another response).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { ResponseHeaderSchema, WatchResponseSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import { type Event, Event_EventType, EventSchema, KeyValueSchema } from "../gen/mvccpb/kv_pb.ts";
import { encodeGrpcFrame } from "../core/wire/mod.ts";
import { assertEquals } from "../core/testing.ts";
import { EventFrames } from "./watch_service.ts";

const enc = new TextEncoder();

function kv(key: string, value: string, rev: number, lease = 0n) {
  return create(KeyValueSchema, {
    key: enc.encode(key),
    value: enc.encode(value),
    createRevision: 2n,
    modRevision: BigInt(rev),
    version: BigInt(rev - 1),
    lease,
  });
}

Deno.test("event frames are the WatchResponse frames protobuf-es encodes", () => {
  const put = create(EventSchema, { type: Event_EventType.PUT, kv: kv("a", "x".repeat(300), 7) });
  const withPrev = create(EventSchema, {
    type: Event_EventType.PUT,
    kv: kv("a", "y", 8, 0x7fff_ffff_ffffn),
    prevKv: kv("a", "x", 7),
  });
  const del = create(EventSchema, {
    type: Event_EventType.DELETE,
    kv: create(KeyValueSchema, { key: enc.encode("b"), modRevision: 9n }),
  });
  const headers = [
    create(ResponseHeaderSchema, {
      clusterId: 0xdeadbeefn,
      memberId: 1n,
      revision: 9n,
      raftTerm: 2n,
    }),
    create(ResponseHeaderSchema, {
      clusterId: 0xdeadbeefn,
      memberId: 1n,
      revision: 9n,
      raftTerm: 3n,
    }),
    create(ResponseHeaderSchema, {
      clusterId: 0xdeadbeefn,
      memberId: 1n,
      revision: 10n,
      raftTerm: 3n,
    }),
    create(ResponseHeaderSchema, {}),
  ];
  const batches: Event[][] = [[put], [withPrev], [put, del, withPrev], [], [del]];
  const ids = [0n, 1n, 127n, 128n, 1n << 40n, -1n, -(1n << 62n)];
  const frames = new EventFrames();
  for (const header of headers) {
    for (const events of batches) {
      for (const watchId of ids) {
        const expected = encodeGrpcFrame(
          toBinary(WatchResponseSchema, create(WatchResponseSchema, { header, watchId, events })),
        );
        assertEquals(
          frames.events(header, watchId, events),
          expected,
          `watch ${watchId}, ${events.length} events, revision ${header.revision}`,
        );
      }
    }
  }
});
