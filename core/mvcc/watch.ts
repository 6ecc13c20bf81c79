/**
 * etcd 3.4's watchable store (mvcc/watchable_store.go, watcher_group.go, watcher.go) as a pure
 * state machine: no timers, no I/O. The node calls notify() for every applied write; the server
 * drives sync() periodically (etcd: every 10 ms for victims, 100 ms for unsynced watchers) and
 * drains each WatchStream's bounded queue.
 *
 * Watchers live in one of three sets:
 * - synced: caught up with the store; notify() hands them each revision's events at once;
 * - unsynced: behind (start revision in the past, or restored from a snapshot); sync() replays
 *   the history to them in batches of at most WATCH_BATCH_MAX_REVS revisions;
 * - victim: their stream's queue was full; they keep the one batch that did not fit, and sync()
 *   retries it, then moves them to unsynced (more history to replay) or synced.
 * A slow consumer thus never grows memory beyond its queue plus one batch, and never blocks the
 * apply loop or other watchers. Events of one revision are never split between responses.
 */
import { create } from "@bufbuild/protobuf";
import { type Event, Event_EventType, EventSchema, type KeyValue } from "../../gen/mvccpb/kv_pb.ts";
import { assert } from "../assert.ts";
import { compareBytes, keyId } from "../bytes.ts";
import type { MvccStore, PrevKvs } from "./store.ts";
import { pendingEvents } from "./metrics.ts";
import { RangeWatchers } from "./range_watchers.ts";

/** etcd's chanBufLen: responses a stream may hold before its watchers become victims. */
export const WATCH_STREAM_CAPACITY = 128;
/** etcd's watchBatchMaxRevs: revisions replayed to an unsynced watcher per response. */
export const WATCH_BATCH_MAX_REVS = 1000;
/** etcd's maxWatchersPerSync: unsynced watchers served per sync() call. */
export const MAX_WATCHERS_PER_SYNC = 512;
/** An empty range end: range() reads just the key. */
const EMPTY_END = new Uint8Array(0);

/** etcd's error strings for watch creation and cancellation (mvcc/watcher.go). */
export const WatchErrors = {
  emptyRange: "mvcc: watcher range is empty",
  duplicateId: "mvcc: duplicate watch ID provided on the WatchStream",
  notExist: "mvcc: watcher does not exist",
} as const;

/** A watch creation or cancellation refused with one of WatchErrors' messages. */
export class WatchError extends Error {}

/** What a watcher asks for besides its key range. */
export interface WatchOptions {
  /** Fill each event's prev_kv (the key's value at mod_revision - 1). */
  prevKv?: boolean;
  /** Drop PUT events (etcd's FilterType NOPUT). */
  noPut?: boolean;
  /** Drop DELETE events (etcd's FilterType NODELETE). */
  noDelete?: boolean;
}

/**
 * One response for the stream's consumer. `kind` "events" carries events (or none: a progress
 * notification for one watcher); "compacted" cancels the watcher with compact_revision; "control"
 * is a created/canceled/progress answer queued by the server to keep the stream in order.
 */
export interface WatchBatch {
  kind: "events" | "compacted" | "control";
  watchId: bigint;
  events: Event[];
  /** The header revision etcd sends with this response. */
  revision: number;
  compactRevision: number;
  /** For "control": the protobuf-level fields the server sets. */
  created?: boolean;
  canceled?: boolean;
  cancelReason?: string;
}

type WatcherState = "synced" | "unsynced" | "victim" | "gone";

/** What most watchers share instead of one object each (an idle watcher's memory is issue 15's). */
const ONE_KEY = new Uint8Array(0);
const NO_OPTIONS: WatchOptions = Object.freeze({});

class Watcher {
  state: WatcherState = "synced";
  /** The first revision this watcher has not yet been handed (etcd's minRev). */
  minRev = 0;
  /** A victim's batch that did not fit, and where to continue after it (0: nothing more). */
  pending: { events: Event[]; revision: number; moreRev: number } | null = null;
  readonly id: string;
  readonly end: Uint8Array;
  readonly options: WatchOptions;
  constructor(
    readonly stream: WatchStream,
    readonly watchId: bigint,
    readonly key: Uint8Array,
    /** Empty: one key. [0]: from key. Otherwise [key, end). */
    end: Uint8Array,
    options: WatchOptions,
  ) {
    this.end = end.length === 0 ? ONE_KEY : end;
    this.options = options.prevKv || options.noPut || options.noDelete ? options : NO_OPTIONS;
    this.id = keyId(key);
  }

  get single(): boolean {
    return this.end.length === 0;
  }

  matches(key: Uint8Array): boolean {
    if (this.single) return compareBytes(key, this.key) === 0;
    if (compareBytes(key, this.key) < 0) return false;
    if (this.end.length === 1 && this.end[0] === 0) return true;
    return compareBytes(key, this.end) < 0;
  }
}

/**
 * The source of history: the node's current MvccStore (a function, because a snapshot from the
 * leader replaces the store object).
 */
export type WatchSource = () => MvccStore;

/** The watchable store: every watcher of every stream on one member. */
export class WatchableStore {
  readonly #source: WatchSource;
  /** Synced single-key watchers by key id: the watcher itself while it is the key's only one. */
  #syncedKeys = new Map<string, Watcher | Set<Watcher>>();
  /** Synced range watchers, indexed by their ranges. */
  #syncedRanges = new RangeWatchers<Watcher>();
  #unsynced = new Set<Watcher>();
  #victims = new Set<Watcher>();
  /** Streams waiting to answer a progress request until all their watchers are synced. */
  #progressWaiting = new Set<WatchStream>();
  /** The last revision notify() handed out: every synced watcher has observed up to it. */
  #notifiedRev = 0;

  constructor(source: WatchSource) {
    this.#source = source;
  }

  /** Current revision of the underlying store. */
  get revision(): number {
    return this.#source().revision;
  }

  /** Watchers waiting for sync(): the server runs sync() while this is true. */
  get needsSync(): boolean {
    return this.#unsynced.size > 0 || this.#victims.size > 0 || this.#progressWaiting.size > 0;
  }

  /** Counts per set, for tests and metrics. */
  get counts(): { synced: number; unsynced: number; victims: number } {
    let synced = this.#syncedRanges.size;
    for (const one of this.#syncedKeys.values()) synced += one instanceof Set ? one.size : 1;
    return { synced, unsynced: this.#unsynced.size, victims: this.#victims.size };
  }

  /** A new stream (one per gRPC Watch call). */
  newStream(capacity: number = WATCH_STREAM_CAPACITY): WatchStream {
    return new WatchStream(this, capacity);
  }

  /**
   * Events of one applied write (all of one revision), with each key's previous value. Called by
   * the node's apply loop on every member, so followers' watchers see what the leader's see.
   */
  notify(events: readonly Event[], prevKvs: PrevKvs): void {
    if (events.length === 0) return;
    const rev = Number(events[0].kv?.modRevision ?? 0n);
    // Paired with sync(): watchers are handed each revision once, in order, so an applied write
    // must come after every revision already notified, and be one revision.
    // (Messages built only on failure: this runs for every applied write.)
    if (rev <= this.#notifiedRev) {
      assert(false, `notify of revision ${rev} after ${this.#notifiedRev}`);
    }
    for (const e of events) {
      if (Number(e.kv?.modRevision ?? 0n) !== rev) {
        assert(false, `one write's events span several revisions (first ${rev})`);
      }
    }
    if (this.#syncedKeys.size === 0 && this.#syncedRanges.size === 0) {
      this.#notifiedRev = rev;
      return;
    }
    if (events.length === 1) {
      this.#notifyOne(events, prevKvs, rev);
      this.#notifiedRev = rev;
      return;
    }
    const batches = new Map<Watcher, number[]>();
    const add = (w: Watcher, i: number) => {
      if (rev < w.minRev) return; // a future start revision: only events at or after it
      const list = batches.get(w);
      if (list) list.push(i);
      else batches.set(w, [i]);
    };
    for (let i = 0; i < events.length; i++) {
      const key = events[i].kv?.key;
      if (!key) continue;
      const one = this.#syncedKeys.get(keyId(key));
      if (one instanceof Set) { for (const w of one) add(w, i); }
      else if (one !== undefined) add(one, i);
      this.#syncedRanges.forEachMatch(key, (w) => add(w, i));
    }
    for (const [w, indexes] of batches) {
      // The previous values are read only for the watchers that want them.
      const evs = w.options.prevKv
        ? indexes.map((i) => this.#withPrev(w, events[i], prevKvs.get(i)))
        : indexes.map((i) => events[i]);
      this.#hand(w, evs, rev);
    }
    this.#notifiedRev = rev;
  }

  /**
   * notify() for a write of one event (a put, a delete of one key: most writes), without the
   * per-write map and per-watcher index lists: the watchers that want no previous value all get
   * the same (read-only) array. Same order as notify's: the key's watchers, then the ranges'.
   */
  #notifyOne(events: readonly Event[], prevKvs: PrevKvs, rev: number): void {
    const key = events[0].kv?.key;
    if (!key) return;
    let withPrev: Event[] | undefined;
    const offer = (w: Watcher) => {
      if (rev < w.minRev) return; // a future start revision: only events at or after it
      let evs: Event[];
      if (w.options.prevKv) {
        withPrev ??= [this.#withPrev(w, events[0], prevKvs.get(0))];
        evs = withPrev;
      } else {
        evs = events as Event[];
      }
      this.#hand(w, evs, rev);
    };
    const one = this.#syncedKeys.get(keyId(key));
    if (one instanceof Set) { for (const w of one) offer(w); }
    else if (one !== undefined) offer(one);
    this.#syncedRanges.forEachMatch(key, offer);
  }

  /** Hands a synced watcher its events of `rev`; a full stream makes it a victim. */
  #hand(w: Watcher, evs: Event[], rev: number): void {
    if (w.stream.offer(w, evs, rev)) {
      w.minRev = rev + 1;
    } else {
      // A slow stream: keep this batch and retry it from sync(); never block the others.
      w.minRev = rev + 1;
      this.#removeSynced(w);
      w.state = "victim";
      w.pending = { events: evs, revision: rev, moreRev: 0 };
      this.#victims.add(w);
    }
  }

  /**
   * After the store was replaced by a snapshot: every synced watcher catches up from the new
   * history (etcd's watchableStore.Restore).
   */
  restored(): void {
    const seen = (w: Watcher) => {
      // A synced watcher that matched nothing lately still observed every notified revision.
      w.minRev = Math.max(w.minRev, this.#notifiedRev + 1);
      this.#toUnsynced(w);
    };
    for (const one of this.#syncedKeys.values()) {
      if (one instanceof Set) one.forEach(seen);
      else seen(one);
    }
    for (const w of this.#syncedRanges) seen(w);
    this.#syncedKeys.clear();
    this.#syncedRanges.clear();
  }

  /**
   * One round of catching up: retry victims' batches, then replay history to up to
   * MAX_WATCHERS_PER_SYNC unsynced watchers, then answer progress requests that waited.
   */
  sync(): void {
    this.#syncVictims();
    this.#syncUnsynced();
    for (const stream of [...this.#progressWaiting]) {
      if (stream.allSynced()) {
        this.#progressWaiting.delete(stream);
        stream.pushControl({ watchId: -1n, revision: this.revision });
      }
    }
  }

  // ---- used by WatchStream ----

  /** @internal */
  add(w: Watcher, startRev: number): void {
    const store = this.#source();
    const cur = store.revision;
    if (startRev === 0 || startRev > cur) {
      w.minRev = Math.max(cur + 1, startRev);
      this.#addSynced(w);
    } else {
      w.minRev = startRev;
      w.state = "unsynced";
      this.#unsynced.add(w);
    }
  }

  /** @internal */
  remove(w: Watcher): void {
    if (w.state === "synced") this.#removeSynced(w);
    this.#unsynced.delete(w);
    this.#victims.delete(w);
    w.pending = null;
    w.state = "gone";
  }

  /** @internal A progress request: answered now if the stream is synced, else after sync(). */
  requestProgress(stream: WatchStream): void {
    if (stream.allSynced()) stream.pushControl({ watchId: -1n, revision: this.revision });
    else this.#progressWaiting.add(stream);
  }

  /** @internal */
  forgetStream(stream: WatchStream): void {
    this.#progressWaiting.delete(stream);
  }

  /** @internal etcd's progress(w): an event-less response at the current revision, if synced. */
  progress(w: Watcher): void {
    if (w.state === "synced") w.stream.offer(w, [], this.revision, true);
  }

  #withPrev(w: Watcher, ev: Event, prev: KeyValue | undefined): Event {
    if (!w.options.prevKv || prev === undefined) return ev;
    return create(EventSchema, { type: ev.type, kv: ev.kv, prevKv: prev });
  }

  #addSynced(w: Watcher): void {
    w.state = "synced";
    if (w.single) {
      const one = this.#syncedKeys.get(w.id);
      if (one === undefined) this.#syncedKeys.set(w.id, w);
      else if (one instanceof Set) one.add(w);
      else if (one !== w) this.#syncedKeys.set(w.id, new Set([one, w]));
    } else {
      this.#syncedRanges.add(w);
    }
  }

  #removeSynced(w: Watcher): void {
    if (w.single) {
      const one = this.#syncedKeys.get(w.id);
      if (one === w) {
        this.#syncedKeys.delete(w.id);
      } else if (one instanceof Set && one.delete(w) && one.size === 1) {
        this.#syncedKeys.set(w.id, one.values().next().value!);
      }
    } else {
      this.#syncedRanges.delete(w);
    }
  }

  #toUnsynced(w: Watcher): void {
    w.state = "unsynced";
    this.#unsynced.add(w);
  }

  /** etcd's moveVictims. */
  #syncVictims(): void {
    if (this.#victims.size === 0) return;
    const cur = this.#source().revision;
    for (const w of [...this.#victims]) {
      const p = w.pending;
      if (p !== null && !w.stream.offer(w, p.events, p.revision)) continue;
      this.#victims.delete(w);
      w.pending = null;
      if (p !== null && p.moreRev !== 0) w.minRev = p.moreRev;
      if (w.minRev <= cur) this.#toUnsynced(w);
      else this.#addSynced(w);
    }
  }

  /** etcd's syncWatchers, with the history read bounded to WATCH_BATCH_MAX_REVS revisions. */
  #syncUnsynced(): void {
    if (this.#unsynced.size === 0) return;
    const store = this.#source();
    const cur = store.revision;
    const compactRev = store.compactRevision;
    const chosen: Watcher[] = [];
    let minRev = Infinity;
    for (const w of this.#unsynced) {
      if (chosen.length >= MAX_WATCHERS_PER_SYNC) break;
      if (w.minRev > cur) {
        // Restored from an older snapshot, or nothing happened since: already in sync.
        this.#unsynced.delete(w);
        this.#addSynced(w);
        continue;
      }
      if (w.minRev < compactRev || (w.minRev === compactRev && store.compactRevisionIncomplete)) {
        // Its history is gone: tell it with compact_revision; the server cancels it. Retried
        // next time if the stream has no room.
        if (w.stream.offerCompacted(w, compactRev)) {
          this.#unsynced.delete(w);
          w.state = "gone";
        }
        continue;
      }
      chosen.push(w);
      if (w.minRev < minRev) minRev = w.minRev;
    }
    if (chosen.length === 0) return;
    const toRev = Math.min(cur, minRev + WATCH_BATCH_MAX_REVS - 1);
    const events = store.eventsBetween(minRev, toRev);
    for (const w of chosen) {
      const upTo = Math.min(toRev, w.minRev + WATCH_BATCH_MAX_REVS - 1);
      const evs: Event[] = [];
      for (const ev of events) {
        const kv = ev.kv;
        if (!kv) continue;
        const rev = Number(kv.modRevision);
        if (rev < w.minRev) continue;
        if (rev > upTo) break;
        if (!w.matches(kv.key)) continue;
        evs.push(w.options.prevKv ? this.#withPrev(w, ev, this.#prevAt(store, ev)) : ev);
      }
      const moreRev = upTo < cur ? upTo + 1 : 0;
      w.minRev = moreRev !== 0 ? moreRev : cur + 1;
      if (evs.length > 0 && !w.stream.offer(w, evs, cur)) {
        this.#unsynced.delete(w);
        w.state = "victim";
        w.pending = { events: evs, revision: cur, moreRev: 0 };
        this.#victims.add(w);
        continue;
      }
      if (moreRev !== 0) continue; // stays unsynced; more history to replay
      this.#unsynced.delete(w);
      this.#addSynced(w);
    }
  }

  /** The key's value at mod_revision - 1 (as etcd's sendLoop reads it), if still stored. */
  #prevAt(store: MvccStore, ev: Event): KeyValue | undefined {
    const kv = ev.kv!;
    if (ev.type === Event_EventType.PUT && kv.createRevision === kv.modRevision) return undefined;
    try {
      return store.range(kv.key, EMPTY_END, { revision: Number(kv.modRevision - 1n) }).kvs[0];
    } catch {
      return undefined; // compacted meanwhile: etcd leaves prev_kv unset
    }
  }
}

/**
 * One client's watch stream (etcd's mvcc.watchStream plus the ordering of serverWatchStream):
 * its watchers and one bounded, ordered queue of responses for the server to send.
 */
export class WatchStream {
  readonly #store: WatchableStore;
  readonly #capacity: number;
  #watchers = new Map<bigint, Watcher>();
  #nextId = 0n;
  #queue: WatchBatch[] = [];
  /** Event responses in the queue (control responses do not count against the capacity). */
  #eventCount = 0;
  #closed = false;
  /** Called when the queue goes from empty to non-empty. */
  onReady: (() => void) | null = null;

  /** @internal use WatchableStore.newStream(). */
  constructor(store: WatchableStore, capacity: number) {
    this.#store = store;
    this.#capacity = capacity;
  }

  /** Number of responses waiting to be sent. */
  get queued(): number {
    return this.#queue.length;
  }

  /** IDs of this stream's live watchers. */
  get ids(): bigint[] {
    return [...this.#watchers.keys()];
  }

  /**
   * Creates a watcher: id 0 asks for the next free ID (etcd's AutoWatchID); startRev 0 means
   * "after the current revision". `end` as on the wire: empty = one key, [0] = from key. Throws
   * WatchError with etcd's message for an empty range or a duplicate ID.
   */
  watch(id: bigint, key: Uint8Array, end: Uint8Array, startRev: number, options: WatchOptions) {
    if (end.length !== 0 && !(end.length === 1 && end[0] === 0) && compareBytes(key, end) >= 0) {
      throw new WatchError(WatchErrors.emptyRange);
    }
    if (this.#closed) throw new WatchError(WatchErrors.emptyRange);
    if (id === 0n) {
      while (this.#watchers.has(this.#nextId)) this.#nextId++;
      id = this.#nextId++;
    } else if (this.#watchers.has(id)) {
      throw new WatchError(WatchErrors.duplicateId);
    }
    const w = new Watcher(this, id, key, end, options);
    this.#watchers.set(id, w);
    this.#store.add(w, startRev);
    return id;
  }

  /** Whether the watcher `id` is open on this stream. */
  has(id: bigint): boolean {
    return this.#watchers.has(id);
  }

  /** Cancels a watcher; throws WatchError(notExist) for an unknown ID. */
  cancel(id: bigint): void {
    const w = this.#watchers.get(id);
    if (!w) throw new WatchError(WatchErrors.notExist);
    this.#watchers.delete(id);
    this.#store.remove(w);
    // Responses of a canceled watcher still queued are dropped, as etcd's sendLoop does.
    const before = this.#queue.length;
    this.#queue = this.#queue.filter((b) => b.kind === "control" || b.watchId !== id);
    this.#eventCount -= before - this.#queue.length;
  }

  /** A ProgressRequest: a header-only response (watch ID -1) once every watcher is synced. */
  requestProgress(): void {
    this.#store.requestProgress(this);
  }

  /** etcd's progress notify for one watcher: an empty response at the current revision. */
  progress(id: bigint): void {
    const w = this.#watchers.get(id);
    if (w) this.#store.progress(w);
  }

  /** Queues a control response (created, canceled, progress) in order with the events. */
  pushControl(
    fields: { watchId: bigint; revision: number; created?: boolean; canceled?: boolean },
    cancelReason?: string,
  ): void {
    if (this.#closed) return;
    this.#push({
      kind: "control",
      watchId: fields.watchId,
      events: [],
      revision: fields.revision,
      compactRevision: 0,
      created: fields.created,
      canceled: fields.canceled,
      cancelReason,
    });
  }

  /** The response take() would answer next, left in the queue. */
  peek(): WatchBatch | undefined {
    return this.#queue[0];
  }

  /** Next response to send, or undefined when the queue is empty. */
  take(): WatchBatch | undefined {
    const b = this.#queue.shift();
    if (b && b.kind !== "control") this.#eventCount--;
    return b;
  }

  /** Removes every watcher; the stream is unusable afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#watchers.values()) this.#store.remove(w);
    this.#watchers.clear();
    this.#queue = [];
    this.#eventCount = 0;
    this.#store.forgetStream(this);
  }

  /** @internal true if every watcher is synced (so a progress revision claims nothing unsent). */
  allSynced(): boolean {
    for (const w of this.#watchers.values()) if (w.state !== "synced") return false;
    return true;
  }

  /** @internal Filters and queues a watcher's events; false if the queue is full. */
  offer(w: Watcher, events: Event[], revision: number, progress = false): boolean {
    if (this.#closed || w.state === "gone") return true;
    let evs = events;
    if (w.options.noPut || w.options.noDelete) {
      evs = events.filter((e) =>
        e.type === Event_EventType.PUT ? !w.options.noPut : !w.options.noDelete
      );
      if (evs.length === 0 && !progress) {
        pendingEvents.inc(events.length); // counted as handed over, as etcd counts them
        return true; // all filtered out: send nothing
      }
    }
    if (this.#eventCount >= this.#capacity) return false;
    this.#eventCount++;
    this.#push({ kind: "events", watchId: w.watchId, events: evs, revision, compactRevision: 0 });
    pendingEvents.inc(events.length);
    return true;
  }

  /** @internal The compacted answer; the watcher is dropped once queued. */
  offerCompacted(w: Watcher, compactRevision: number): boolean {
    if (this.#closed) return true;
    if (this.#eventCount >= this.#capacity) return false;
    this.#eventCount++;
    this.#watchers.delete(w.watchId);
    this.#push({ kind: "compacted", watchId: w.watchId, events: [], revision: 0, compactRevision });
    return true;
  }

  #push(b: WatchBatch): void {
    const wasEmpty = this.#queue.length === 0;
    this.#queue.push(b);
    if (wasEmpty) this.onReady?.();
  }
}
