/**
 * The members of a simulated cluster: what the simulation knows of each (its disk, its current
 * incarnation, the peers its transport was told of, client calls in flight), the registry every
 * module looks members up in, and the few operations on a member's life (`Lifecycle`) that only
 * the orchestrator (cluster.ts) performs, so faults, membership changes and workloads can ask for
 * them without holding the orchestrator.
 */

import { type EtcdNode, idHex, type NodeConfig } from "../../core/node/mod.ts";
import { MemoryDisk } from "../../core/storage/mod.ts";
import type { Op } from "./history.ts";
import type { SimDisk } from "./sim_disk.ts";

/** The initial cluster token of every simulated cluster (member IDs derive from it). */
export const CLUSTER_TOKEN = "sim-cluster";
/** Simulated wall clock at time 0 (only member IDs of added members and request IDs use it). */
export const EPOCH_MS = 1_700_000_000_000;
/** Every member's heartbeat interval: one tick. */
export const HEARTBEAT_MS = 100;
/** Every member's election timeout. */
export const ELECTION_TIMEOUT_MS = 1000;

/**
 * Where a member is in its life: `removed` members (and added members not started yet) are not
 * part of the cluster the checkers expect to converge.
 */
export type MemberState = "opening" | "running" | "stopping" | "down" | "removed";

/** One member across its incarnations (a restart opens a new EtcdNode on the same disk). */
export interface Member {
  name: string;
  peerUrl: string;
  id: bigint;
  disk: MemoryDisk;
  state: MemberState;
  incarnation: number;
  node: EtcdNode | null;
  simDisk: SimDisk | null;
  /** When this incarnation's disk finishes its queued operations (FIFO). */
  diskFreeAtMs: number;
  /** Peers the current incarnation's transport was told about. */
  peers: Set<bigint>;
  config: NodeConfig;
  join?: { clusterId: bigint; memberId: bigint };
  /** Client calls in flight through the current incarnation. */
  inflight: Set<Op>;
}

/**
 * What faults and membership changes may do to a member's life; cluster.ts implements it, and only
 * it opens nodes or gives incarnations up.
 */
export interface Lifecycle {
  /** Opens a new incarnation of a member that is down (nothing when it is not). */
  open(m: Member): void;
  /**
   * The current incarnation is gone (crashed, stopped or removed): the member takes `state`, and
   * every call in flight through it has an unknown outcome. The caller fences its disk first.
   */
  abandon(m: Member, state: MemberState): void;
  /** The configuration of a member starting with `initialCluster` in `state` (etcd's flags). */
  config(m: Member, initialCluster: string, state: "new" | "existing"): NodeConfig;
}

/** Every member the run has created, in creation order, and by ID. */
export class Members {
  #all: Member[] = [];
  #byId = new Map<bigint, Member>();
  #nextNumber = 1;
  #preallocate: boolean;

  /** `preallocate`: members' disks preallocate WAL segments (as the real server's disk does). */
  constructor(preallocate: boolean) {
    this.#preallocate = preallocate;
  }

  /** A new member named n1, n2, ... with an empty disk; its ID and config are set by the caller. */
  create(): Member {
    const n = this.#nextNumber++;
    const name = `n${n}`;
    return {
      name,
      peerUrl: `http://${name}.sim:2380`,
      id: 0n,
      disk: new MemoryDisk({ preallocate: this.#preallocate }),
      state: "down",
      incarnation: 0,
      node: null,
      simDisk: null,
      diskFreeAtMs: 0,
      peers: new Set(),
      config: {} as NodeConfig,
      inflight: new Set(),
    };
  }

  /** Adds a member whose ID is set: from now on the network can reach it. */
  register(m: Member): void {
    this.#all.push(m);
    this.#byId.set(m.id, m);
  }

  /** Every registered member, in registration order (the live list). */
  get all(): readonly Member[] {
    return this.#all;
  }

  /** The member with this ID, if the run created it. */
  get(id: bigint): Member | undefined {
    return this.#byId.get(id);
  }

  /** A member's name for the log (its hex ID if the run does not know it). */
  name(id: bigint): string {
    return this.#byId.get(id)?.name ?? idHex(id);
  }

  /** Members that belong to the cluster: every one not removed. */
  expected(): Member[] {
    return this.#all.filter((m) => m.state !== "removed");
  }

  /** Members whose current incarnation is open and serving. */
  running(): Member[] {
    return this.#all.filter((m) => m.state === "running");
  }
}
