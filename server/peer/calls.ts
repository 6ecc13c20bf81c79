/**
 * Follower → leader calls on one persistent, multiplexed connection per leader (issue 15): lease
 * renewals and TimeToLive, which a follower forwards for its clients, and learner promotions. One
 * HTTP/1.1 exchange per forwarded renew capped a follower at about 3,500 renews/s (the request
 * objects, parsers and sockets of both ends), a third of etcd's.
 *
 * Wire: the connection upgrades with `POST /peer/calls` (`Upgrade: detcd-calls`, the Raft stream's
 * cluster and sender headers); then both directions carry length-prefixed frames (the Raft
 * stream's u32 framing), each one JSON object: a request `{c, op, lease}` (`op` "renew" or
 * "timetolive", `lease` the ID in hex) or `{c, op: "promote", member}` (the member ID in hex), an
 * answer `{c, ...}` with the result (as the one-shot endpoints answer) or `{c, error: {code,
 * message}}` (the leader's EtcdError). Answers come in any order; frames made in one turn of the
 * event loop leave in one write. A leader that answers the upgrade 404 (a detcd
 * without calls) is asked over the one-shot endpoints of client.ts instead.
 */

import * as net from "node:net";
import { Errors, EtcdError, GrpcCode } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import { idHex } from "../../core/node/mod.ts";
import { hostPort } from "../listener.ts";
import { forwardLeaseRenew, forwardLeaseTimeToLive, forwardPromote } from "./client.ts";
import type { PeerHandler } from "./handler.ts";
import { connectTls, type PeerTls } from "./tls.ts";
import {
  errorFromJson,
  errorJson,
  frameAll,
  FrameReader,
  type LeaseTtl,
  leaseTtlJson,
  parseHead,
  parseId,
  parseLeaseTtl,
  readHead,
  upgradeHead,
} from "./_wire.ts";

/** The request path that upgrades a connection to a call stream. */
export const CALLS_PATH = "/peer/calls";
/** The Upgrade protocol name of a call stream. */
export const CALLS_PROTOCOL = "detcd-calls";

type Answer = Record<string, unknown>;

/** The leader does not serve call streams: ask it over the one-shot endpoints. */
class CallsUnsupported extends Error {}

/** A call stream not upgraded within this is given up (a dial that hangs, a silent peer). */
const DEFAULT_UPGRADE_TIMEOUT_MS = 5000;

/** How long a leader that refused call streams is asked over the one-shot endpoints instead. */
const UNSUPPORTED_RECHECK_MS = 10_000;

interface Pending {
  resolve(answer: Answer): void;
  reject(error: unknown): void;
  sentAt: number;
  deadline: number;
}

const encoder = new TextEncoder();

/** Gathers objects and writes them as frames in one write at the end of this event-loop turn. */
class Outbox {
  #queued: unknown[] = [];
  #scheduled = false;
  readonly #write: (bytes: Uint8Array) => void;

  constructor(write: (bytes: Uint8Array) => void) {
    this.#write = write;
  }

  push(object: unknown): void {
    this.#queued.push(object);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#queued.length === 0) return;
    const objects = this.#queued;
    this.#queued = [];
    this.#write(frameAll(objects.map((o) => encoder.encode(JSON.stringify(o)))));
  }
}

/** One call stream to a leader: requests wait for the upgrade, then go in batches. */
class CallConnection {
  readonly #socket: net.Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #waiting: { c: number }[] = [];
  readonly #outbox: Outbox;
  readonly #sweeper: ReturnType<typeof setInterval>;
  #nextCall = 1;
  #open = false;
  #failure: Error | null = null;
  /** When the leader last sent anything on this stream. */
  #lastReceived = 0;

  constructor(
    url: string,
    handler: PeerHandler,
    peerTls: PeerTls | null,
    upgradeTimeoutMs: number,
  ) {
    const { host, port } = hostPort(url);
    const secure = url.startsWith("https://");
    if (secure && peerTls === null) throw new Error(`no peer TLS configuration for ${url}`);
    const socket = secure ? connectTls(peerTls!, host, port) : net.connect(port, host);
    this.#socket = socket;
    this.#outbox = new Outbox((bytes) => {
      if (!socket.destroyed) socket.write(bytes);
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on("error", (e: Error) => this.#fail(e));
    socket.on("close", () => this.#fail(new Error(`call stream to ${url} closed`)));
    socket.on(secure ? "secureConnect" : "connect", () => {
      socket.write(upgradeHead(CALLS_PATH, CALLS_PROTOCOL, { host, port }, handler));
      readHead(socket, (head, rest) => {
        const response = head === null ? null : parseHead(head);
        if (response?.status !== 101) {
          this.#fail(
            response?.status === 404
              ? new CallsUnsupported(`${url} serves no call streams`)
              : new Error(`call stream to ${url}: status ${response?.status ?? "none"}`),
          );
          return;
        }
        const reader = new FrameReader((bytes) => this.#answer(bytes));
        if (rest.length > 0 && !reader.push(rest)) return void this.#fail(new Error("bad frame"));
        socket.on("data", (chunk: Uint8Array) => {
          this.#lastReceived = performance.now();
          if (!reader.push(chunk)) this.#fail(new Error(`call stream to ${url}: bad frame`));
        });
        socket.resume();
        this.#open = true;
        this.#lastReceived = performance.now();
        // What timed out while the stream came up is not sent (the caller has given up on it).
        for (const request of this.#waiting.splice(0)) {
          if (this.#pending.has(request.c)) this.#outbox.push(request);
        }
      });
    });
    // Calls past their deadline fail as a timeout would; the caller decides whether to retry. A
    // stream not up within the upgrade timeout, or silent since a call that timed out was sent
    // (a connection lost without a reset), is given up, so that the next call dials again.
    const started = performance.now();
    this.#sweeper = setInterval(() => {
      const now = performance.now();
      if (!this.#open && now - started > upgradeTimeoutMs) {
        this.#fail(new Error(`call stream to ${url}: no upgrade within ${upgradeTimeoutMs} ms`));
        return;
      }
      let silent = false;
      for (const [c, p] of this.#pending) {
        if (p.deadline > now) continue;
        this.#pending.delete(c);
        p.reject(new Error("timeout"));
        if (this.#lastReceived < p.sentAt) silent = true;
      }
      if (silent) this.#fail(new Error(`call stream to ${url}: no answer since a call timed out`));
    }, 100);
  }

  get failed(): boolean {
    return this.#failure !== null;
  }

  /** Calls waiting for their answer. */
  get pending(): number {
    return this.#pending.size;
  }

  call(request: Answer, timeoutMs: number): Promise<Answer> {
    if (this.#failure) return Promise.reject(this.#failure);
    const c = this.#nextCall++;
    return new Promise<Answer>((resolve, reject) => {
      const now = performance.now();
      this.#pending.set(c, { resolve, reject, sentAt: now, deadline: now + timeoutMs });
      const framed = { c, ...request };
      if (this.#open) this.#outbox.push(framed);
      else this.#waiting.push(framed);
    });
  }

  close(): void {
    this.#fail(new Error("call stream closed"));
  }

  #answer(bytes: Uint8Array): boolean {
    let answer: Answer;
    try {
      answer = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return false;
    }
    const c = Number(answer.c);
    const pending = this.#pending.get(c);
    if (!pending) return true; // answered after its deadline
    this.#pending.delete(c);
    const error = answer.error;
    if (typeof error === "object" && error !== null) {
      pending.reject(errorFromJson(error as Answer, "error"));
    } else {
      pending.resolve(answer);
    }
    return true;
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#open = false;
    clearInterval(this.#sweeper);
    this.#socket.destroy();
    this.#waiting.length = 0;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(error);
  }
}

/**
 * The follower's side: one call stream per leader (its peer URLs tried in turn, a new connection
 * after a failure). Failures other than the leader's own EtcdError reject with a plain Error, as a
 * failed one-shot request did, so that the lessor's retry loop treats them the same.
 */
export class PeerCalls {
  readonly #connections = new Map<string, CallConnection>();
  readonly #urlIndex = new Map<string, number>();
  readonly #unsupportedUntil = new Map<string, number>();
  readonly #handler: () => PeerHandler | null;
  readonly #tls: PeerTls | null;
  readonly #clusterId: () => bigint;
  readonly #upgradeTimeoutMs: number;
  #closed = false;

  constructor(
    handler: () => PeerHandler | null,
    peerTls: PeerTls | null = null,
    upgradeTimeoutMs = DEFAULT_UPGRADE_TIMEOUT_MS,
  ) {
    this.#handler = handler;
    this.#tls = peerTls;
    this.#upgradeTimeoutMs = upgradeTimeoutMs;
    this.#clusterId = () => this.#handler()?.clusterId() ?? 0n;
  }

  /** Renews a lease on the leader; resolves to its TTL in seconds. */
  renewLease(leaderPeerUrls: readonly string[], id: bigint, timeoutMs: number): Promise<bigint> {
    return this.#call(
      leaderPeerUrls,
      { op: "renew", lease: BigInt.asUintN(64, id).toString(16) },
      timeoutMs,
      (answer) => BigInt(String(answer.ttl)),
      () => forwardLeaseRenew(leaderPeerUrls, this.#clusterId(), id, timeoutMs, this.#tls),
    );
  }

  /** A lease's TTLs and keys on the leader (TTL -1 for an unknown lease). */
  leaseTimeToLive(
    leaderPeerUrls: readonly string[],
    id: bigint,
    timeoutMs: number,
  ): Promise<LeaseTtl> {
    return this.#call(
      leaderPeerUrls,
      { op: "timetolive", lease: BigInt.asUintN(64, id).toString(16) },
      timeoutMs,
      parseLeaseTtl,
      () => forwardLeaseTimeToLive(leaderPeerUrls, this.#clusterId(), id, timeoutMs, this.#tls),
    );
  }

  /** Promotes a learner on the leader; rejects with the leader's EtcdError. */
  promote(leaderPeerUrls: readonly string[], id: bigint, timeoutMs: number): Promise<void> {
    return this.#call(
      leaderPeerUrls,
      { op: "promote", member: BigInt.asUintN(64, id).toString(16) },
      timeoutMs,
      () => {},
      () => forwardPromote(leaderPeerUrls, this.#clusterId(), id, timeoutMs, this.#tls),
    );
  }

  /** Closes every call stream (member shutdown); calls in flight reject. */
  close(): void {
    this.#closed = true;
    for (const c of this.#connections.values()) c.close();
    this.#connections.clear();
  }

  /** A call on the leader's stream, its answer read by `parse`; `oneShot` if it serves none. */
  async #call<T>(
    urls: readonly string[],
    request: Answer,
    timeoutMs: number,
    parse: (answer: Answer) => T,
    oneShot: () => Promise<T>,
  ): Promise<T> {
    if (urls.length === 0) throw new Error("leader has no peer URLs");
    const key = urls.join(",");
    if ((this.#unsupportedUntil.get(key) ?? 0) > performance.now()) return await oneShot();
    const connection = this.#connection(key, urls);
    try {
      return parse(await connection.call(request, timeoutMs));
    } catch (e) {
      if (!(e instanceof CallsUnsupported)) throw e;
      this.#unsupportedUntil.set(key, performance.now() + UNSUPPORTED_RECHECK_MS);
      return await oneShot();
    }
  }

  #connection(key: string, urls: readonly string[]): CallConnection {
    const existing = this.#connections.get(key);
    if (existing && !existing.failed) return existing;
    const handler = this.#handler();
    if (this.#closed || handler === null) throw Errors.stopped();
    const index = this.#urlIndex.get(key) ?? 0;
    this.#urlIndex.set(key, index + 1);
    const connection = new CallConnection(
      urls[index % urls.length],
      handler,
      this.#tls,
      this.#upgradeTimeoutMs,
    );
    // A new leader: the streams to former ones go once nothing waits on them.
    for (const [other, c] of this.#connections) {
      if (other !== key && c.pending === 0) {
        c.close();
        this.#connections.delete(other);
      }
    }
    this.#connections.set(key, connection);
    return connection;
  }
}

/**
 * The leader's side of a call stream, on a connection whose upgrade was accepted: answers each
 * request as the member does (the leader's EtcdError travels back with its code and message).
 */
export function serveCalls(
  socket: net.Socket,
  rest: Uint8Array,
  handler: PeerHandler,
  logger: Logger,
  from: bigint,
): void {
  const outbox = new Outbox((bytes) => {
    if (!socket.destroyed) socket.write(bytes);
  });
  const failed = (c: number) => (e: unknown) => outbox.push({ c, error: errorJson(e) });
  const reader = new FrameReader((bytes) => {
    let request: Answer;
    try {
      request = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      logger.warn("rafthttp/http.go:338", "failed to decode peer call", {
        from: idHex(from),
        error: String(e),
      });
      return false;
    }
    const c = Number(request.c);
    if (request.op === "promote") {
      const member = parseId(String(request.member));
      if (member === null) failed(c)(new EtcdError(GrpcCode.InvalidArgument, "bad member ID"));
      else handler.promote(member).then(() => outbox.push({ c }), failed(c));
      return true;
    }
    const id = parseId(String(request.lease));
    const lease = id === null ? null : BigInt.asIntN(64, id);
    if (lease === null) {
      failed(c)(new EtcdError(GrpcCode.InvalidArgument, "bad lease ID"));
    } else if (request.op === "renew") {
      handler.leaseRenew(lease).then((ttl) => outbox.push({ c, ttl: String(ttl) }), failed(c));
    } else if (request.op === "timetolive") {
      handler.leaseTimeToLive(lease).then((t) => outbox.push({ c, ...leaseTtlJson(t) }), failed(c));
    } else {
      failed(c)(new EtcdError(GrpcCode.Unimplemented, `unknown peer call ${String(request.op)}`));
    }
    return true;
  });
  if (rest.length > 0 && !reader.push(rest)) return void socket.destroy();
  socket.on("data", (chunk: Uint8Array) => {
    if (!reader.push(chunk)) socket.destroy();
  });
  socket.resume();
}
