/**
 * Proposal plumbing: request IDs, the callers waiting for their entry to be applied, proposals
 * parked while there is no leader to take them, and their timeouts. Apply hands each result to
 * the waiter of its request ID (only the member that proposed an entry has one).
 */
import { proposalsFailed } from "./metrics.ts";
import type { AuthInfo } from "../auth/mod.ts";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type InternalRequest, InternalRequestSchema } from "../../gen/detcdpb/internal_pb.ts";
import { ByteArena } from "../bytes.ts";
import { Errors, type EtcdError } from "../errors.ts";
import { type ConfChange, none, ProposalDroppedError } from "../raft/mod.ts";

/**
 * The requests whose proposed object apply may use in place of decoding the entry's bytes: their
 * payload is bytes and numbers only, so the object and its encoding mean the same thing (a string
 * need not: one with a lone surrogate, possible from the JSON gateway, encodes as U+FFFD).
 */
const REUSABLE = new Set<InternalRequest["request"]["case"]>(["put", "deleteRange", "txn"]);

/** Proposals waiting for a reply at most; past it writers get `etcdserver: too many requests`. */
const MAX_PENDING_PROPOSALS = 20000;

/** A caller waiting for the outcome of a proposal, a read or a leadership transfer. */
export interface Waiter {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** Tick at which it gives up. */
  deadline: number;
  /** Leader when it was proposed (to say "possibly due to previous leader failure"). */
  lead: bigint;
  /** Still waiting for a leader to take the proposal. */
  parked?: boolean;
}

/** What a proposal is handed to (the member's RawNode). */
export interface Proposer {
  propose(data: Uint8Array): void;
  proposeConfChange(cc: ConfChange): void;
}

/** The proposals of one member that wait for their entries to be applied. */
export class Proposals {
  #raft: Proposer;
  #schedule: () => void;
  #maxRequestBytes: number;
  #nextRequestId: bigint;
  #waiters = new Map<bigint, Waiter>();
  #parked: { id: bigint; data: Uint8Array }[] = [];
  /**
   * Requests this member proposed, by their encoded bytes: an entry carries that same array when
   * it comes back to apply on this member, which then skips decoding it (see {@link decode}).
   */
  #proposed = new WeakMap<Uint8Array, InternalRequest>();
  /**
   * Where proposed entries' bytes live: Raft's log keeps an entry until the next snapshot, long
   * past the young generation, and an ArrayBuffer per entry is freed only by a full collection,
   * one by one in its pause (tens of milliseconds after a burst of 100,000 writes). The log lets
   * go of its entries oldest first, so slabs are freed in turn.
   */
  #entryBytes = new ByteArena(256 * 1024);

  constructor(init: {
    memberId: bigint;
    /** Wall clock at start (Unix ms): keeps request IDs unique across restarts. */
    startMs: number;
    maxRequestBytes: number;
    raft: Proposer;
    /** Runs the Ready loop once Raft has something to do. */
    schedule: () => void;
  }) {
    this.#raft = init.raft;
    this.#schedule = init.schedule;
    this.#maxRequestBytes = init.maxRequestBytes;
    // Request IDs: the member's low 16 bits, then the start time, then a counter (etcd's idutil),
    // so that IDs never repeat across restarts of a member.
    const nowMs = BigInt(Math.floor(init.startMs));
    this.#nextRequestId = ((init.memberId & 0xffffn) << 48n) | ((nowMs & 0xffffffffffn) << 8n);
  }

  newRequestId(): bigint {
    this.#nextRequestId++;
    return this.#nextRequestId;
  }

  /**
   * Proposes a request; resolves with its apply result. `deadline` is the tick at which it times
   * out, `lead` the current leader. `leaderTerm` (leader-only requests) makes the request apply
   * only if it is appended in that term (see InternalRequest.leader_term). `caller` is who asked:
   * the auth layer checks it when the entry applies.
   */
  propose(
    request: InternalRequest["request"],
    deadline: number,
    lead: bigint,
    leaderTerm = 0,
    caller: AuthInfo | null = null,
  ): Promise<unknown> {
    if (this.#waiters.size >= MAX_PENDING_PROPOSALS) {
      return Promise.reject(Errors.tooManyRequests());
    }
    const id = this.newRequestId();
    const message = create(InternalRequestSchema, {
      id,
      request,
      leaderTerm: BigInt(leaderTerm),
      authUsername: caller?.username ?? "",
      authRevision: BigInt(caller?.revision ?? 0),
    });
    const encoded = toBinary(InternalRequestSchema, message);
    if (encoded.length > this.#maxRequestBytes) return Promise.reject(Errors.requestTooLarge());
    const data = this.#entryBytes.keep(encoded);
    if (REUSABLE.has(request.case) && message.authUsername.isWellFormed()) {
      this.#proposed.set(data, message);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, deadline, lead };
      try {
        this.#raft.propose(data);
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) {
          reject(e);
          return;
        }
        // No leader to take it (or leadership moving): like etcd, the proposal waits for one
        // until the request timeout instead of failing at once.
        waiter.parked = true;
        this.#parked.push({ id, data });
      }
      this.#waiters.set(id, waiter);
      this.#schedule();
    });
  }

  /**
   * Proposes a membership change, the ConfChange `build` makes from its request ID (which its
   * context carries); a dropped one fails at once (no leader, or leadership moving).
   */
  proposeConfChange(
    build: (requestId: bigint) => ConfChange,
    deadline: number,
    lead: bigint,
  ): Promise<unknown> {
    const id = this.newRequestId();
    const cc = build(id);
    return new Promise((resolve, reject) => {
      try {
        this.#raft.proposeConfChange(cc);
      } catch (e) {
        reject(e instanceof ProposalDroppedError ? dropError(lead) : e);
        return;
      }
      this.#waiters.set(id, { resolve, reject, deadline, lead });
      this.#schedule();
    });
  }

  /** Proposes again what waited for a leader; whatever is dropped again keeps waiting. */
  proposeParked(lead: bigint): void {
    if (this.#parked.length === 0 || lead === none) return;
    const parked = this.#parked;
    this.#parked = [];
    for (const p of parked) {
      const waiter = this.#waiters.get(p.id);
      if (!waiter) continue;
      try {
        this.#raft.propose(p.data);
        waiter.parked = false;
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
        this.#parked.push(p);
      }
    }
    this.#schedule();
  }

  /** Proposals waiting for their outcome (etcd_server_proposals_pending). */
  get pending(): number {
    return this.#waiters.size;
  }

  /**
   * The request an entry's data holds: the object this member proposed when the entry carries the
   * very array it was encoded into (the leader's own proposals, applied in this process), else
   * decoded. The bytes in the log are the same either way; this saves a decode per write. (The
   * object's keys and values are views of the buffers the request arrived in, which nothing
   * rewrites: each socket read is a new buffer and the gRPC decoder joins chunks into new arrays;
   * the store copies what it keeps when the entry applies.)
   */
  decode(data: Uint8Array): InternalRequest {
    const mine = this.#proposed.get(data);
    if (mine === undefined) return fromBinary(InternalRequestSchema, data);
    this.#proposed.delete(data);
    return mine;
  }

  /** The waiter of an applied request, if this member proposed it (it is then forgotten). */
  take(id: bigint): Waiter | undefined {
    const waiter = this.#waiters.get(id);
    if (waiter) this.#waiters.delete(id);
    return waiter;
  }

  /** Times out the proposals due at `ticks` (`lead`: the current leader). */
  expire(ticks: number, lead: bigint): void {
    for (const [id, w] of this.#waiters) {
      if (w.deadline > ticks) break;
      this.#waiters.delete(id);
      proposalsFailed.inc();
      w.reject(
        w.lead !== none && w.lead !== lead ? Errors.timeoutDueToLeaderFail() : Errors.timeout(),
      );
    }
  }

  rejectAll(error: EtcdError): void {
    for (const w of this.#waiters.values()) w.reject(error);
    this.#waiters.clear();
  }
}

/** What a dropped proposal means to a client. */
function dropError(lead: bigint): EtcdError {
  if (lead === none) return Errors.noLeader();
  return Errors.timeout();
}
