/**
 * Watch checker for the simulation: one watcher on the whole key space on every incarnation of
 * every member, with a tiny queue (so slow-watcher victims and history catch-up happen), drained
 * after each event. Checks what etcd's watch guarantees: on each watcher revisions arrive in order
 * without gaps or repeats (#15271, #17529), and every member reports the same events for the same
 * revision (followers see what the leader sees). A member's next incarnation resumes its watch from
 * the revision after the last one its previous watcher saw (a client reconnecting), so resuming
 * from a past revision is checked too: the first event must be exactly that revision, unless the
 * member answers that it was compacted. Every 200 checks each watcher asks for a progress
 * notification; its revision must not be behind an event already received, nor may a later event
 * be at or below it (etcd #15220).
 */
import { Event_EventType } from "../../gen/mvccpb/kv_pb.ts";
import type { EtcdNode } from "../../core/node/mod.ts";
import type { WatchStream } from "../../core/mvcc/mod.ts";

const decoder = new TextDecoder();
/** Responses a simulated watcher's stream holds before it becomes a victim. */
const CAPACITY = 4;

interface Watched {
  label: string;
  member: string;
  node: EtcdNode;
  stream: WatchStream;
  lastRev: number;
  /** The last event's revision this watcher received (lastRev starts below a resume point). */
  received: number;
  /** The highest progress notification received (every event after it must be above it). */
  progress: number;
  done: boolean;
}

/** Checks between two progress requests on each watcher. */
const PROGRESS_EVERY = 200;

/** Watches every member and reports the first broken watch guarantee. */
export class WatchChecker {
  #watched: Watched[] = [];
  /** revision → its events as every member must report them. */
  #byRevision = new Map<number, string>();
  events = 0;
  /** Called once per revision, when a watcher first reports it ("PUT k=v" / "DELETE k"). */
  onRevision: ((revision: number, events: readonly string[]) => void) | null = null;

  #checks = 0;
  /** Watchers resumed from a past revision, and progress notifications checked. */
  resumed = 0;
  progressChecked = 0;

  /**
   * Starts a watcher on a member incarnation that just opened (`label` is "<member>#<n>"): from
   * the revision after the last one the member's previous watcher saw, or from now.
   */
  attach(label: string, node: EtcdNode): void {
    const member = label.split("#")[0];
    let from = 0;
    for (const w of this.#watched) if (w.member === member) from = Math.max(from, w.lastRev + 1);
    if (from > 0) this.resumed++;
    const stream = node.watchable.newStream(CAPACITY);
    stream.watch(0n, new Uint8Array([0]), new Uint8Array([0]), from, {});
    this.#watched.push({
      label,
      member,
      node,
      stream,
      lastRev: from > 0 ? from - 1 : 0,
      received: 0,
      progress: 0,
      done: false,
    });
  }

  /** Serves and drains every watcher; a violation as text, or null. */
  check(): string | null {
    const askProgress = ++this.#checks % PROGRESS_EVERY === 0;
    for (const w of this.#watched) {
      if (w.done) continue;
      if (askProgress) w.stream.requestProgress();
      w.node.watchable.sync();
      for (let b = w.stream.take(); b !== undefined; b = w.stream.take()) {
        if (b.kind === "compacted") {
          w.done = true; // told, not silently skipped: acceptable
          break;
        }
        if (b.kind === "control" && b.watchId === -1n) {
          // A progress notification: every event up to its revision has been sent.
          this.progressChecked++;
          if (b.revision < w.received) {
            return `watcher on ${w.label}: progress at revision ${b.revision} after an event at ${w.received}`;
          }
          w.progress = Math.max(w.progress, b.revision);
          continue;
        }
        const revisions = new Map<number, string[]>();
        for (const e of b.events) {
          const kv = e.kv!;
          const rev = Number(kv.modRevision);
          const text = e.type === Event_EventType.PUT
            ? `PUT ${decoder.decode(kv.key)}=${decoder.decode(kv.value)}`
            : `DELETE ${decoder.decode(kv.key)}`;
          const list = revisions.get(rev);
          if (list) list.push(text);
          else revisions.set(rev, [text]);
        }
        for (const [rev, list] of revisions) {
          if (rev <= w.progress) {
            return `watcher on ${w.label}: an event at revision ${rev} after a progress notification at ${w.progress}`;
          }
          if (w.lastRev !== 0 && rev !== w.lastRev + 1) {
            return `watcher on ${w.label} got revision ${rev} after ${w.lastRev}`;
          }
          w.lastRev = rev;
          w.received = rev;
          this.events += list.length;
          const text = list.join(", ");
          const seen = this.#byRevision.get(rev);
          if (seen === undefined) {
            this.#byRevision.set(rev, text);
            this.onRevision?.(rev, list);
          } else if (seen !== text) {
            return `watchers disagree on revision ${rev}: ${w.label} saw [${text}], before [${seen}]`;
          }
        }
      }
    }
    return null;
  }
}
