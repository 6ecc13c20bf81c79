/**
 * The simulation's second client workload: deletes, compare-and-swap txns, puts, linearizable
 * reads, reads as of an earlier revision and compactions, on keys of its own (`t0`..), recorded
 * directly as a history for the linearizability checker (tests/linearizability). Every call goes
 * through the member's method table (server/services.ts, what the gRPC, Connect and gateway
 * handlers call), with an empty call context as a client without auth sends, so the service layer
 * is under test too, not only the node behind it.
 *
 * It draws from a PRNG stream of its own, so adding it kept the other decisions of a seed. A write
 * whose answer never came (its member crashed, or the call failed) stays open to the end of the
 * history, as one that may have happened; a read that failed is left out.
 */
import { create } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  TxnRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { callUnary } from "./services.ts";
import { casTxn } from "../cas_request.ts";
import type { KvInput, KvOperation, KvOutput } from "../linearizability/etcd_model.ts";
import { errorText, type EventLoop } from "./event_loop.ts";
import type { Members } from "./members.ts";
import type { Prng } from "./prng.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Call {
  op: KvOperation;
  /** A read that failed: not part of the history. */
  dropped: boolean;
}

/** Deletes, CAS, reads as of a revision and compactions through the method table. */
export class KvWorkload {
  #loop: EventLoop;
  #members: Members;
  #rng: Prng;
  #keys: string[];
  #maxInflight: number;
  #calls: Call[] = [];
  /** Calls not answered yet, with the member incarnation that took them. */
  #pending = new Set<{ call: Call; member: { incarnation: number }; incarnation: number }>();
  #stopped = false;
  #nextId = 1;
  /** Per key, the value this client last read (what its CAS expects). */
  #lastSeen = new Map<string, string | null>();
  /** Revisions of acknowledged writes, for reads as of a revision. */
  #writeRevisions: { key: string; rev: number }[] = [];

  constructor(loop: EventLoop, members: Members, rng: Prng) {
    this.#loop = loop;
    this.#members = members;
    this.#rng = rng;
    this.#keys = Array.from({ length: rng.range(1, 4) }, (_, i) => `t${i}`);
    this.#maxInflight = rng.range(2, 10);
  }

  get keys(): readonly string[] {
    return this.#keys;
  }

  /** The history: every call but the reads that failed; unanswered writes stay open. */
  history(): KvOperation[] {
    return this.#calls.filter((c) => !c.dropped).map((c) => c.op);
  }

  start(): void {
    const r = this.#rng;
    const next = () => {
      if (this.#stopped) return;
      this.#call();
      this.#loop.at(r.range(5, 60), "kv-client", next);
    };
    this.#loop.at(r.range(100, 1000), "kv-client", next);
  }

  stop(): void {
    this.#stopped = true;
  }

  resume(): void {
    this.#stopped = false;
    this.start();
  }

  #call(): void {
    // A call whose member crashed is never answered: it counts no longer.
    for (const p of this.#pending) {
      if (p.member.incarnation !== p.incarnation) this.#pending.delete(p);
    }
    if (this.#pending.size >= this.#maxInflight) return;
    const r = this.#rng;
    const up = this.#members.running();
    if (up.length === 0) return;
    const m = r.pick(up);
    const node = m.node!;
    const key = r.pick(this.#keys);
    const value = `w${this.#nextId++}`;
    const roll = r.int(100);
    const stats = this.#loop.stats;
    if (roll >= 96) {
      // Compaction: to a revision at most the member's current one; not part of the history.
      const rev = Math.max(1, node.revision - r.range(0, 40));
      if (rev <= node.compactRevision) return;
      stats.compactions++;
      callUnary(
        node,
        "/etcdserverpb.KV/Compact",
        create(CompactionRequestSchema, {
          revision: BigInt(rev),
        }),
      ).catch(() => {});
      return;
    }
    let input: KvInput;
    let path: string;
    let req: unknown;
    let answer: (resp: never) => KvOutput;
    const k = encoder.encode(key);
    if (roll < 20) {
      input = { kind: "put", key, value };
      path = "/etcdserverpb.KV/Put";
      req = create(PutRequestSchema, { key: k, value: encoder.encode(value) });
      answer = (resp: { header?: { revision: bigint } }) => ({
        kind: "put",
        revision: Number(resp.header!.revision),
      });
    } else if (roll < 40) {
      input = { kind: "delete", key };
      path = "/etcdserverpb.KV/DeleteRange";
      req = create(DeleteRangeRequestSchema, { key: k });
      answer = (resp: { header?: { revision: bigint }; deleted: bigint }) => ({
        kind: "delete",
        revision: Number(resp.header!.revision),
        deleted: Number(resp.deleted),
      });
    } else if (roll < 65) {
      const expect = this.#lastSeen.get(key) ?? null;
      input = { kind: "cas", key, expect, value };
      path = "/etcdserverpb.KV/Txn";
      req = create(TxnRequestSchema, casTxn(key, expect, value));
      answer = (resp: { header?: { revision: bigint }; succeeded: boolean }) => ({
        kind: "cas",
        succeeded: resp.succeeded,
        revision: Number(resp.header!.revision),
      });
    } else {
      const past = roll >= 88 && this.#writeRevisions.length > 0
        ? this.#writeRevisions[r.int(this.#writeRevisions.length)]
        : null;
      const readKey = past?.key ?? key;
      input = past === null
        ? { kind: "get", key: readKey }
        : { kind: "get", key: readKey, revision: past.rev };
      path = "/etcdserverpb.KV/Range";
      req = create(RangeRequestSchema, {
        key: encoder.encode(readKey),
        revision: BigInt(past?.rev ?? 0),
      });
      answer = (
        resp: { kvs: { value: Uint8Array; modRevision: bigint }[] },
      ) => {
        const kv = resp.kvs[0];
        const out: KvOutput = {
          kind: "get",
          value: kv ? decoder.decode(kv.value) : null,
          modRevision: kv ? Number(kv.modRevision) : 0,
        };
        if (past === null) this.#lastSeen.set(readKey, out.value);
        return out;
      };
    }
    const call: Call = {
      op: { client: 1_000_000 + this.#nextId, call: this.#loop.nowMs, input },
      dropped: false,
    };
    this.#calls.push(call);
    const inc = m.incarnation;
    const pending = { call, member: m, incarnation: inc };
    this.#pending.add(pending);
    stats.kvOps++;
    callUnary(node, path, req).then(
      (resp) => {
        this.#pending.delete(pending);
        if (m.incarnation !== inc) return; // answered by a crashed incarnation: never seen
        call.op.output = answer(resp as never);
        call.op.return = this.#loop.nowMs;
        stats.kvAcked++;
        const out = call.op.output;
        if (
          (out.kind === "put") || (out.kind === "cas" && out.succeeded) ||
          (out.kind === "delete" && out.deleted > 0)
        ) {
          this.#writeRevisions.push({ key: input.key, rev: out.revision });
          if (this.#writeRevisions.length > 50) this.#writeRevisions.shift();
        }
        this.#loop.log(`kv ok ${input.kind} ${input.key}`);
      },
      (e) => {
        this.#pending.delete(pending);
        if (m.incarnation !== inc) return;
        if (input.kind === "get") call.dropped = true; // a failed read changed nothing
        this.#loop.log(`kv err ${input.kind} ${input.key}: ${errorText(e)}`);
      },
    );
  }
}
