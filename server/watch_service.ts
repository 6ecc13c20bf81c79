import { create, toBinary } from "@bufbuild/protobuf";
import { Counter, Gauge } from "../core/metrics.ts";
import {
  type ResponseHeader,
  ResponseHeaderSchema,
  Watch,
  WatchCreateRequest_FilterType,
  type WatchRequest,
  type WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { type Event, EventSchema } from "../gen/mvccpb/kv_pb.ts";
import {
  type WatchableStore,
  type WatchBatch,
  WatchError,
  type WatchStream,
} from "../core/mvcc/mod.ts";
import { Errors, type EtcdError, grpcStatusText } from "../core/errors.ts";
import type { AuthInfo } from "../core/auth/mod.ts";
import { nodeDefaults } from "../core/node/mod.ts";
import { putUvarint, putUvarint64, uvarint64Size, uvarintSize } from "../core/varint.ts";
import { GRPC_PREFIX_BYTES, putGrpcPrefix } from "../core/wire/mod.ts";
import type { AnyMethod, CallContext, StreamMethod, StreamSend } from "./grpc.ts";

const watchStreams = new Gauge(
  "etcd_debugging_mvcc_watch_stream_total",
  "Total number of watch streams.",
);
watchStreams.set(0);
const eventsSent = new Counter(
  "etcd_debugging_mvcc_events_total",
  "Total number of events sent by this member.",
);
eventsSent.touch();

/**
 * The bidirectional Watch stream (etcd's etcdserver/api/v3rpc/watch.go) over the member's
 * watchable store. One WatchStream per call; its bounded queue is drained by a send loop that
 * waits for the transport (HTTP/2 flow control), so a slow client fills its queue, its watchers
 * become victims and catch up from history later, and nothing else waits for it.
 */

/** etcd's clientv3.InvalidWatchID: the watch ID of refused creates and of progress responses. */
const INVALID_WATCH_ID = -1n;
/** How often the store's victims and unsynced watchers are served (etcd: 10 ms and 100 ms). */
const SYNC_INTERVAL_MS = 10;
/** etcd's GRPC_OVERHEAD_BYTES (v3rpc/grpc.go), added to --max-request-bytes for fragmenting. */
const GRPC_OVERHEAD_BYTES = 512 * 1024;

/** What the Watch service needs from the member. */
export interface WatchHost {
  readonly watchable: WatchableStore;
  /** The response header (cluster, member, raft term) with this revision. */
  header(revision: number): ResponseHeader;
  /** The leader's member ID, 0n when there is none. */
  readonly leader: bigint;
  /** Learners serve no streams (etcd's stream interceptor). */
  readonly isLearner: boolean;
  /** Watch permissions (absent: no auth, anyone may watch anything). */
  readonly auth?: {
    /** Who may watch: the caller's user name (null: auth off), or why not. */
    authorizeWatch(
      caller: () => AuthInfo | null | Promise<AuthInfo | null>,
      key: Uint8Array,
      rangeEnd: Uint8Array,
    ): Promise<{ username: string | null } | { refusal: EtcdError }>;
    /** Whether `username` may still read the whole range, by the current permissions. */
    stillPermitted(username: string, key: Uint8Array, rangeEnd: Uint8Array): boolean;
    /** Moves with every change of users, roles or permissions. */
    readonly authRevision: number;
  };
}

/** Server settings the Watch service honours. */
export interface WatchServiceOptions {
  /** Who a stream comes from (its token, or its client certificate's CN); null when absent. */
  callerOf?: (ctx: CallContext) => AuthInfo | null | Promise<AuthInfo | null>;
  /** --experimental-watch-progress-notify-interval in ms (etcd's default: 10 minutes). */
  progressNotifyIntervalMs?: number;
  /** --max-request-bytes: fragments (for watchers that asked) stay under it plus 512 KiB. */
  maxRequestBytes?: number;
  /** --election-timeout: a require-leader stream ends after 3 of them without a leader. */
  electionTimeoutMs?: number;
}

/** etcd's defaults for WatchServiceOptions. */
export const DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS = 10 * 60 * 1000;

/** Runs store.sync() every SYNC_INTERVAL_MS while some watch stream is open. */
class SyncDriver {
  #streams = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  constructor(readonly store: WatchableStore) {}

  opened(): void {
    this.#streams++;
    if (this.#timer === null) {
      this.#timer = setInterval(() => {
        if (this.store.needsSync) this.store.sync();
      }, SYNC_INTERVAL_MS);
    }
  }

  closed(): void {
    this.#streams--;
    if (this.#streams === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Serve waiting watchers now (a new unsynced watcher, a progress request). */
  poke(): void {
    if (this.store.needsSync) this.store.sync();
  }
}

/** The method table entry for etcdserverpb.Watch/Watch. */
export function watchMethod(host: WatchHost, options: WatchServiceOptions = {}): [
  string,
  AnyMethod,
] {
  // etcd applies the flag only when positive.
  const configured = options.progressNotifyIntervalMs ?? 0;
  const progressMs = configured > 0 ? configured : DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS;
  // etcd fragments at --max-request-bytes plus gRPC's overhead allowance (v3rpc/watch.go).
  const maxRequestBytes = (options.maxRequestBytes ?? 1.5 * 1024 * 1024) + GRPC_OVERHEAD_BYTES;
  const driver = new SyncDriver(host.watchable);
  const method: StreamMethod<typeof WatchRequestSchema, typeof WatchResponseSchema> = {
    kind: "stream",
    input: Watch.method.watch.input,
    output: Watch.method.watch.output,
    handle: async (requests, send, ctx) => {
      // etcd's stream interceptor: learners serve no streams; a client that requires a leader
      // (clientv3.WithRequireLeader: `hasleader` metadata) is refused at once without one.
      if (host.isLearner) throw Errors.notSupportedForLearner();
      const requireLeader = ctx.headers["hasleader"] === "true";
      if (requireLeader && host.leader === 0n) throw Errors.noLeader();
      const leaderLostMs = requireLeader
        ? 3 * (options.electionTimeoutMs ?? nodeDefaults.electionTimeoutMs)
        : 0;
      return await serveWatch(
        host,
        driver,
        progressMs,
        maxRequestBytes,
        leaderLostMs,
        requests,
        send,
        ctx,
        options.callerOf ?? (() => null),
      );
    },
  };
  return [`/${Watch.typeName}/${Watch.method.watch.name}`, method];
}

async function serveWatch(
  host: WatchHost,
  driver: SyncDriver,
  progressMs: number,
  maxRequestBytes: number,
  leaderLostMs: number,
  requests: AsyncIterable<WatchRequest>,
  send: StreamSend<typeof WatchResponseSchema>,
  ctx: CallContext,
  callerOf: (ctx: CallContext) => AuthInfo | null | Promise<AuthInfo | null>,
): Promise<void> {
  const store = host.watchable;
  const ws = store.newStream();
  driver.opened();
  watchStreams.inc();
  /** Per watcher: progress notify asked (and whether nothing was sent since the last tick). */
  const progress = new Map<bigint, boolean>();
  const fragment = new Set<bigint>();
  let done = false;
  let wake: (() => void) | null = null;
  const wakeUp = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const aborted = new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  aborted.then(() => {
    done = true;
    wakeUp();
  });

  /**
   * Watchers created by a user, with what they watch: when users, roles or permissions change,
   * each is checked again and cancelled once its user may no longer read its whole range, so a
   * revoked permission stops the events at once (etcd 3.4.23 checks only at creation). A token
   * that merely expired does not end a watch (etcd #12385): the user is what counts.
   */
  const permitted = new Map<
    bigint,
    { username: string; key: Uint8Array; rangeEnd: Uint8Array }
  >();
  let checkedAuthRevision = host.auth?.authRevision ?? 0;
  const recheck = (): void => {
    const auth = host.auth;
    if (auth === undefined || auth.authRevision === checkedAuthRevision) return;
    checkedAuthRevision = auth.authRevision;
    for (const [id, w] of permitted) {
      if (auth.stillPermitted(w.username, w.key, w.rangeEnd)) continue;
      permitted.delete(id);
      progress.delete(id);
      fragment.delete(id);
      try {
        ws.cancel(id);
      } catch (e) {
        if (!(e instanceof WatchError)) throw e;
      }
      ws.pushControl(
        { watchId: id, revision: host.watchable.revision, canceled: true },
        grpcStatusText(Errors.permissionDenied()),
      );
    }
  };

  const frames = new EventFrames();
  /** Set when a frame written by sendNow() asked the writer to wait for the client. */
  let drainWait: Promise<void> | null = null;
  let sendNowFailure: unknown = null;
  /**
   * Events go out from where they were queued (the apply loop's notify), without waking the loop
   * below: no promise, no turn of the microtask queue per watcher and event, for the batches the
   * loop would have sent as they are (gRPC, not fragmented, permissions unchanged since the last
   * check). Anything else (a created or canceled answer, a fragmented watcher, a change of
   * permissions, a client that must be waited for) is left to the loop, in order.
   */
  const { frameWithNow, drained } = send;
  const sendNow = (
    now: NonNullable<typeof frameWithNow>,
    whenDrained: NonNullable<typeof drained>,
  ): void => {
    const auth = host.auth;
    for (let b = ws.peek(); b !== undefined && drainWait === null; b = ws.peek()) {
      if (b.kind !== "events" || fragment.has(b.watchId)) return;
      if (auth !== undefined && auth.authRevision !== checkedAuthRevision) return;
      ws.take();
      eventsSent.inc(b.events.length);
      const size = frames.plan(host.header(b.revision), b.watchId, b.events);
      if (!now(size, frames.fill)) drainWait = whenDrained();
      if (b.events.length > 0 && progress.has(b.watchId)) progress.set(b.watchId, false);
    }
  };
  ws.onReady = () => {
    // The loop is running (it takes what was queued) or done: nothing to do here.
    if (wake === null || done) return;
    if (frameWithNow !== undefined && drained !== undefined) {
      try {
        sendNow(frameWithNow, drained);
      } catch (e) {
        sendNowFailure = e;
      }
      if (ws.peek() === undefined && drainWait === null && sendNowFailure === null) return;
    }
    wakeUp();
  };
  const sendLoop = async () => {
    while (!done) {
      if (sendNowFailure !== null) throw sendNowFailure;
      if (drainWait !== null) {
        await drainWait;
        drainWait = null;
        continue;
      }
      recheck();
      const batch = ws.take();
      if (batch === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      // Events taken just before their watcher lost its permission are not sent.
      if (batch.kind === "events" && host.auth !== undefined) {
        recheck();
        if (!ws.has(batch.watchId)) continue;
      }
      if (batch.kind === "events") eventsSent.inc(batch.events.length);
      if (batch.kind === "events" && send.frame && !fragment.has(batch.watchId)) {
        // Over gRPC, as bytes: each event encoded once however many watchers it goes to, and
        // each watcher's frame written straight into the connection's output.
        const header = host.header(batch.revision);
        if (send.frameWith) {
          await send.frameWith(frames.plan(header, batch.watchId, batch.events), frames.fill);
        } else {
          await send.frame(frames.events(header, batch.watchId, batch.events));
        }
      } else if (batch.kind === "events" && fragment.has(batch.watchId)) {
        await sendFragments(toResponse(host, batch), maxRequestBytes, send);
      } else {
        await send(toResponse(host, batch));
      }
      if (batch.kind === "events" && batch.events.length > 0 && progress.has(batch.watchId)) {
        progress.set(batch.watchId, false);
      }
      if (batch.kind === "compacted") {
        progress.delete(batch.watchId);
        fragment.delete(batch.watchId);
      }
    }
  };
  const sending = sendLoop();

  const ticker = setInterval(() => {
    for (const [id, idle] of progress) {
      if (idle) ws.progress(id);
      progress.set(id, true);
    }
  }, progressMs + Math.floor(Math.random() * (progressMs / 10))); // etcd's jitter: up to 1/10

  // etcd's monitorLeader: a require-leader stream ends with "no leader" after 3 election
  // timeouts without one.
  let noLeaderSince = -1;
  let lostLeader: () => void = () => {};
  const leaderLost = new Promise<void>((resolve) => (lostLeader = resolve));
  const monitor = leaderLostMs > 0
    ? setInterval(() => {
      if (host.leader !== 0n) noLeaderSince = -1;
      else if (noLeaderSince < 0) noLeaderSince = Date.now();
      else if (Date.now() - noLeaderSince >= leaderLostMs) lostLeader();
    }, leaderLostMs / 3)
    : undefined;
  let noLeader = false;
  leaderLost.then(() => (noLeader = true));

  const readLoop = async () => {
    for await (const req of requests) {
      if (done) break;
      const u = req.requestUnion;
      let username: string | null = null;
      if (u.case === "createRequest" && host.auth !== undefined) {
        // The whole range must be readable; checked for every create, with the stream's token as
        // it stands now (it may have expired since the stream opened).
        const key = u.value.key.length === 0 ? new Uint8Array([0]) : u.value.key;
        const verdict = await host.auth.authorizeWatch(
          () => callerOf(ctx),
          key,
          u.value.rangeEnd,
        );
        if ("refusal" in verdict) {
          // etcd answers with the invalid watch ID and the refusal as a gRPC status text; a
          // refusal other than these three reads as permission denied.
          const refusal = verdict.refusal;
          const known = [
            Errors.invalidAuthToken,
            Errors.authOldRevision,
            Errors.userEmpty,
          ].some((f) => refusal.is(f));
          const reason = known ? refusal : Errors.permissionDenied();
          ws.pushControl(
            {
              watchId: INVALID_WATCH_ID,
              revision: host.watchable.revision,
              created: true,
              canceled: true,
            },
            grpcStatusText(reason),
          );
          continue;
        }
        username = verdict.username;
        if (done) break;
      }
      const id = handleRequest(host, ws, driver, req, progress, fragment);
      if (u.case === "createRequest" && id !== undefined && username !== null) {
        const key = u.value.key.length === 0 ? new Uint8Array([0]) : u.value.key;
        permitted.set(id, { username, key, rangeEnd: u.value.rangeEnd });
      } else if (u.case === "cancelRequest") {
        permitted.delete(u.value.watchId);
      }
    }
    // etcd keeps sending after the client closed its side, until the call ends.
    await aborted;
  };
  try {
    // A send that failed ends the call with its error, and neither loop's failure after the call
    // ended is an unhandled rejection (the finally below awaits the send loop).
    const reading = readLoop();
    reading.catch(() => {});
    sending.catch(() => {});
    await Promise.race([reading, leaderLost, sending]);
    if (noLeader) throw Errors.noLeader();
  } finally {
    done = true;
    watchStreams.inc(-1);
    clearInterval(ticker);
    clearInterval(monitor);
    ws.close();
    driver.closed();
    wakeUp();
    await sending;
  }
}

function handleRequest(
  host: WatchHost,
  ws: WatchStream,
  driver: SyncDriver,
  req: WatchRequest,
  progress: Map<bigint, boolean>,
  fragment: Set<bigint>,
): bigint | undefined {
  const u = req.requestUnion;
  switch (u.case) {
    case "createRequest": {
      const c = u.value;
      const key = c.key.length === 0 ? new Uint8Array([0]) : c.key;
      const rev = host.watchable.revision;
      let id: bigint;
      try {
        id = ws.watch(c.watchId, key, c.rangeEnd, Number(c.startRevision), {
          prevKv: c.prevKv,
          noPut: c.filters.includes(WatchCreateRequest_FilterType.NOPUT),
          noDelete: c.filters.includes(WatchCreateRequest_FilterType.NODELETE),
        });
      } catch (e) {
        if (!(e instanceof WatchError)) throw e;
        ws.pushControl(
          { watchId: INVALID_WATCH_ID, revision: rev, created: true, canceled: true },
          e.message,
        );
        return undefined;
      }
      if (c.progressNotify) progress.set(id, true);
      if (c.fragment) fragment.add(id);
      // Created goes first in the queue: the events of this watcher come after it.
      ws.pushControl({ watchId: id, revision: rev, created: true });
      driver.poke();
      return id;
    }
    case "cancelRequest": {
      const id = u.value.watchId;
      try {
        ws.cancel(id);
      } catch (e) {
        if (e instanceof WatchError) return undefined; // etcd answers nothing for an unknown ID
        throw e;
      }
      progress.delete(id);
      fragment.delete(id);
      ws.pushControl({ watchId: id, revision: host.watchable.revision, canceled: true });
      return;
    }
    case "progressRequest":
      ws.requestProgress();
      driver.poke();
      return;
    default:
      return;
  }
}

const NO_BYTES = new Uint8Array(0);

/**
 * WatchResponse frames of event batches, built from bytes: an event goes to every watcher of its
 * key (a put under a prefix that 100 watchers watch is 100 responses), so each event is encoded
 * once (cached by the Event object, which all those batches share) and so is the header of a
 * revision; only the watch ID differs. The bytes are protobuf-es's (fields in number order,
 * zeros left out), as tests check.
 */
export class EventFrames {
  /**
   * Each event's bytes, shared by every stream's frames: the watchers of a write on different
   * streams (connections) get the same Event object, encoded once for all of them.
   */
  static readonly #encoded = new WeakMap<Event, Uint8Array>();
  #header: ResponseHeader | null = null;
  #headerBytes = new Uint8Array(0);
  // The frame plan() laid out, which fill() writes.
  #planHeader: Uint8Array = new Uint8Array(0);
  #planId = 0n;
  #planEvents: Uint8Array[] = [];
  #planCount = 0;
  #planSize = 0;

  /** The whole gRPC frame of a WatchResponse with these events, in a buffer of its own. */
  events(header: ResponseHeader, watchId: bigint, events: readonly Event[]): Uint8Array {
    const out = new Uint8Array(this.plan(header, watchId, events));
    this.fill(out, 0);
    return out;
  }

  /**
   * Lays out the frame of a WatchResponse with these events (each event encoded once however
   * many watchers it goes to) and answers its size; fill() then writes it where the transport
   * says, with no buffer of its own.
   */
  plan(header: ResponseHeader, watchId: bigint, events: readonly Event[]): number {
    const h = this.#headerOf(header);
    let size = 1 + uvarintSize(h.length) + h.length;
    // int64 on the wire: a negative ID is its 64-bit two's complement (ten bytes).
    const id = watchId >= 0n ? watchId : BigInt.asUintN(64, watchId);
    if (id !== 0n) size += 1 + uvarint64Size(id);
    // Written over in place: emptying the array (length = 0) would drop its storage, and a new
    // one would be made for every frame.
    const encoded = this.#planEvents;
    let n = 0;
    for (const e of events) {
      let bytes = EventFrames.#encoded.get(e);
      if (bytes === undefined) {
        bytes = toBinary(EventSchema, e);
        EventFrames.#encoded.set(e, bytes);
      }
      if (n < encoded.length) encoded[n] = bytes;
      else encoded.push(bytes);
      n++;
      size += 1 + uvarintSize(bytes.length) + bytes.length;
    }
    this.#planCount = n;
    this.#planHeader = h;
    this.#planId = id;
    this.#planSize = size;
    return GRPC_PREFIX_BYTES + size;
  }

  /** Writes the frame plan() laid out at `out[at..]`. */
  readonly fill = (out: Uint8Array, at: number): void => {
    putGrpcPrefix(out, this.#planSize, at);
    at += GRPC_PREFIX_BYTES;
    const h = this.#planHeader;
    out[at++] = 0x0a; // header = 1
    at = putUvarint(out, at, h.length);
    out.set(h, at);
    at += h.length;
    if (this.#planId !== 0n) {
      out[at++] = 0x10; // watch_id = 2
      at = putUvarint64(out, at, this.#planId);
    }
    const encoded = this.#planEvents;
    for (let i = 0; i < this.#planCount; i++) {
      const bytes = encoded[i];
      encoded[i] = NO_BYTES; // not kept past its frame
      out[at++] = 0x5a; // events = 11
      at = putUvarint(out, at, bytes.length);
      out.set(bytes, at);
      at += bytes.length;
    }
  };

  #headerOf(h: ResponseHeader): Uint8Array {
    const last = this.#header;
    if (
      last === null || last.revision !== h.revision || last.raftTerm !== h.raftTerm ||
      last.memberId !== h.memberId || last.clusterId !== h.clusterId
    ) {
      this.#header = h;
      this.#headerBytes = toBinary(ResponseHeaderSchema, h);
    }
    return this.#headerBytes;
  }
}

function toResponse(host: WatchHost, b: WatchBatch): WatchResponse {
  const r = create(WatchResponseSchema);
  r.header = host.header(b.revision);
  r.watchId = b.watchId;
  r.events = b.events;
  if (b.kind === "compacted") {
    r.compactRevision = BigInt(b.compactRevision);
    r.canceled = true;
  } else if (b.kind === "control") {
    r.created = b.created ?? false;
    r.canceled = b.canceled ?? false;
    r.cancelReason = b.cancelReason ?? "";
  }
  return r;
}

/**
 * etcd's sendFragments: a response of at least --max-request-bytes with two or more events is
 * sent in pieces of whole events, each under the limit when possible (a piece has at least one
 * event), all but the last marked fragment.
 */
export async function sendFragments(
  wr: WatchResponse,
  maxRequestBytes: number,
  send: (res: WatchResponse) => Promise<void>,
): Promise<void> {
  const eventSizes = wr.events.map((e) => {
    const n = toBinary(EventSchema, e).length;
    return 1 + uvarintSize(n) + n;
  });
  const base = create(WatchResponseSchema, { ...wr, events: [] });
  const baseBytes = toBinary(WatchResponseSchema, base).length;
  const total = eventSizes.reduce((a, b) => a + b, baseBytes);
  if (total < maxRequestBytes || wr.events.length < 2) return await send(wr);
  base.fragment = true;
  const fragmentBaseBytes = toBinary(WatchResponseSchema, base).length;
  let idx = 0;
  while (true) {
    const cur = create(WatchResponseSchema, { ...base, events: [] });
    let size = fragmentBaseBytes;
    while (idx < wr.events.length) {
      size += eventSizes[idx];
      if (cur.events.length >= 1 && size >= maxRequestBytes) break;
      cur.events.push(wr.events[idx]);
      idx++;
    }
    if (idx === wr.events.length) cur.fragment = false;
    await send(cur);
    if (!cur.fragment) return;
  }
}
