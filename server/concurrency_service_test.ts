/**
 * Election.Observe relays the Watch service to its own caller in process. Over gRPC the caller's
 * `send` can also take whole frames (`send.frame`), which the Watch service uses for events: the
 * relay must not hand that path on, or the watch's frames reach the Observe client raw and Observe
 * itself never sees an event (found in review; this test failed then).
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { LeaseGrantRequestSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import {
  CampaignRequestSchema,
  type CampaignResponseSchema,
  LeaderRequestSchema,
  type LeaderResponse,
  LeaderResponseSchema,
} from "../gen/v3electionpb/v3election_pb.ts";
import { silentLogger } from "../core/log.ts";
import { MemoryDisk } from "../core/storage/mod.ts";
import { EtcdNode } from "../core/node/etcd_node.ts";
import { testConfig } from "../core/node/_testing.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { GRPC_PREFIX_BYTES } from "../core/wire/mod.ts";
import type { StreamMethod, UnaryMethod } from "./grpc.ts";
import { etcdServices } from "./services.ts";

const enc = new TextEncoder();

Deno.test("Observe over a send with a frame path: leaders arrive as LeaderResponses", async () => {
  const node = await EtcdNode.open(testConfig(), new MemoryDisk(), silentLogger);
  await node.waitReady();
  const table = etcdServices(node, {}, silentLogger);
  const observe = table.get("/v3electionpb.Election/Observe") as StreamMethod<
    typeof LeaderRequestSchema,
    typeof LeaderResponseSchema
  >;
  const campaign = table.get("/v3electionpb.Election/Campaign") as UnaryMethod<
    typeof CampaignRequestSchema,
    typeof CampaignResponseSchema
  >;
  const stop = new AbortController();
  const leaders: LeaderResponse[] = [];
  let seen: () => void = () => {};
  const arrived = new Promise<void>((r) => (seen = r));
  // As the gRPC transport gives it: messages, and whole frames (decoded here to see them too).
  const send = Object.assign((m: LeaderResponse) => {
    leaders.push(m);
    seen();
    return Promise.resolve();
  }, {
    frame: (frame: Uint8Array) => {
      leaders.push(fromBinary(LeaderResponseSchema, frame.subarray(GRPC_PREFIX_BYTES)));
      seen();
      return Promise.resolve();
    },
  });
  const requests = (async function* () {
    yield create(LeaderRequestSchema, { name: enc.encode("e1") });
    await new Promise((r) => stop.signal.addEventListener("abort", r));
  })();
  const observing = observe.handle(requests, send, { headers: {}, signal: stop.signal })
    .catch((e) => e);
  try {
    const lease = await node.leaseGrant(create(LeaseGrantRequestSchema, { TTL: 30n }));
    await campaign.handle(
      create(CampaignRequestSchema, {
        name: enc.encode("e1"),
        lease: lease.ID,
        value: enc.encode("a"),
      }),
      { headers: {}, signal: new AbortController().signal },
    );
    await Promise.race([arrived, new Promise((r) => setTimeout(r, 5000))]);
    assert(leaders.length > 0, "Observe sent the new leader");
    assertEquals(new TextDecoder().decode(leaders[0].kv?.value), "a");
  } finally {
    stop.abort();
    await observing;
    await node.stop();
  }
});
