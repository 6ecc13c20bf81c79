/**
 * Test helpers: terse request builders, plus the store helpers of core/mvcc (string keys, readable
 * views of KeyValues) so that request tests read like the store tests.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  CompareSchema,
  type DeleteRangeRequest,
  DeleteRangeRequestSchema,
  type PutRequest,
  PutRequestSchema,
  type RangeRequest,
  RangeRequestSchema,
  type RequestOp,
  RequestOpSchema,
  type TxnRequest,
  TxnRequestSchema,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { b } from "../../mvcc/_testing.ts";

export {
  b,
  get,
  keys,
  kvView,
  RecordingLeases,
  s,
  storeWith,
  throwsEtcd,
} from "../../mvcc/_testing.ts";
export type { KvView } from "../../mvcc/_testing.ts";

type Init<T> = Partial<Omit<T, "$typeName" | "$unknown">>;

/** A PutRequest for key=value. */
export function putReq(key: string, value = "", opts: Init<PutRequest> = {}): PutRequest {
  return create(PutRequestSchema, { key: b(key), value: b(value), ...opts });
}

/** A RangeRequest; `end` undefined = single key. */
export function rangeReq(key: string, end?: string, opts: Init<RangeRequest> = {}): RangeRequest {
  return create(RangeRequestSchema, { key: b(key), rangeEnd: b(end ?? ""), ...opts });
}

/** A DeleteRangeRequest; `end` undefined = single key. */
export function delReq(
  key: string,
  end?: string,
  opts: Init<DeleteRangeRequest> = {},
): DeleteRangeRequest {
  return create(DeleteRangeRequestSchema, { key: b(key), rangeEnd: b(end ?? ""), ...opts });
}

/** RequestOps for txn branches. */
export const op = {
  put: (key: string, value = "", opts: Init<PutRequest> = {}): RequestOp =>
    create(RequestOpSchema, { request: { case: "requestPut", value: putReq(key, value, opts) } }),
  range: (key: string, end?: string, opts: Init<RangeRequest> = {}): RequestOp =>
    create(RequestOpSchema, {
      request: { case: "requestRange", value: rangeReq(key, end, opts) },
    }),
  del: (key: string, end?: string, opts: Init<DeleteRangeRequest> = {}): RequestOp =>
    create(RequestOpSchema, {
      request: { case: "requestDeleteRange", value: delReq(key, end, opts) },
    }),
  txn: (t: TxnRequest): RequestOp =>
    create(RequestOpSchema, { request: { case: "requestTxn", value: t } }),
  empty: (): RequestOp => create(RequestOpSchema),
};

/** A TxnRequest. */
export function txnReq(
  compare: Compare[],
  success: RequestOp[],
  failure: RequestOp[] = [],
): TxnRequest {
  return create(TxnRequestSchema, { compare, success, failure });
}

const RESULTS = {
  "=": Compare_CompareResult.EQUAL,
  "!=": Compare_CompareResult.NOT_EQUAL,
  ">": Compare_CompareResult.GREATER,
  "<": Compare_CompareResult.LESS,
} as const;

/** A Compare, e.g. cmp("version", "foo", "=", 1n) or cmp("value", "foo", ">", "abc"). */
export function cmp(
  target: "version" | "create" | "mod" | "value" | "lease",
  key: string,
  result: keyof typeof RESULTS,
  operand: bigint | string,
  rangeEnd = "",
): Compare {
  const base = { key: b(key), rangeEnd: b(rangeEnd), result: RESULTS[result] };
  switch (target) {
    case "version":
      return create(CompareSchema, {
        ...base,
        target: Compare_CompareTarget.VERSION,
        targetUnion: { case: "version", value: operand as bigint },
      });
    case "create":
      return create(CompareSchema, {
        ...base,
        target: Compare_CompareTarget.CREATE,
        targetUnion: { case: "createRevision", value: operand as bigint },
      });
    case "mod":
      return create(CompareSchema, {
        ...base,
        target: Compare_CompareTarget.MOD,
        targetUnion: { case: "modRevision", value: operand as bigint },
      });
    case "value":
      return create(CompareSchema, {
        ...base,
        target: Compare_CompareTarget.VALUE,
        targetUnion: { case: "value", value: b(operand as string) },
      });
    case "lease":
      return create(CompareSchema, {
        ...base,
        target: Compare_CompareTarget.LEASE,
        targetUnion: { case: "lease", value: operand as bigint },
      });
  }
}
