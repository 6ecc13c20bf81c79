/** Test helpers: terse request builders and readable views of responses. */
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
} from "../../gen/etcdserverpb/rpc_pb.ts";
import type { KeyValue } from "../../gen/mvccpb/kv_pb.ts";
import { EtcdError } from "../errors.ts";
import { type LeaseHooks, MvccStore } from "./store.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export function b(s: string): Uint8Array {
  return encoder.encode(s);
}

/** A string from UTF-8 bytes. */
export function s(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

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

/** A KeyValue as a plain, comparable object with string key/value and number revisions. */
export interface KvView {
  key: string;
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: number;
}

/** Readable view of a KeyValue. */
export function kvView(kv: KeyValue | undefined): KvView | undefined {
  if (!kv) return undefined;
  return {
    key: s(kv.key),
    value: s(kv.value),
    create: Number(kv.createRevision),
    mod: Number(kv.modRevision),
    version: Number(kv.version),
    lease: Number(kv.lease),
  };
}

/** Keys of a list of KeyValues. */
export function keys(kvs: readonly KeyValue[]): string[] {
  return kvs.map((kv) => s(kv.key));
}

/** The current value of a key, as a view (undefined if missing). */
export function get(store: MvccStore, key: string, rev = 0): KvView | undefined {
  return kvView(store.range(rangeReq(key, undefined, { revision: BigInt(rev) })).kvs[0]);
}

/** A store with the given puts applied in order (each its own revision). */
export function storeWith(...pairs: [string, string][]): MvccStore {
  const store = new MvccStore();
  for (const [k, v] of pairs) store.put(putReq(k, v));
  return store;
}

/** Asserts that fn throws an EtcdError with the same message as expected(). */
export function throwsEtcd(fn: () => unknown, expected: EtcdError): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof EtcdError)) throw err;
    if (err.message !== expected.message || err.code !== expected.code) {
      throw new Error(`expected "${expected.message}", got "${err.message}"`);
    }
    return;
  }
  throw new Error(`expected "${expected.message}", nothing thrown`);
}

/** Lease hooks that record calls; `existing` lists the leases that exist. */
export class RecordingLeases implements LeaseHooks {
  calls: string[] = [];
  constructor(readonly existing: Set<bigint> = new Set()) {}
  exists(id: bigint): boolean {
    return this.existing.has(id);
  }
  attach(id: bigint, key: Uint8Array): void {
    this.calls.push(`attach ${id} ${s(key)}`);
  }
  detach(id: bigint, key: Uint8Array): void {
    this.calls.push(`detach ${id} ${s(key)}`);
  }
}
