/**
 * The apply chain as a member runs it: alarms refuse through their layers for reads and writes
 * alike, and a Raft invariant broken by a peer's message stops the member loudly.
 */
import { create } from "@bufbuild/protobuf";
import {
  AlarmRequest_AlarmAction,
  AlarmRequestSchema,
  AlarmType,
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  LeaseGrantRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  RequestOpSchema,
  TxnRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals, assertRejects } from "../testing.ts";
import { Errors, EtcdError, GrpcCode, isEtcdError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";
import { MessageType, newMessage } from "../raft/mod.ts";
import { MemoryDisk } from "../storage/mod.ts";
import { EtcdNode } from "./etcd_node.ts";
import { testConfig } from "./_testing.ts";

const enc = new TextEncoder();
const key = enc.encode("k");

Deno.test("a CORRUPT alarm refuses changes to keys and leases with etcd's error until disarmed; reads go on (as etcd 3.4.23)", async () => {
  const node = await EtcdNode.open(testConfig(), new MemoryDisk(), silentLogger);
  await node.put(create(PutRequestSchema, { key, value: enc.encode("v") }));
  const alarm = (action: AlarmRequest_AlarmAction) =>
    node.alarm(
      create(AlarmRequestSchema, { action, memberID: node.memberId, alarm: AlarmType.CORRUPT }),
    );
  await alarm(AlarmRequest_AlarmAction.ACTIVATE);
  const readOnlyTxn = create(TxnRequestSchema, {
    success: [create(RequestOpSchema, { request: { case: "requestRange", value: { key } } })],
  });
  // etcd's applierV3Corrupt: Put, DeleteRange, Txn, Compaction, LeaseGrant, LeaseRevoke; reads use
  // the base applier (real etcd 3.4.23 answers `etcdctl get` under CORRUPT, refuses `put`).
  const read = await node.range(create(RangeRequestSchema, { key }));
  assertEquals(new TextDecoder().decode(read.kvs[0].value), "v");
  const serializable = await node.range(create(RangeRequestSchema, { key, serializable: true }));
  assertEquals(serializable.kvs.length, 1);
  assertEquals((await node.txn(readOnlyTxn)).responses.length, 1);
  const writeTxn = create(TxnRequestSchema, {
    success: [
      create(RequestOpSchema, { request: { case: "requestPut", value: { key, value: key } } }),
    ],
  });
  const refused: [string, () => Promise<unknown>][] = [
    ["put", () => node.put(create(PutRequestSchema, { key, value: enc.encode("w") }))],
    ["delete", () => node.deleteRange(create(DeleteRangeRequestSchema, { key }))],
    ["txn with a put", () => node.txn(writeTxn)],
    ["compaction", () => node.compact(create(CompactionRequestSchema, { revision: 1n }))],
    ["lease grant", () => node.leaseGrant(create(LeaseGrantRequestSchema, { TTL: 10n }))],
    ["lease revoke", () => node.leaseRevoke(7n)],
  ];
  for (const [name, call] of refused) {
    const e = await assertRejects(call, EtcdError);
    assert(isEtcdError(e, Errors.corrupt), `${name}: ${e}`);
    assertEquals([e.code, e.message], [GrpcCode.DataLoss, "etcdserver: corrupt cluster"], name);
  }
  // The alarm itself still goes through (list, disarm), and then everything works again.
  const listed = await node.alarm(
    create(AlarmRequestSchema, { action: AlarmRequest_AlarmAction.GET, alarm: AlarmType.NONE }),
  );
  assertEquals(listed.alarms.map((a) => a.alarm), [AlarmType.CORRUPT]);
  await alarm(AlarmRequest_AlarmAction.DEACTIVATE);
  const got = await node.range(create(RangeRequestSchema, { key }));
  assertEquals(new TextDecoder().decode(got.kvs[0].value), "v");
  assertEquals(got.header?.revision, 2n); // nothing refused changed the store
  await node.stop();
});

Deno.test("a peer message that breaks a Raft invariant stops the member with a fatal log line", async () => {
  const errors: string[] = [];
  const logger: Logger = { ...silentLogger, error: (_caller, msg) => errors.push(msg) };
  let fatal: Error | null = null;
  const node = await EtcdNode.open(testConfig(), new MemoryDisk(), logger, {
    onFatal: (e) => fatal = e,
  });
  // A heartbeat of a newer term that says entries far beyond this member's log are committed:
  // etcd's raft panics ("tocommit is out of range"); the member must not go on.
  const heartbeat = newMessage(MessageType.Heartbeat, node.memberId, 0x1234n, 99);
  heartbeat.commit = 1_000_000;
  node.step(heartbeat);
  assert(fatal !== null, "onFatal was not called");
  assertEquals(errors, ["member stopped after an internal error"]);
  await assertRejects(
    () => node.put(create(PutRequestSchema, { key, value: enc.encode("v") })),
    EtcdError,
    "etcdserver: server stopped",
  );
  await node.stop();
});
