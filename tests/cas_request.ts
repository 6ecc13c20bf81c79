/**
 * The compare-and-swap txn the linearizability workloads send (the simulation's KV workload and
 * the chaos clients): `If(value(key) == expect) Then(put key value)`, or with `expect` null
 * `If(create_revision(key) == 0)`, the model's "cas" (tests/linearizability/etcd_model.ts).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  type TxnRequestSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";

const encoder = new TextEncoder();

export function casTxn(
  key: string,
  expect: string | null,
  value: string,
): MessageInitShape<typeof TxnRequestSchema> {
  const k = encoder.encode(key);
  return {
    compare: [
      expect === null
        ? {
          result: Compare_CompareResult.EQUAL,
          target: Compare_CompareTarget.CREATE,
          key: k,
          targetUnion: { case: "createRevision", value: 0n },
        }
        : {
          result: Compare_CompareResult.EQUAL,
          target: Compare_CompareTarget.VALUE,
          key: k,
          targetUnion: { case: "value", value: encoder.encode(expect) },
        },
    ],
    success: [{
      request: { case: "requestPut", value: { key: k, value: encoder.encode(value) } },
    }],
  };
}
