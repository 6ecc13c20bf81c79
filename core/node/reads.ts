/**
 * Linearizable reads through Raft's ReadIndex: reads that arrive while one request is out wait
 * for the next, so that each batch costs one ReadIndex round; a batch is released once the member
 * has applied up to the index the leader confirmed.
 */
import { readIndexesFailed, slowReadIndexes } from "./metrics.ts";
import { keyId as ctxKey } from "../bytes.ts";
import { Errors, type EtcdError } from "../errors.ts";
import type { Waiter } from "./proposals.ts";

/** Ticks without a ReadIndex answer before asking again (etcd: 500 ms at the default 100 ms). */
const READ_INDEX_RETRY_TICKS = 5;

interface ReadBatch {
  /** Tick of the last ReadIndex request for it (asked again if no answer comes, like etcd). */
  issuedAt: number;
  /** When it was first asked for (tick, and ms of the monotonic clock when there is one). */
  startedTick: number;
  startedMs: number;
  /** The term this member led when it was asked for, or -1 when it was not the leader. */
  leaderTerm: number;
  ctx: Uint8Array;
  key: string;
  waiters: Waiter[];
  index: number;
}

/** The ReadIndex batches of one member: queued, in flight, and confirmed but not yet applied. */
export class ReadIndexReads {
  #memberId: bigint;
  #readIndex: (ctx: Uint8Array) => void;
  #schedule: () => void;
  #leaderTerm: () => number;
  #monotonicMs: () => number;
  #queue: Waiter[] = [];
  #inFlight: ReadBatch | null = null;
  #awaitingApply: ReadBatch[] = [];
  #counter = 0;

  constructor(init: {
    memberId: bigint;
    /** Asks Raft for a read index (the member's RawNode.readIndex). */
    readIndex: (ctx: Uint8Array) => void;
    /** Runs the Ready loop once Raft has something to do. */
    schedule: () => void;
    /** The term this member leads, or -1 (stamped on each batch; see `onReadState`). */
    leaderTerm: () => number;
    /** The member's monotonic clock (ms), if it has one. */
    monotonicMs?: () => number;
  }) {
    this.#memberId = init.memberId;
    this.#readIndex = init.readIndex;
    this.#schedule = init.schedule;
    this.#leaderTerm = init.leaderTerm;
    this.#monotonicMs = init.monotonicMs ?? (() => 0);
  }

  /** Whether no ReadIndex request is out. */
  get idle(): boolean {
    return this.#inFlight === null;
  }

  /** Queues a read; it is asked for at once unless a request is out (it then joins the next). */
  add(waiter: Waiter, ticks: number): void {
    this.#queue.push(waiter);
    if (this.#inFlight === null) this.#issue(ticks);
  }

  #issue(ticks: number): void {
    if (this.#queue.length === 0) return;
    // Unique across the cluster: the leader keys pending reads by context, so two followers'
    // requests with the same counter would collide (the second one is ignored).
    const ctx = new Uint8Array(16);
    const view = new DataView(ctx.buffer);
    view.setBigUint64(0, this.#memberId);
    view.setFloat64(8, ++this.#counter);
    this.#inFlight = {
      ctx,
      key: ctxKey(ctx),
      waiters: this.#queue.splice(0),
      index: 0,
      issuedAt: ticks,
      startedTick: ticks,
      startedMs: this.#monotonicMs(),
      leaderTerm: this.#leaderTerm(),
    };
    this.#readIndex(ctx);
    this.#schedule();
  }

  /**
   * Raft's answer to a ReadIndex request: the index the batch with `ctx` may be served at. On a
   * leader the answer means a quorum acknowledged its heartbeats sent after the batch was first
   * asked for; the batch is returned (its start and `leaderTerm` bound when that was), or null
   * when the answer is not for the batch in flight.
   */
  onReadState(
    index: number,
    ctx: Uint8Array,
    appliedIndex: number,
    ticks: number,
  ): { startedTick: number; startedMs: number; leaderTerm: number } | null {
    const batch = this.#inFlight;
    if (!batch || ctxKey(ctx) !== batch.key) return null;
    this.#inFlight = null;
    batch.index = index;
    if (index <= appliedIndex) {
      for (const w of batch.waiters) w.resolve(undefined);
    } else {
      this.#awaitingApply.push(batch);
    }
    this.#issue(ticks);
    return batch;
  }

  /** Releases the batches whose index is applied. */
  release(appliedIndex: number): void {
    while (this.#awaitingApply.length > 0 && this.#awaitingApply[0].index <= appliedIndex) {
      const batch = this.#awaitingApply.shift()!;
      for (const w of batch.waiters) w.resolve(undefined);
    }
  }

  /** Reads waiting on a leader that is gone are asked again of the new one. */
  leaderChanged(ticks: number): void {
    if (!this.#inFlight) return;
    this.#queue.unshift(...this.#inFlight.waiters);
    this.#inFlight = null;
    this.#issue(ticks);
  }

  /** Asks again for an unanswered batch and times out the reads due at `ticks`. */
  expire(ticks: number, hasLeader: boolean): void {
    const read = this.#inFlight;
    if (read && ticks - read.issuedAt >= READ_INDEX_RETRY_TICKS && hasLeader) {
      // The request or its answer may have been lost (a peer connection starting, a leader
      // change): ask again, as etcd does every 500 ms (and counts as a slow read index).
      slowReadIndexes.inc();
      read.issuedAt = ticks;
      this.#readIndex(read.ctx);
    }
    if (read && read.waiters.length > 0 && read.waiters[0].deadline <= ticks) {
      readIndexesFailed.inc();
      for (const w of read.waiters) w.reject(Errors.timeout());
      this.#inFlight = null;
      this.#issue(ticks);
    }
    this.#awaitingApply = this.#awaitingApply.filter((batch) => {
      if (batch.waiters[0].deadline > ticks) return true;
      for (const w of batch.waiters) w.reject(Errors.timeout());
      return false;
    });
  }

  rejectAll(error: EtcdError): void {
    const reads = [
      ...this.#queue.splice(0),
      ...(this.#inFlight?.waiters ?? []),
      ...this.#awaitingApply.flatMap((b) => b.waiters),
    ];
    this.#inFlight = null;
    this.#awaitingApply = [];
    for (const w of reads) w.reject(error);
  }
}
