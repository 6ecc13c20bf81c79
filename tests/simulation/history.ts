/**
 * Client histories and the checks on them. Every put writes a value no other put writes, so a
 * read's value names the write it saw. Times are simulated milliseconds: an operation is invoked
 * at `invokeMs` and its outcome is known at `endMs` (never for calls lost in a crash).
 */
import type { KvOperation } from "../linearizability/etcd_model.ts";

/** What became of a client call. `unknown`: the member crashed or the call timed out. */
export type Outcome = "pending" | "ok" | "error" | "unknown";

/** A client put as the history records it; its value is unique, so a read names its write. */
export interface PutOp {
  kind: "put";
  id: number;
  member: string;
  key: string;
  value: string;
  invokeMs: number;
  endMs: number;
  outcome: Outcome;
  /** Revision in the reply header (the write's revision). */
  revision: number;
  error: string;
}

/** A client range of one key, linearizable or serializable, as the history records it. */
export interface GetOp {
  kind: "get";
  id: number;
  member: string;
  key: string;
  serializable: boolean;
  invokeMs: number;
  endMs: number;
  outcome: Outcome;
  /** Value read, or null when the key was absent. */
  value: string | null;
  modRevision: number;
  /** Revision in the reply header (the store's revision when it answered). */
  headerRevision: number;
  error: string;
}

/** One client call of the history. */
export type Op = PutOp | GetOp;

/**
 * Checks a finished history; returns the first violation found, or null.
 * - acknowledged writes have unique revisions, and a write acknowledged before another was
 *   invoked has the smaller revision (revisions follow real time);
 * - a read's value was written by a put of that key invoked before the read returned, at the
 *   revision the read reports (when that put was acknowledged);
 * - a linearizable read sees every write acknowledged before it was invoked: its value is not
 *   older than any of them and its header revision is at least theirs.
 */
export function checkHistory(ops: readonly Op[]): string | null {
  const puts = ops.filter((o): o is PutOp => o.kind === "put");
  const acked = puts.filter((p) => p.outcome === "ok").sort((a, b) => a.endMs - b.endMs);
  const byRevision = new Map<number, PutOp>();
  for (const p of acked) {
    const other = byRevision.get(p.revision);
    if (other) {
      return `two acknowledged puts got revision ${p.revision}: ${describe(other)} and ${
        describe(p)
      }`;
    }
    byRevision.set(p.revision, p);
  }
  // Real-time order: walk by invocation, keeping the largest revision acknowledged before it.
  const byInvoke = [...acked].sort((a, b) => a.invokeMs - b.invokeMs);
  {
    let i = 0;
    let maxRev = 0;
    let maxOp: PutOp | null = null;
    for (const p of byInvoke) {
      while (i < acked.length && acked[i].endMs < p.invokeMs) {
        if (acked[i].revision > maxRev) {
          maxRev = acked[i].revision;
          maxOp = acked[i];
        }
        i++;
      }
      if (maxOp && p.revision <= maxRev) {
        return `revision went back in real time: ${describe(maxOp)} was acknowledged before ${
          describe(p)
        } was invoked, but got a higher revision`;
      }
    }
  }
  const byValue = new Map<string, PutOp>(puts.map((p) => [p.value, p]));
  const gets = ops.filter((o): o is GetOp => o.kind === "get" && o.outcome === "ok");
  for (const g of gets) {
    if (g.value !== null) {
      const w = byValue.get(g.value);
      if (!w || w.key !== g.key) return `${describe(g)} read a value nobody wrote to that key`;
      if (w.invokeMs > g.endMs) return `${describe(g)} read ${describe(w)} from the future`;
      if (w.outcome === "ok" && w.revision !== g.modRevision) {
        return `${describe(g)} reports mod revision ${g.modRevision} for ${describe(w)}`;
      }
    }
    if (g.serializable) continue;
    for (const w of acked) {
      if (w.endMs >= g.invokeMs) break;
      if (w.revision > g.headerRevision) {
        return `stale linearizable read: ${describe(g)} has header revision ${g.headerRevision} ` +
          `but ${describe(w)} was acknowledged before it was invoked`;
      }
      if (w.key === g.key && w.revision > g.modRevision) {
        return `stale linearizable read: ${describe(g)} returned mod revision ${g.modRevision} ` +
          `but ${describe(w)} was acknowledged before it was invoked`;
      }
    }
  }
  return null;
}

/** One line naming an operation, for failure messages. */
export function describe(op: Op): string {
  const end = op.outcome === "pending" ? "pending" : `${op.outcome}@${op.endMs}ms`;
  if (op.kind === "put") {
    const rev = op.outcome === "ok" ? ` rev=${op.revision}` : op.error ? ` (${op.error})` : "";
    return `put#${op.id}(${op.key}=${op.value}) via ${op.member} [${op.invokeMs}ms..${end}${rev}]`;
  }
  const what = op.outcome === "ok"
    ? ` -> ${op.value ?? "<absent>"} mod=${op.modRevision} hdr=${op.headerRevision}`
    : op.error
    ? ` (${op.error})`
    : "";
  return `${
    op.serializable ? "s" : "l"
  }get#${op.id}(${op.key}) via ${op.member} [${op.invokeMs}ms..${end}${what}]`;
}

/**
 * The history as the linearizability checker takes it: an acknowledged put with its revision; a
 * put that failed or never answered as unknown (a timeout or a lost leader may still have applied
 * it); a linearizable read with its answer. Failed reads and serializable reads (which may be
 * stale by design) are left out.
 */
export function toKvHistory(ops: readonly Op[]): KvOperation[] {
  const out: KvOperation[] = [];
  for (const op of ops) {
    if (op.kind === "put") {
      const input = { kind: "put" as const, key: op.key, value: op.value };
      out.push(
        op.outcome === "ok"
          ? {
            client: op.id,
            call: op.invokeMs,
            return: op.endMs,
            input,
            output: { kind: "put", revision: op.revision },
          }
          : { client: op.id, call: op.invokeMs, input },
      );
    } else if (op.outcome === "ok" && !op.serializable) {
      out.push({
        client: op.id,
        call: op.invokeMs,
        return: op.endMs,
        input: { kind: "get", key: op.key },
        output: { kind: "get", value: op.value, modRevision: op.modRevision },
      });
    }
  }
  return out;
}
