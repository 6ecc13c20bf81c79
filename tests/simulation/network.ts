/**
 * The packet simulator: every Raft message a member sends is encoded with the wire codec and
 * delivered 1-12 ms later (or 20-400 ms: reordering), lost, or duplicated, unless a cut link drops
 * it. Snapshot sends are reported back to the sender. Also the peer calls a follower makes to the
 * leader (lease keep-alive and TimeToLive forwarding). What the network does is drawn from its own
 * PRNG stream; which links are cut and how lossy it is, faults.ts decides.
 */

import { Errors } from "../../core/errors.ts";
import type { EtcdNode, Transport } from "../../core/node/mod.ts";
import { decodeMessage, encodeMessage, type Message, MessageType } from "../../core/raft/mod.ts";
import type { EventLoop } from "./event_loop.ts";
import type { Member, Members } from "./members.ts";
import type { Prng } from "./prng.ts";
import type { SimDisk } from "./sim_disk.ts";

/** How unreliable the network is (probabilities per message). */
export interface NetworkConditions {
  lossRate: number;
  dupRate: number;
  longDelayRate: number;
}

/** A one-way link between two members, by ID: messages from `from` to `to`. */
export type Link = readonly [from: bigint, to: bigint];

/** Message delivery between the members of one run. */
export class Network {
  #loop: EventLoop;
  #members: Members;
  #rng: Prng;
  #learnRemotes: boolean;
  /** Whether transports stream snapshots (sendSnapshot) or send their data in the message. */
  #streamSnapshots: boolean;
  /** One-way link cuts "from>to" → the partition that cut it (a symmetric one cuts both ways). */
  #cuts = new Map<string, number>();
  #lossRate = 0;
  #dupRate = 0;
  #longDelayRate = 0;

  /**
   * `learnRemotes`: a member's transport learns a sender it does not know from its incoming
   * messages and can answer it (etcd's rafthttp AddRemote); false simulates a transport that drops
   * messages to peers it was not told about.
   */
  constructor(
    loop: EventLoop,
    members: Members,
    rng: Prng,
    learnRemotes: boolean,
    streamSnapshots: boolean,
  ) {
    this.#streamSnapshots = streamSnapshots;
    this.#loop = loop;
    this.#members = members;
    this.#rng = rng;
    this.#learnRemotes = learnRemotes;
  }

  /** Sets loss, duplication and long-delay rates from now on. */
  setConditions(conditions: NetworkConditions): void {
    this.#lossRate = conditions.lossRate;
    this.#dupRate = conditions.dupRate;
    this.#longDelayRate = conditions.longDelayRate;
  }

  /** Cuts links for partition `token` (a later partition of the same link takes it over). */
  cutLinks(links: readonly Link[], token: number): void {
    for (const [from, to] of links) this.#cuts.set(linkKey(from, to), token);
  }

  /** Restores the links partition `token` cut, except those a later partition took over. */
  healLinks(links: readonly Link[], token: number): void {
    for (const [from, to] of links) {
      const k = linkKey(from, to);
      if (this.#cuts.get(k) === token) this.#cuts.delete(k);
    }
  }

  /** A reliable network from now on: no cut links, no loss, duplication or long delays. */
  heal(): void {
    this.#cuts.clear();
    this.setConditions({ lossRate: 0, dupRate: 0, longDelayRate: 0 });
  }

  /** Whether messages from `from` to `to` are dropped. */
  isCut(from: bigint, to: bigint): boolean {
    return this.#cuts.has(linkKey(from, to));
  }

  /**
   * The transport of incarnation `incarnation` of `m`: it sends while that incarnation is current
   * and its disk is not fenced, and tracks the peers the node tells it of.
   */
  transport(m: Member, incarnation: number, simDisk: SimDisk): Transport {
    return {
      send: (messages) => {
        if (m.incarnation !== incarnation || !simDisk.live) return;
        for (const msg of messages) this.#send(m, msg);
      },
      addPeer: (id) => {
        if (m.incarnation === incarnation) m.peers.add(id);
      },
      updatePeer: () => {},
      removePeer: (id) => {
        if (m.incarnation === incarnation) m.peers.delete(id);
      },
      sendSnapshot: !this.#streamSnapshots ? undefined : async (message, body) => {
        // The leader's chunks are taken now (they share one buffer; the view is captured).
        const chunks: Uint8Array[] = [];
        try {
          for (let c = await body.next(); c !== null; c = await body.next()) chunks.push(c.slice());
        } finally {
          body.close();
        }
        if (m.incarnation !== incarnation || !simDisk.live) return;
        this.#sendSnapshot(m, message, body.size, chunks);
      },
      activeSince: (id) => {
        const peer = this.#members.get(id);
        return peer && peer.state === "running" && !this.isCut(m.id, id) && !this.isCut(id, m.id)
          ? 0
          : null;
      },
    };
  }

  /**
   * A follower's call to the leader over the peer port (etcd's POST /leases): 1-12 ms each way,
   * failing with a timeout when a partition cuts either way or the leader is not running.
   */
  forward<T>(from: Member, leader: bigint, call: (node: EtcdNode) => Promise<T>): Promise<T> {
    const r = this.#rng;
    const name = (id: bigint) => this.#members.name(id);
    return new Promise<T>((resolve, reject) => {
      this.#loop.at(r.range(1, 12), `forward ${from.name}>${name(leader)}`, () => {
        const target = this.#members.get(leader);
        if (!target || target.state !== "running" || this.isCut(from.id, leader)) {
          reject(Errors.timeout());
          return;
        }
        call(target.node!).then(
          (value) =>
            this.#loop.at(r.range(1, 12), `forward reply ${name(leader)}>${from.name}`, () => {
              if (this.isCut(leader, from.id)) reject(Errors.timeout());
              else resolve(value);
            }),
          (e) => this.#loop.at(r.range(1, 12), "forward error", () => reject(e)),
        );
      });
    });
  }

  #send(from: Member, msg: Message): void {
    const stats = this.#loop.stats;
    const name = (id: bigint) => this.#members.name(id);
    const to = msg.to;
    if (!from.peers.has(to)) {
      stats.dropped++;
      return;
    }
    const r = this.#rng;
    const dropped = this.isCut(from.id, to) || r.chance(this.#lossRate);
    if (dropped) {
      stats.dropped++;
      if (msg.type === MessageType.Snap) {
        this.#loop.at(
          r.range(1, 20),
          "snap failed",
          () => this.#reportSnapshot(from.id, to, false),
        );
      }
      return;
    }
    const bytes = encodeMessage(msg);
    // A proposal forwarded twice is appended and applied twice (Raft has no client sessions; etcd
    // relies on its TCP streams never duplicating a message), so proposals are never duplicated.
    const copies = msg.type !== MessageType.Prop && r.chance(this.#dupRate) ? 2 : 1;
    if (copies === 2) stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = r.chance(this.#longDelayRate) ? r.range(20, 400) : r.range(1, 12);
      const label = `deliver ${MessageType[msg.type]} ${name(from.id)}>${name(to)}`;
      this.#loop.at(delay, label, () => this.#deliver(from.id, to, bytes, msg.type));
    }
  }

  #deliver(from: bigint, to: bigint, bytes: Uint8Array, type: MessageType): void {
    const target = this.#members.get(to);
    if (
      !target || (target.state !== "running" && target.state !== "stopping") || this.isCut(from, to)
    ) {
      this.#loop.stats.dropped++;
      // A real transport learns that the snapshot did not arrive (the write fails or the peer is
      // unreachable) and says so; without it the leader waits for that follower forever.
      if (type === MessageType.Snap) this.#reportSnapshot(from, to, false);
      return;
    }
    if (!target.peers.has(from) && this.#learnRemotes) {
      // A member restarted from an old log does not know members added since, but it must be
      // able to answer their leader: etcd's transport adds such a sender as a "remote".
      target.peers.add(from);
    }
    const msg = decodeMessage(bytes);
    this.#loop.stats.delivered++;
    target.node!.step(msg);
    if (msg.type === MessageType.Snap) this.#reportSnapshot(from, to, true);
  }

  /**
   * A snapshot on its own stream (server/peer/snapshots.ts): the receiver writes the chunks to
   * its disk as they come, then steps the message; the sender learns the outcome. With the loss
   * rate a stream breaks part way instead, leaving the receiver a partial file to throw away.
   */
  #sendSnapshot(from: Member, msg: Message, size: number, chunks: Uint8Array[]): void {
    const r = this.#rng;
    const to = msg.to;
    const failed = () =>
      this.#loop.at(r.range(1, 20), "snap failed", () => this.#reportSnapshot(from.id, to, false));
    if (!from.peers.has(to) || this.isCut(from.id, to)) {
      this.#loop.stats.dropped++;
      failed();
      return;
    }
    const arrive = r.chance(this.#lossRate) ? r.range(0, chunks.length) : chunks.length;
    const bytes = encodeMessage(msg);
    const label = `stream Snap ${this.#members.name(from.id)}>${this.#members.name(to)}`;
    this.#loop.at(r.range(1, 12), label, () => {
      const target = this.#members.get(to);
      if (!target || target.state !== "running" || this.isCut(from.id, to)) {
        this.#loop.stats.dropped++;
        failed();
        return;
      }
      const whole = arrive === chunks.length;
      async function* stream() {
        for (let i = 0; i < arrive; i++) yield chunks[i];
        if (!whole) throw new Error("snapshot stream broken");
      }
      if (whole) this.#loop.stats.snapshotsStreamed++;
      else this.#loop.stats.snapshotStreamsBroken++;
      // A receiver that dies mid-stream never answers (its disk is cut off): the sender's
      // connection times out instead, as the peer transport's idle timeout does.
      let settled = false;
      const settle = (ok: boolean) => {
        if (settled) return;
        settled = true;
        this.#loop.at(r.range(1, 12), ok ? "snap saved" : "snap failed", () => {
          this.#reportSnapshot(from.id, to, ok);
        });
      };
      this.#loop.at(SNAPSHOT_STREAM_TIMEOUT_MS, "snap stream timeout", () => settle(false));
      target.node!.receiveSnapshot(decodeMessage(bytes), size, stream()).then(
        () => settle(true),
        () => settle(false),
      );
    });
  }

  #reportSnapshot(from: bigint, to: bigint, ok: boolean): void {
    const sender = this.#members.get(from);
    if (sender?.state === "running") sender.node!.reportSnapshot(to, ok);
  }
}

/** How long a snapshot stream may go unanswered before its sender gives up (simulated ms). */
const SNAPSHOT_STREAM_TIMEOUT_MS = 5_000;

function linkKey(from: bigint, to: bigint): string {
  return `${from}>${to}`;
}
