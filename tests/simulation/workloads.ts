/**
 * What clients do to the cluster during the chaos phase, recorded for the checkers:
 *
 * - `ClientWorkload`: puts with unique values, linearizable and serializable ranges on random
 *   running members, as a history of operations (history.ts).
 * - `LeaseWorkload`: leases granted, written with, renewed from random members, revoked or
 *   abandoned, and what the client saw of each (checkers.ts holds them to their TTL). It draws from
 *   its own PRNG stream, so the other decisions of a seed do not shift.
 */

import { create } from "@bufbuild/protobuf";
import {
  LeaseGrantRequestSchema,
  LeaseRevokeRequestSchema,
  LeaseTimeToLiveRequestSchema,
  PutRequestSchema,
  type PutResponse,
  RangeRequestSchema,
  type RangeResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { callUnary, keepAliveOnce } from "./services.ts";
import { EtcdError } from "../../core/errors.ts";
import { errorText, type EventLoop } from "./event_loop.ts";
import { describe, type GetOp, type Op, type PutOp } from "./history.ts";
import type { Member, Members } from "./members.ts";
import type { Prng } from "./prng.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Client puts and ranges, a call every 2-40 ms while fewer than the limit are in flight. */
export class ClientWorkload {
  #loop: EventLoop;
  #members: Members;
  #rng: Prng;
  #keys: string[];
  #maxInflight: number;
  #ops: Op[] = [];
  #nextOpId = 1;
  #stopped = false;

  /**
   * Draws the key space (1-6 keys) and the limit of calls in flight (2-24) from `params`; the calls
   * themselves from `rng`.
   */
  constructor(loop: EventLoop, members: Members, params: Prng, rng: Prng) {
    this.#loop = loop;
    this.#members = members;
    this.#rng = rng;
    this.#keys = Array.from({ length: params.range(1, 6) }, (_, i) => `k${i}`);
    this.#maxInflight = params.range(2, 24);
  }

  /** How many keys the calls use. */
  get keyCount(): number {
    return this.#keys.length;
  }

  /** At most this many calls are in flight. */
  get maxInflight(): number {
    return this.#maxInflight;
  }

  /** Every call made, in invocation order. */
  get ops(): readonly Op[] {
    return this.#ops;
  }

  /** Calls whose outcome is not known yet. */
  pendingCount(): number {
    return this.#ops.filter((o) => o.outcome === "pending").length;
  }

  /** Whether any call's outcome is not known yet. */
  hasPending(): boolean {
    return this.#ops.some((o) => o.outcome === "pending");
  }

  /** Schedules the first call (0.1-1 s from now); each schedules the next. */
  start(): void {
    const r = this.#rng;
    const next = () => {
      if (this.#stopped) return;
      this.#call();
      this.#loop.at(r.range(2, 40), "client", next);
    };
    this.#loop.at(r.range(100, 1000), "client", next);
  }

  /** No new calls (calls in flight still finish). */
  stop(): void {
    this.#stopped = true;
  }

  /** Calls again after a stop (the healed cluster's phase), from the same stream. */
  resume(): void {
    this.#stopped = false;
    this.start();
  }

  #call(): void {
    const r = this.#rng;
    const stats = this.#loop.stats;
    const inflight = this.pendingCount();
    if (inflight >= this.#maxInflight) return;
    const up = this.#members.running();
    if (up.length === 0) return;
    const m = r.pick(up);
    const node = m.node!;
    const key = r.pick(this.#keys);
    const roll = r.int(100);
    const id = this.#nextOpId++;
    if (roll < 55) {
      const value = `v${id}`;
      const op: PutOp = {
        kind: "put",
        id,
        member: m.name,
        key,
        value,
        invokeMs: this.#loop.nowMs,
        endMs: 0,
        outcome: "pending",
        revision: 0,
        error: "",
      };
      this.#ops.push(op);
      m.inflight.add(op);
      stats.puts++;
      this.#track(
        m,
        op,
        callUnary<PutResponse>(
          node,
          "/etcdserverpb.KV/Put",
          create(PutRequestSchema, { key: encoder.encode(key), value: encoder.encode(value) }),
        ),
        (resp) => {
          op.revision = Number(resp.header?.revision ?? 0n);
          stats.putsAcked++;
        },
      );
    } else {
      const serializable = roll >= 85;
      const op: GetOp = {
        kind: "get",
        id,
        member: m.name,
        key,
        serializable,
        invokeMs: this.#loop.nowMs,
        endMs: 0,
        outcome: "pending",
        value: null,
        modRevision: 0,
        headerRevision: 0,
        error: "",
      };
      this.#ops.push(op);
      m.inflight.add(op);
      stats.gets++;
      let call: Promise<RangeResponse>;
      try {
        call = callUnary<RangeResponse>(
          node,
          "/etcdserverpb.KV/Range",
          create(RangeRequestSchema, { key: encoder.encode(key), serializable }),
        );
      } catch (e) {
        call = Promise.reject(e);
      }
      this.#track(m, op, call, (resp) => {
        const kv = resp.kvs[0];
        op.value = kv ? decoder.decode(kv.value) : null;
        op.modRevision = kv ? Number(kv.modRevision) : 0;
        op.headerRevision = Number(resp.header?.revision ?? 0n);
        stats.getsOk++;
      });
    }
  }

  #track<T>(m: Member, op: Op, call: Promise<T>, ok: (value: T) => void): void {
    const inc = m.incarnation;
    call.then(
      (value) => {
        if (m.incarnation !== inc || op.outcome !== "pending") return;
        m.inflight.delete(op);
        op.outcome = "ok";
        op.endMs = this.#loop.nowMs;
        ok(value);
        this.#loop.log(`ok ${describe(op)}`);
      },
      (e) => {
        if (m.incarnation !== inc || op.outcome !== "pending") return;
        m.inflight.delete(op);
        if (!(e instanceof EtcdError)) {
          this.#loop.fail(`${describe(op)} failed with a non-etcd error: ${errorText(e)}`);
        }
        op.outcome = "error";
        op.error = errorText(e);
        op.endMs = this.#loop.nowMs;
        this.#loop.log(`err ${describe(op)}`);
      },
    );
  }
}

/** A lease of the lease workload, and what the client saw of it (simulated ms). */
export interface SimLease {
  no: number;
  id: bigint;
  ttlMs: number;
  grantInvokeMs: number;
  granted: boolean;
  /** Keys put with this lease (any outcome); nobody else writes them. */
  keys: string[];
  /** Invocation times of acknowledged renews. */
  ackedRenewInvokes: number[];
  /** Latest end of a renew call of any outcome (a failed forward may still have renewed). */
  lastRenewEndMs: number;
  pending: number;
  /** When the client first asked to revoke it (its keys may vanish from then on). */
  revokeInvokeMs: number | null;
  /** Key → when a watcher first saw it deleted. */
  deletedMs: Map<string, number>;
}

/**
 * Every 0.8-3 s, while fewer than 4 leases have live keys, a lease with TTL 3-6 s granted (explicit
 * ID) through a random member; once acknowledged, 1-2 keys `L<n>k<i>` put with it; then renewed
 * from random members every 0.5-1 s for 0, 2, 5, 10 or 30 s, then revoked (30%) or abandoned;
 * 20% of renews also ask its TimeToLive.
 */
export class LeaseWorkload {
  #loop: EventLoop;
  #members: Members;
  #rng: Prng;
  #stopped = false;
  #leases: SimLease[] = [];
  /** Lease key → its lease. */
  #leaseOfKey = new Map<string, SimLease>();
  /** Lease keys a watcher saw written. */
  #keysPut = new Set<string>();

  constructor(loop: EventLoop, members: Members, rng: Prng) {
    this.#loop = loop;
    this.#members = members;
    this.#rng = rng;
  }

  /** Every lease the workload asked for, granted or not. */
  get leases(): readonly SimLease[] {
    return this.#leases;
  }

  /** Whether every lease call has settled (or its member went away). */
  settled(): boolean {
    return this.#leases.every((l) => l.pending === 0);
  }

  /** Whether a lease key may exist: a watcher saw a PUT of it (any member). */
  maybeWritten(key: string): boolean {
    return this.#keysPut.has(key);
  }

  /**
   * Watch events of one revision as a watcher first reported them ("PUT k=v" / "DELETE k"):
   * records lease keys written and when each was first seen deleted.
   */
  observeRevision(events: readonly string[]): void {
    for (const e of events) {
      if (e.startsWith("PUT ")) {
        const key = e.slice("PUT ".length, e.indexOf("="));
        if (this.#leaseOfKey.has(key)) this.#keysPut.add(key);
      }
      if (!e.startsWith("DELETE ")) continue;
      const key = e.slice("DELETE ".length);
      const lease = this.#leaseOfKey.get(key);
      if (lease && !lease.deletedMs.has(key)) lease.deletedMs.set(key, this.#loop.nowMs);
    }
  }

  /** Schedules the first grant (0.3-2 s from now); each schedules the next. */
  start(): void {
    const r = this.#rng;
    const next = () => {
      if (this.#stopped) return;
      const live = this.#leases.filter((l) => l.granted && l.deletedMs.size < l.keys.length);
      if (live.length < 4) this.#grant();
      this.#loop.at(r.range(800, 3000), "lease", next);
    };
    this.#loop.at(r.range(300, 2000), "lease", next);
  }

  /** No new grants, renews or revokes (calls in flight still finish). */
  stop(): void {
    this.#stopped = true;
  }

  #member(): Member | null {
    const up = this.#members.running();
    return up.length === 0 ? null : this.#rng.pick(up);
  }

  /** A lease call whose outcome is unknown when the member crashes (the promise never settles). */
  #call<T>(m: Member, lease: SimLease, what: string, call: () => Promise<T>): Promise<T> {
    const inc = m.incarnation;
    lease.pending++;
    let p: Promise<T>;
    try {
      p = call();
    } catch (e) {
      p = Promise.reject(e);
    }
    return new Promise<T>((resolve, reject) => {
      const settle = () => {
        lease.pending--;
        return m.incarnation === inc;
      };
      // A crashed incarnation's calls may never settle: count them as done when it goes away.
      const watchdog = () => {
        if (m.incarnation !== inc && done === false) {
          done = true;
          lease.pending--;
          this.#loop.log(`lease L${lease.no} ${what} via ${m.name}: unknown (member went away)`);
          return;
        }
        if (!done) this.#loop.at(200, "lease watchdog", watchdog);
      };
      let done = false;
      this.#loop.at(200, "lease watchdog", watchdog);
      p.then(
        (v) => {
          if (done) return;
          done = true;
          if (settle()) resolve(v);
        },
        (e) => {
          if (done) return;
          done = true;
          if (!(e instanceof EtcdError)) {
            this.#loop.fail(
              `lease L${lease.no} ${what} failed with a non-etcd error: ${errorText(e)}`,
            );
          }
          if (settle()) reject(e);
        },
      );
    });
  }

  #grant(): void {
    const r = this.#rng;
    const m = this.#member();
    if (!m) return;
    const no = this.#leases.length + 1;
    const lease: SimLease = {
      no,
      id: BigInt(0x1000 + no),
      ttlMs: r.range(3, 6) * 1000,
      grantInvokeMs: this.#loop.nowMs,
      granted: false,
      keys: [],
      ackedRenewInvokes: [],
      lastRenewEndMs: 0,
      pending: 0,
      revokeInvokeMs: null,
      deletedMs: new Map(),
    };
    this.#leases.push(lease);
    this.#loop.stats.leaseGrants++;
    this.#loop.log(`lease L${no} grant ttl ${lease.ttlMs / 1000}s via ${m.name}`);
    const req = create(LeaseGrantRequestSchema, { ID: lease.id, TTL: BigInt(lease.ttlMs / 1000) });
    this.#call(m, lease, "grant", () => callUnary(m.node!, "/etcdserverpb.Lease/LeaseGrant", req))
      .then(
        () => {
          lease.granted = true;
          this.#loop.log(`lease L${no} granted`);
          const keys = r.range(1, 2);
          for (let i = 0; i < keys; i++) this.#put(lease, `L${no}k${i}`);
          const renewForMs = r.pick([0, 2000, 5000, 10_000, 30_000]);
          const revoke = r.chance(0.3);
          this.#keepAlive(lease, this.#loop.nowMs + renewForMs, revoke);
        },
        (e) => this.#loop.log(`lease L${no} grant failed: ${errorText(e)}`),
      );
  }

  #put(lease: SimLease, key: string): void {
    const m = this.#member();
    if (!m) return;
    lease.keys.push(key);
    this.#leaseOfKey.set(key, lease);
    const req = create(PutRequestSchema, {
      key: encoder.encode(key),
      value: encoder.encode(`L${lease.no}`),
      lease: lease.id,
    });
    this.#call(
      m,
      lease,
      `put ${key}`,
      () => callUnary<PutResponse>(m.node!, "/etcdserverpb.KV/Put", req),
    ).then(
      (resp) => this.#loop.log(`lease L${lease.no} put ${key} ok rev=${resp.header?.revision}`),
      (e) => this.#loop.log(`lease L${lease.no} put ${key} failed: ${errorText(e)}`),
    );
  }

  /** Renews from random members every 0.5-1 s until `untilMs`, then revokes or abandons. */
  #keepAlive(lease: SimLease, untilMs: number, revoke: boolean): void {
    const r = this.#rng;
    const loop = this.#loop;
    const step = () => {
      if (this.#stopped) return;
      if (loop.nowMs >= untilMs) {
        if (!revoke) {
          loop.log(`lease L${lease.no} abandoned`);
          return;
        }
        const m = this.#member();
        if (!m) return;
        lease.revokeInvokeMs ??= loop.nowMs;
        loop.stats.leaseRevokes++;
        loop.log(`lease L${lease.no} revoke via ${m.name}`);
        this.#call(m, lease, "revoke", () =>
          callUnary(
            m.node!,
            "/etcdserverpb.Lease/LeaseRevoke",
            create(LeaseRevokeRequestSchema, { ID: lease.id }),
          )).then(
            () => loop.log(`lease L${lease.no} revoked`),
            (e) => loop.log(`lease L${lease.no} revoke failed: ${errorText(e)}`),
          );
        return;
      }
      const m = this.#member();
      if (m) {
        const invokeMs = loop.nowMs;
        this.#call(m, lease, "renew", () => keepAliveOnce(m.node!, lease.id)).then(
          (ttl) => {
            lease.ackedRenewInvokes.push(invokeMs);
            lease.lastRenewEndMs = Math.max(lease.lastRenewEndMs, loop.nowMs);
            loop.stats.leaseRenewsAcked++;
            loop.log(`lease L${lease.no} renew@${invokeMs} via ${m.name} ok ttl=${ttl}`);
          },
          (e) => {
            lease.lastRenewEndMs = Math.max(lease.lastRenewEndMs, loop.nowMs);
            loop.log(`lease L${lease.no} renew@${invokeMs} via ${m.name} failed: ${errorText(e)}`);
          },
        );
        if (r.chance(0.2)) {
          const req = create(LeaseTimeToLiveRequestSchema, { ID: lease.id, keys: true });
          this.#call(
            m,
            lease,
            "ttl",
            () => callUnary(m.node!, "/etcdserverpb.Lease/LeaseTimeToLive", req),
          ).catch(() => {});
        }
      }
      loop.at(r.range(500, 1000), `lease L${lease.no} renew`, step);
    };
    this.#loop.at(r.range(100, 800), `lease L${lease.no} renew`, step);
  }
}
