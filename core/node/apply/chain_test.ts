import { create } from "@bufbuild/protobuf";
import {
  PutRequestSchema,
  RangeRequestSchema,
  TxnRequestSchema,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { assertEquals, assertThrows } from "../../testing.ts";
import { Errors, isEtcdError } from "../../errors.ts";
import { type Apply, type ApplyLayer, chain } from "./chain.ts";
import { capped, hasPut } from "./capped.ts";
import { leaderTermGuard } from "./leader_term.ts";
import { type Operation, readMeta, type Response } from "./operation.ts";

const put: Operation = { case: "put", value: create(PutRequestSchema, {}) };
const range: Operation = { case: "range", value: create(RangeRequestSchema, {}) };

/** A layer that records its name when an operation passes it. */
function recorder(name: string, seen: string[]): ApplyLayer {
  return {
    name,
    apply(operation, meta, next) {
      seen.push(`${name}:${operation.case}`);
      return next(operation, meta);
    },
  };
}

Deno.test("chain() runs every layer in order, then the backend, for every operation", () => {
  const seen: string[] = [];
  const backend: Apply = (operation): Response => {
    seen.push(`backend:${operation.case}`);
    return null;
  };
  const apply = chain([recorder("a", seen), recorder("b", seen), recorder("c", seen)], backend);
  apply(put, readMeta(null));
  apply(range, readMeta(null));
  assertEquals(seen, [
    "a:put",
    "b:put",
    "c:put",
    "backend:put",
    "a:range",
    "b:range",
    "c:range",
    "backend:range",
  ]);
});

Deno.test("a layer that refuses stops the operation before later layers and the backend", () => {
  const seen: string[] = [];
  const refuse: ApplyLayer = {
    name: "refuse",
    apply() {
      throw Errors.permissionDenied();
    },
  };
  const apply = chain([recorder("a", seen), refuse, recorder("c", seen)], () => {
    seen.push("backend");
    return null;
  });
  const e = assertThrows(() => apply(put, readMeta(null)));
  assertEquals(isEtcdError(e, Errors.permissionDenied), true);
  assertEquals(seen, ["a:put"]);
});

Deno.test("leaderTermGuard voids a leader-only request appended in another term (etcd #15247)", () => {
  const apply = chain([leaderTermGuard], () => null);
  const revoke: Operation = {
    case: "leaseRevoke",
    value: { $typeName: "etcdserverpb.LeaseRevokeRequest", ID: 1n },
  };
  const cases: { entryTerm: number; leaderTerm: bigint; refused: boolean }[] = [
    { entryTerm: 5, leaderTerm: 0n, refused: false }, // any member may propose it
    { entryTerm: 5, leaderTerm: 5n, refused: false }, // proposed by this term's leader
    { entryTerm: 6, leaderTerm: 5n, refused: true }, // a deposed leader's, appended later
  ];
  for (const c of cases) {
    const run = () =>
      apply(revoke, {
        ...readMeta(null),
        logged: true,
        entryTerm: c.entryTerm,
        leaderTerm: c.leaderTerm,
      });
    if (c.refused) {
      assertEquals(
        isEtcdError(assertThrows(run), Errors.notLeader),
        true,
        `entry term ${c.entryTerm}, leader term ${c.leaderTerm}`,
      );
    } else {
      assertEquals(run(), null);
    }
  }
});

Deno.test("capped refuses what grows the store while NOSPACE is raised, and only then", () => {
  const txn = (ops: Operation[]) =>
    create(TxnRequestSchema, {
      success: ops.map((op) =>
        op.case === "put"
          ? { request: { case: "requestPut" as const, value: op.value } }
          : { request: { case: "requestRange" as const, value: create(RangeRequestSchema, {}) } }
      ),
    });
  const nested = create(TxnRequestSchema, {
    failure: [{ request: { case: "requestTxn", value: txn([put]) } }],
  });
  const table: { name: string; operation: Operation; grows: boolean }[] = [
    { name: "put", operation: put, grows: true },
    {
      name: "lease grant",
      operation: {
        case: "leaseGrant",
        value: { $typeName: "etcdserverpb.LeaseGrantRequest", TTL: 5n, ID: 1n },
      },
      grows: true,
    },
    { name: "txn with a put", operation: { case: "txn", value: txn([range, put]) }, grows: true },
    { name: "txn with a nested put", operation: { case: "txn", value: nested }, grows: true },
    { name: "read-only txn", operation: { case: "txn", value: txn([range]) }, grows: false },
    { name: "range", operation: range, grows: false },
    {
      name: "delete",
      operation: {
        case: "deleteRange",
        value: {
          $typeName: "etcdserverpb.DeleteRangeRequest",
          key: new Uint8Array([1]),
          rangeEnd: new Uint8Array(),
          prevKv: false,
        },
      },
      grows: false,
    },
  ];
  for (const noSpace of [false, true]) {
    const apply = chain([capped(() => noSpace)], () => null);
    for (const row of table) {
      const run = () => apply(row.operation, readMeta(null));
      if (noSpace && row.grows) {
        assertEquals(isEtcdError(assertThrows(run), Errors.noSpace), true, row.name);
      } else {
        assertEquals(run(), null, row.name);
      }
    }
  }
  assertEquals(hasPut(nested), true);
});
