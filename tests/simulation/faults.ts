/**
 * Process and network faults during the chaos phase: every 0.2-2.5 s one of crash (often of the
 * leader; restart 0.1-4 s later), clean stop and restart, a partition (both ways or one way), the
 * leader isolated, new network conditions, or move-leader. Decisions come from the fault stream,
 * which member ticks (cluster.ts) and membership changes (membership.ts) draw from too.
 */

import { errorText, type EventLoop } from "./event_loop.ts";
import type { Lifecycle, Member, Members } from "./members.ts";
import type { Link, Network } from "./network.ts";
import type { Prng } from "./prng.ts";

/** Crashes, restarts, partitions and leader moves, until `stop()`. */
export class Faults {
  #loop: EventLoop;
  #members: Members;
  #network: Network;
  #lifecycle: Lifecycle;
  #rng: Prng;
  #stopped = false;

  constructor(
    loop: EventLoop,
    members: Members,
    network: Network,
    lifecycle: Lifecycle,
    rng: Prng,
  ) {
    this.#loop = loop;
    this.#members = members;
    this.#network = network;
    this.#lifecycle = lifecycle;
    this.#rng = rng;
  }

  /** Schedules the first fault (0.5-2 s from now); each schedules the next. */
  start(): void {
    const r = this.#rng;
    const next = () => {
      if (this.#stopped) return;
      this.#fault();
      this.#loop.at(r.range(200, 2500), "fault", next);
    };
    this.#loop.at(r.range(500, 2000), "fault", next);
  }

  /** No new faults (restarts and heals already scheduled still happen). */
  stop(): void {
    this.#stopped = true;
  }

  #fault(): void {
    const r = this.#rng;
    const live = this.#members.expected();
    const roll = r.int(100);
    if (roll < 25) {
      // Crash one member; keep a majority of the members up most of the time.
      const up = live.filter((m) => m.state === "running" || m.state === "opening");
      const down = live.length - up.length;
      if (up.length === 0) return;
      if (down >= Math.floor(live.length / 2) && !r.chance(0.2)) return;
      const victim = r.chance(0.4) ? (up.find((m) => m.node?.isLeader) ?? r.pick(up)) : r.pick(up);
      this.#crash(victim);
      this.#loop.at(
        r.range(100, 4000),
        `restart ${victim.name}`,
        () => this.#lifecycle.open(victim),
      );
    } else if (roll < 35) {
      const up = live.filter((m) => m.state === "running");
      if (up.length > 0) this.#cleanRestart(r.pick(up));
    } else if (roll < 60) {
      // Partition: split the members in two groups, both ways or one way only.
      const ids = live.map((m) => m.id);
      const side = ids.filter(() => r.chance(0.5));
      if (side.length === 0 || side.length === ids.length) return;
      const other = ids.filter((id) => !side.includes(id));
      const oneWay = r.chance(0.3);
      const links: Link[] = [];
      for (const a of side) {
        for (const b of other) {
          links.push([a, b]);
          if (!oneWay) links.push([b, a]);
        }
      }
      const token = this.#partition(links);
      const names = (xs: bigint[]) => xs.map((x) => this.#members.name(x)).join(",");
      this.#loop.log(
        `partition#${token} ${names(side)} ${oneWay ? "-/->" : "<-/->"} ${names(other)}`,
      );
      this.#healLater(r.range(300, 6000), links, token);
    } else if (roll < 70) {
      // Isolate the leader (the classic way to force an election with a stale leader around).
      const leader = live.find((m) => m.node?.isLeader);
      if (!leader) return;
      const links: Link[] = [];
      for (const m of live) {
        if (m === leader) continue;
        links.push([leader.id, m.id], [m.id, leader.id]);
      }
      const token = this.#partition(links);
      this.#loop.log(`partition#${token} isolates leader ${leader.name}`);
      this.#healLater(r.range(500, 5000), links, token);
    } else if (roll < 80) {
      const lossRate = r.pick([0, 0, 0.02, 0.1, 0.3]);
      const dupRate = r.pick([0, 0.02, 0.1]);
      const longDelayRate = r.pick([0, 0.02, 0.1, 0.3]);
      this.#network.setConditions({ lossRate, dupRate, longDelayRate });
      this.#loop.log(`network: loss ${lossRate} dup ${dupRate} long ${longDelayRate}`);
    } else if (roll < 85) {
      // Ask the leader to hand over leadership (etcd's move-leader).
      const leader = live.find((m) => m.state === "running" && m.node?.isLeader);
      const targets = live.filter((m) => m !== leader && m.state === "running");
      if (!leader || targets.length === 0) return;
      const target = r.pick(targets);
      this.#loop.log(`move-leader ${leader.name} -> ${target.name}`);
      leader.node!.moveLeader(target.id).then(
        () => this.#loop.log(`move-leader to ${target.name} ok`),
        (e) => this.#loop.log(`move-leader to ${target.name} failed: ${errorText(e)}`),
      );
    }
  }

  /** Cuts `links` as a new partition; returns its number. */
  #partition(links: readonly Link[]): number {
    const token = ++this.#loop.stats.partitions;
    this.#network.cutLinks(links, token);
    return token;
  }

  #healLater(delayMs: number, links: readonly Link[], token: number): void {
    this.#loop.at(delayMs, "heal", () => {
      this.#network.healLinks(links, token);
      this.#loop.log(`heal partition#${token}`);
    });
  }

  /** kill -9: the member vanishes mid-flight and its disk loses every unsynced write. */
  #crash(m: Member): void {
    if (m.state !== "running" && m.state !== "opening") return;
    this.#loop.stats.crashes++;
    this.#loop.log(`crash ${m.name}#${m.incarnation}`);
    m.simDisk?.fence();
    m.disk.crash();
    this.#lifecycle.abandon(m, "down");
  }

  /** Graceful stop (writes in flight finish), then a restart on the same disk. */
  #cleanRestart(m: Member): void {
    if (m.state !== "running") return;
    this.#loop.stats.cleanRestarts++;
    const node = m.node!;
    const inc = m.incarnation;
    m.state = "stopping";
    this.#loop.log(`stop ${m.name}#${inc}`);
    node.stop().then(
      () => {
        if (m.incarnation !== inc || m.state !== "stopping") return;
        m.simDisk?.fence();
        this.#lifecycle.abandon(m, "down");
        this.#loop.log(`stopped ${m.name}#${inc}`);
        this.#loop.at(this.#rng.range(0, 500), `restart ${m.name}`, () => this.#lifecycle.open(m));
      },
      (e) => this.#loop.fail(`${m.name}#${inc} stop failed: ${errorText(e)}`),
    );
  }
}
