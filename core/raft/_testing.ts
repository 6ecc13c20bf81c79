/**
 * An in-memory cluster of RawNodes for tests and, later, the simulation harness: each node's
 * Ready is handled exactly as the real node does (persist into MemoryStorage, apply, then send),
 * messages travel through the wire codec, and partitions/drops are explicit. Deterministic given
 * the seed.
 */

import { decodeConfChange, decodeMessage, encodeMessage } from "./codec.ts";
import { MemoryStorage } from "./memory_storage.ts";
import { RawNode } from "./raw_node.ts";
import {
  type ConfChange,
  type ConfState,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  none,
  type RaftConfig,
  type ReadState,
  type Ready,
  StateType,
} from "./types.ts";

import { seededRandomInt } from "./random.ts";
export { seededRandomInt };

/** Knobs for test clusters; defaults are small and deterministic. */
export interface TestOptions {
  electionTicks?: number;
  heartbeatTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  maxSizePerMsg?: number;
  maxInflightMsgs?: number;
  seed?: number;
  /** Round-trip every message through encodeMessage/decodeMessage (default true). */
  wire?: boolean;
  logger?: (msg: string) => void;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** One member: its storage, its RawNode and the state machine it applied (a list of strings). */
export class TestNode {
  raw: RawNode;
  /** Data of every applied non-empty Normal entry, in order. */
  applied: string[] = [];
  appliedIndex = 0;
  confState: ConfState = { voters: [], learners: [] };
  readStates: ReadState[] = [];
  /** Every Ready this node produced (for assertions about ordering and durability). */
  readyLog: Ready[] = [];
  keepReadyLog = false;

  constructor(
    readonly id: NodeId,
    readonly storage: MemoryStorage,
    readonly options: TestOptions,
  ) {
    this.raw = new RawNode(this.config());
    this.confState = storage.initialState().confState;
  }

  /** The RaftConfig this node runs with (applied index as persisted by the state machine). */
  config(): RaftConfig {
    const o = this.options;
    return {
      id: this.id,
      electionTicks: o.electionTicks ?? 10,
      heartbeatTicks: o.heartbeatTicks ?? 1,
      storage: this.storage,
      applied: this.appliedIndex,
      maxSizePerMsg: o.maxSizePerMsg ?? 1024 * 1024,
      maxInflightMsgs: o.maxInflightMsgs ?? 256,
      checkQuorum: o.checkQuorum ?? false,
      preVote: o.preVote ?? false,
      randomInt: seededRandomInt((o.seed ?? 1) * 1000 + Number(this.id)),
      logger: o.logger,
    };
  }

  /** Handles one Ready like the real node: persist, apply, collect messages, advance. */
  handleReady(): Message[] {
    const rd = this.raw.ready();
    if (this.keepReadyLog) this.readyLog.push(rd);
    if (rd.snapshot !== null) {
      this.storage.applySnapshot(rd.snapshot);
      this.applied = JSON.parse(textDecoder.decode(rd.snapshot.data)) as string[];
      this.appliedIndex = rd.snapshot.metadata.index;
      this.confState = rd.snapshot.metadata.confState;
    }
    this.storage.append(rd.entries);
    if (rd.hardState !== null) this.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) {
      if (e.index <= this.appliedIndex) continue;
      if (e.type === EntryType.ConfChange) {
        const cc = decodeConfChange(e.data);
        this.confState = this.raw.applyConfChange(cc);
        this.storage.setConfState(this.confState);
      } else if (e.data.length > 0) {
        this.applied.push(textDecoder.decode(e.data));
      }
      this.appliedIndex = e.index;
    }
    for (const rs of rd.readStates) this.readStates.push(rs);
    this.raw.advance(rd);
    return rd.messages;
  }

  /** Snapshot of the applied state at appliedIndex, then compaction of the log up to it. */
  compact(): void {
    const data = textEncoder.encode(JSON.stringify(this.applied));
    this.storage.createSnapshot(this.appliedIndex, this.confState, data);
    this.storage.compact(this.appliedIndex);
  }
}

/** Deterministic in-memory network of TestNodes. */
export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent but not delivered yet, in send order. */
  inFlight: Message[] = [];
  #group = new Map<NodeId, number>();
  readonly #down = new Set<NodeId>();
  /** Optional extra filter: return true to drop a message. */
  drop: ((m: Message) => boolean) | null = null;
  delivered = 0;

  constructor(readonly options: TestOptions = {}) {}

  /** A new cluster: every id bootstrapped with all ids as voters. */
  static bootstrap(ids: NodeId[], options: TestOptions = {}): Network {
    const net = new Network(options);
    for (const id of ids) {
      const n = net.addNode(id);
      n.raw.bootstrap(ids.map((p) => ({ id: p, context: new Uint8Array(0) })));
    }
    return net;
  }

  /** Adds a member with empty storage (a node joining an existing cluster, or bootstrapped later). */
  addNode(id: NodeId, options: TestOptions = this.options): TestNode {
    const n = new TestNode(id, new MemoryStorage(), options);
    this.nodes.set(id, n);
    return n;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  tick(id: NodeId, times = 1): void {
    const n = this.node(id);
    for (let i = 0; i < times; i++) n.raw.tick();
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const id of this.ids()) this.node(id).raw.tick();
  }

  /** Handles every pending Ready, moving the messages into flight. */
  flushReadies(): void {
    for (let progress = true; progress;) {
      progress = false;
      for (const id of this.ids()) {
        if (this.#down.has(id)) continue;
        const n = this.node(id);
        while (n.raw.hasReady()) {
          progress = true;
          for (const m of n.handleReady()) this.inFlight.push(m);
        }
      }
    }
  }

  #cut(m: Message): boolean {
    if (this.#down.has(m.to) || this.#down.has(m.from) || !this.nodes.has(m.to)) return true;
    const ga = this.#group.get(m.from) ?? 0;
    const gb = this.#group.get(m.to) ?? 0;
    if (ga !== gb) return true;
    return this.drop !== null && this.drop(m);
  }

  /** Delivers one round: everything in flight now (replies go into flight). */
  deliverRound(): number {
    this.flushReadies();
    const batch = this.inFlight;
    this.inFlight = [];
    for (const m0 of batch) {
      const dropped = this.#cut(m0);
      if (m0.type === MessageType.Snap) {
        const leader = this.nodes.get(m0.from);
        if (leader !== undefined && !this.#down.has(m0.from)) {
          leader.raw.reportSnapshot(m0.to, !dropped);
        }
      }
      if (dropped) continue;
      const m = this.options.wire === false ? m0 : decodeMessage(encodeMessage(m0));
      this.node(m.to).raw.step(m);
      this.delivered++;
    }
    this.flushReadies();
    return batch.length;
  }

  /** Delivers until nothing is in flight (bounded). */
  deliver(maxRounds = 1000): void {
    for (let i = 0; i < maxRounds; i++) {
      this.flushReadies();
      if (this.inFlight.length === 0) return;
      this.deliverRound();
    }
    throw new Error("network did not quiesce");
  }

  /** Splits the cluster: members of different groups cannot talk. */
  partition(...groups: NodeId[][]): void {
    this.#group = new Map();
    groups.forEach((g, i) => g.forEach((id) => this.#group.set(id, i + 1)));
  }

  heal(): void {
    this.#group = new Map();
  }

  isolate(id: NodeId): void {
    const rest = this.ids().filter((x) => x !== id);
    this.partition([id], rest);
  }

  /** Stops a member: in-memory state is lost, its storage (persisted state) is kept. */
  crash(id: NodeId): void {
    this.#down.add(id);
  }

  /** Restarts a crashed member from its storage. */
  restart(id: NodeId): void {
    const old = this.node(id);
    const n = new TestNode(id, old.storage, old.options);
    // Replays from the last snapshot: the state machine here is not durable.
    const snap = old.storage.snapshot();
    n.appliedIndex = snap.metadata.index;
    n.applied = snap.metadata.index > 0
      ? JSON.parse(textDecoder.decode(snap.data)) as string[]
      : [];
    n.raw = new RawNode(n.config());
    this.nodes.set(id, n);
    this.#down.delete(id);
  }

  /** Elects `id` by timing it out and delivering. */
  elect(id: NodeId): void {
    this.node(id).raw.campaign();
    this.deliver();
  }

  /** The leader with the highest term among running members, or none. */
  leader(): NodeId {
    let best = none;
    let bestTerm = -1;
    for (const id of this.ids()) {
      if (this.#down.has(id)) continue;
      const st = this.node(id).raw.status();
      if (st.state === StateType.Leader && st.term > bestTerm) {
        best = id;
        bestTerm = st.term;
      }
    }
    return best;
  }

  propose(id: NodeId, data: string): void {
    this.node(id).raw.propose(textEncoder.encode(data));
  }

  proposeConfChange(id: NodeId, cc: ConfChange): void {
    this.node(id).raw.proposeConfChange(cc);
  }

  readIndex(id: NodeId, ctx: string): void {
    this.node(id).raw.readIndex(textEncoder.encode(ctx));
  }

  isDown(id: NodeId): boolean {
    return this.#down.has(id);
  }
}

/** Decodes a ReadState's context back to the string a test used. */
export function ctxString(rs: ReadState): string {
  return textDecoder.decode(rs.requestCtx);
}
