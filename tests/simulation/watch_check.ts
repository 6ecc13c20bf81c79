/**
 * Watch checker for the simulation: one watcher on the whole key space on every incarnation of
 * every member, with a tiny queue (so slow-watcher victims and history catch-up happen), drained
 * after each event. Checks what etcd's watch guarantees: on each watcher revisions arrive in order
 * without gaps or repeats (#15271, #17529), and every member reports the same events for the same
 * revision (followers see what the leader sees).
 */
import { Event_EventType } from "../../gen/mvccpb/kv_pb.ts";
import type { EtcdNode } from "../../core/node/mod.ts";
import type { WatchStream } from "../../core/mvcc/mod.ts";

const decoder = new TextDecoder();
/** Responses a simulated watcher's stream holds before it becomes a victim. */
const CAPACITY = 4;

interface Watched {
  label: string;
  node: EtcdNode;
  stream: WatchStream;
  lastRev: number;
  done: boolean;
}

/** Watches every member and reports the first broken watch guarantee. */
export class WatchChecker {
  #watched: Watched[] = [];
  /** revision → its events as every member must report them. */
  #byRevision = new Map<number, string>();
  events = 0;
  /** Called once per revision, when a watcher first reports it ("PUT k=v" / "DELETE k"). */
  onRevision: ((revision: number, events: readonly string[]) => void) | null = null;

  /** Starts a watcher on a member incarnation that just opened. */
  attach(label: string, node: EtcdNode): void {
    const stream = node.watchable.newStream(CAPACITY);
    stream.watch(0n, new Uint8Array([0]), new Uint8Array([0]), 0, {});
    this.#watched.push({ label, node, stream, lastRev: 0, done: false });
  }

  /** Serves and drains every watcher; a violation as text, or null. */
  check(): string | null {
    for (const w of this.#watched) {
      if (w.done) continue;
      w.node.watchable.sync();
      for (let b = w.stream.take(); b !== undefined; b = w.stream.take()) {
        if (b.kind === "compacted") {
          w.done = true; // told, not silently skipped: acceptable
          break;
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
          if (w.lastRev !== 0 && rev !== w.lastRev + 1) {
            return `watcher on ${w.label} got revision ${rev} after ${w.lastRev}`;
          }
          w.lastRev = rev;
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
