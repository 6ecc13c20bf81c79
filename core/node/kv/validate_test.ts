import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  CompareSchema,
  type RangeRequest_SortOrder,
  type RangeRequest_SortTarget,
  type TxnRequest,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { Errors, EtcdError, GrpcCode } from "../../errors.ts";
import {
  checkDeleteRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
} from "./validate.ts";
import { cmp, delReq, op, putReq, rangeReq, throwsEtcd, txnReq } from "./_testing.ts";

Deno.test("range/put/delete checks reject what etcd's API layer rejects", () => {
  const table: { name: string; run: () => void; err?: EtcdError }[] = [
    {
      name: "range without key",
      run: () => checkRangeRequest(rangeReq("")),
      err: Errors.emptyKey(),
    },
    { name: "range with key", run: () => checkRangeRequest(rangeReq("a", "b")) },
    {
      name: "range with unknown sort order",
      run: () =>
        checkRangeRequest(rangeReq("a", undefined, { sortOrder: 3 as RangeRequest_SortOrder })),
      err: Errors.invalidSortOption(),
    },
    {
      name: "range with unknown sort target (crashes etcd 3.4; rejected like 3.5)",
      run: () =>
        checkRangeRequest(rangeReq("a", undefined, { sortTarget: 9 as RangeRequest_SortTarget })),
      err: Errors.invalidSortOption(),
    },
    {
      name: "put without key",
      run: () => checkPutRequest(putReq("", "v")),
      err: Errors.emptyKey(),
    },
    {
      name: "ignore_value with a value",
      run: () => checkPutRequest(putReq("k", "v", { ignoreValue: true })),
      err: Errors.valueProvided(),
    },
    {
      name: "ignore_lease with a lease",
      run: () => checkPutRequest(putReq("k", "", { ignoreLease: true, lease: 1n })),
      err: Errors.leaseProvided(),
    },
    {
      name: "empty key wins over value provided",
      run: () => checkPutRequest(putReq("", "v", { ignoreValue: true })),
      err: Errors.emptyKey(),
    },
    {
      name: "ignore_value without value",
      run: () => checkPutRequest(putReq("k", "", { ignoreValue: true })),
    },
    {
      name: "delete without key",
      run: () => checkDeleteRequest(delReq("")),
      err: Errors.emptyKey(),
    },
    { name: "delete with key", run: () => checkDeleteRequest(delReq("a", "\0")) },
  ];
  for (const t of table) {
    if (t.err) throwsEtcd(t.run, t.err);
    else assert.doesNotThrow(t.run, t.name);
  }
});

Deno.test("invalid sort option is InvalidArgument with etcd 3.5's message", () => {
  const err = Errors.invalidSortOption();
  assert.equal(err.code, GrpcCode.InvalidArgument);
  assert.equal(err.message, "etcdserver: invalid sort option");
});

function ops(n: number, make: (i: number) => ReturnType<typeof op.put>) {
  return Array.from({ length: n }, (_, i) => make(i));
}

Deno.test("txn op limits follow etcd: max of compare/success/failure, nested budget shrinks", () => {
  const table: { name: string; req: TxnRequest; max?: number; err?: EtcdError }[] = [
    { name: "128 puts", req: txnReq([], ops(128, (i) => op.put(`k${i}`))) },
    {
      name: "129 puts",
      req: txnReq([], ops(129, (i) => op.put(`k${i}`))),
      err: Errors.tooManyOps(),
    },
    {
      name: "128 compares + 128 success + 128 failure",
      req: txnReq(
        Array.from({ length: 128 }, (_, i) => cmp("version", `k${i}`, "=", 0n)),
        ops(128, (i) => op.put(`s${i}`)),
        ops(128, (i) => op.put(`f${i}`)),
      ),
    },
    {
      name: "129 compares",
      req: txnReq(Array.from({ length: 129 }, () => cmp("version", "k", "=", 0n)), []),
      err: Errors.tooManyOps(),
    },
    {
      name: "custom max",
      req: txnReq([], ops(3, (i) => op.put(`k${i}`))),
      max: 2,
      err: Errors.tooManyOps(),
    },
    {
      name: "nested txn gets max minus the outer count",
      req: txnReq([], [op.put("a"), op.txn(txnReq([], ops(3, (i) => op.put(`n${i}`))))]),
      max: 4,
      err: Errors.tooManyOps(),
    },
    {
      name: "nested txn within budget",
      req: txnReq([], [op.put("a"), op.txn(txnReq([], ops(2, (i) => op.put(`n${i}`))))]),
      max: 4,
    },
  ];
  for (const t of table) {
    const run = () => checkTxnRequest(t.req, t.max);
    if (t.err) throwsEtcd(run, t.err);
    else assert.doesNotThrow(run, t.name);
  }
});

Deno.test("txn checks keys and ops, including nested ones", () => {
  const table: { name: string; req: TxnRequest; err: EtcdError }[] = [
    {
      name: "compare without key",
      req: txnReq([create(CompareSchema)], []),
      err: Errors.emptyKey(),
    },
    { name: "empty op", req: txnReq([], [op.empty()]), err: Errors.keyNotFound() },
    { name: "empty op in failure", req: txnReq([], [], [op.empty()]), err: Errors.keyNotFound() },
    { name: "put without key", req: txnReq([], [op.put("")]), err: Errors.emptyKey() },
    {
      name: "nested put with ignore_value and value",
      req: txnReq([], [op.txn(txnReq([], [op.put("k", "v", { ignoreValue: true })]))]),
      err: Errors.valueProvided(),
    },
    { name: "range without key", req: txnReq([], [], [op.range("")]), err: Errors.emptyKey() },
    { name: "delete without key", req: txnReq([], [op.del("")]), err: Errors.emptyKey() },
  ];
  for (const t of table) throwsEtcd(() => checkTxnRequest(t.req), t.err);
});

Deno.test("duplicate key rules (checkIntervals) match etcd", () => {
  const table: { name: string; req: TxnRequest; dup: boolean }[] = [
    { name: "two puts of one key", req: txnReq([], [op.put("a"), op.put("a")]), dup: true },
    { name: "puts of different keys", req: txnReq([], [op.put("a"), op.put("b")]), dup: false },
    { name: "put and delete of one key", req: txnReq([], [op.put("a"), op.del("a")]), dup: true },
    { name: "delete then put", req: txnReq([], [op.del("a"), op.put("a")]), dup: true },
    {
      name: "put inside a deleted range",
      req: txnReq([], [op.del("a", "c"), op.put("b")]),
      dup: true,
    },
    { name: "put at a range's end", req: txnReq([], [op.del("a", "c"), op.put("c")]), dup: false },
    {
      name: "put after a from-key delete (\\0 end is not an interval to etcd; verified)",
      req: txnReq([], [op.del("k27", "\0"), op.put("k28")]),
      dup: false,
    },
    { name: "two deletes overlap", req: txnReq([], [op.del("a", "z"), op.del("b")]), dup: false },
    { name: "ranges never conflict", req: txnReq([], [op.range("a"), op.put("a")]), dup: false },
    {
      name: "same put in success and failure",
      req: txnReq([], [op.put("a")], [op.put("a")]),
      dup: false,
    },
    {
      name: "duplicate within the failure branch",
      req: txnReq([], [], [op.put("a"), op.put("a")]),
      dup: true,
    },
    {
      name: "nested then/else may put the same key",
      req: txnReq([], [op.txn(txnReq([], [op.put("a")], [op.put("a")]))]),
      dup: false,
    },
    {
      name: "nested put and outer put",
      req: txnReq([], [op.txn(txnReq([], [op.put("a")])), op.put("a")]),
      dup: true,
    },
    {
      name: "nested put under an outer delete",
      req: txnReq([], [op.del("a", "c"), op.txn(txnReq([], [], [op.put("b")]))]),
      dup: true,
    },
    {
      name: "outer put under a nested delete",
      req: txnReq([], [op.txn(txnReq([], [op.del("a", "c")])), op.put("b")]),
      dup: true,
    },
    {
      name: "nested from-key delete does not even count",
      req: txnReq([], [op.txn(txnReq([], [op.del("a", "\0")])), op.put("b")]),
      dup: false,
    },
    {
      name: "two sibling nested txns put the same key",
      req: txnReq([], [op.txn(txnReq([], [op.put("a")])), op.txn(txnReq([], [op.put("a")]))]),
      dup: true,
    },
    {
      name: "sibling nested: put, then a later sibling deletes it (allowed by etcd)",
      req: txnReq([], [op.txn(txnReq([], [op.put("a")])), op.txn(txnReq([], [op.del("a")]))]),
      dup: false,
    },
    {
      name: "sibling nested: delete, then a later sibling puts it",
      req: txnReq([], [op.txn(txnReq([], [op.del("a")])), op.txn(txnReq([], [op.put("a")]))]),
      dup: true,
    },
    {
      name: "else-put that only an earlier sibling put",
      req: txnReq([], [
        op.txn(txnReq([], [op.put("a")])),
        op.txn(txnReq([], [op.put("b")], [op.put("a")])),
      ]),
      dup: true,
    },
    {
      name: "inverted range deletes nothing and conflicts with nothing",
      req: txnReq([], [op.del("c", "a"), op.put("b")]),
      dup: false,
    },
  ];
  for (const t of table) {
    const run = () => checkTxnRequest(t.req);
    if (t.dup) throwsEtcd(run, Errors.duplicateKey());
    else assert.doesNotThrow(run, t.name);
  }
});

Deno.test("op-count and key errors come before duplicate-key errors", () => {
  throwsEtcd(
    () => checkTxnRequest(txnReq([], [op.put("a"), op.put("a"), op.put("")])),
    Errors.emptyKey(),
  );
  throwsEtcd(() => checkTxnRequest(txnReq([], [op.put("a"), op.put("a")]), 1), Errors.tooManyOps());
});
