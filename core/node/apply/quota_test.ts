import { create } from "@bufbuild/protobuf";
import {
  LeaseGrantRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  TxnRequestSchema,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { assertEquals, assertThrows } from "../../testing.ts";
import { Errors, isEtcdError } from "../../errors.ts";
import type { Apply } from "./chain.ts";
import { type Operation, readMeta } from "./operation.ts";
import { backendQuota, DEFAULT_QUOTA_BYTES, quotaCost, quotaGuard } from "./quota.ts";

const bytes = (n: number) => new Uint8Array(n);
const putOp = (key: number, value: number) => ({
  request: {
    case: "requestPut" as const,
    value: create(PutRequestSchema, { key: bytes(key), value: bytes(value) }),
  },
});

Deno.test("quotaCost is etcd's estimate: 256 + key + value per put, a txn's larger branch, 64 per lease", () => {
  const put: Operation = {
    case: "put",
    value: create(PutRequestSchema, { key: bytes(10), value: bytes(1000) }),
  };
  assertEquals(quotaCost(put), 1266);
  const txn: Operation = {
    case: "txn",
    value: create(TxnRequestSchema, {
      success: [putOp(1, 1), putOp(2, 2)],
      failure: [putOp(100, 100), {
        request: { case: "requestRange", value: create(RangeRequestSchema, {}) },
      }],
    }),
  };
  // success 258 + 260 = 518, failure 456: the larger.
  assertEquals(quotaCost(txn), 518);
  // A nested txn's puts are not counted (etcd 3.4's costTxnReq looks at top-level puts only).
  const nested: Operation = {
    case: "txn",
    value: create(TxnRequestSchema, {
      success: [{ request: { case: "requestTxn", value: create(TxnRequestSchema, txn.value) } }],
    }),
  };
  assertEquals(quotaCost(nested), 0);
  const grant: Operation = { case: "leaseGrant", value: create(LeaseGrantRequestSchema, {}) };
  assertEquals(quotaCost(grant), 64);
  assertEquals(quotaCost({ case: "range", value: create(RangeRequestSchema, {}) }), 0);
});

Deno.test("backendQuota: 0 is 2 GiB, negative is none, and the size plus the cost must stay under", () => {
  let size = 0;
  const q = backendQuota(1000, () => size);
  size = 500;
  assertEquals(q.available(499), true);
  assertEquals(q.available(500), false, "etcd: size + cost < quota");
  assertEquals(q.available(0), true, "nothing to add: always");
  size = 5000;
  assertEquals(q.available(0), true);
  size = DEFAULT_QUOTA_BYTES - 100;
  assertEquals(backendQuota(0, () => size).available(99), true);
  assertEquals(backendQuota(0, () => size).available(100), false);
  size = 1e15;
  assertEquals(backendQuota(-1, () => size).available(1e9), true);
});

Deno.test("the quota layer applies what is over the quota, then answers NOSPACE", () => {
  let size = 100;
  let applied = 0;
  const backend: Apply = () => {
    applied++;
    size += 300;
    return null;
  };
  const layer = quotaGuard(backendQuota(800, () => size));
  const put: Operation = {
    case: "put",
    value: create(PutRequestSchema, { key: bytes(4), value: bytes(40) }),
  };
  assertEquals(layer.apply(put, readMeta(null), backend), null); // 100 + 300 < 800
  assertEquals(layer.apply(put, readMeta(null), backend), null); // 400 + 300 < 800
  // 700 + 300: over the quota, applied all the same.
  const e = assertThrows(() => layer.apply(put, readMeta(null), backend));
  assertEquals(isEtcdError(e, Errors.noSpace), true);
  assertEquals(applied, 3);
  const range: Operation = { case: "range", value: create(RangeRequestSchema, {}) };
  assertEquals(layer.apply(range, readMeta(null), backend), null, "reads cost nothing");
});
