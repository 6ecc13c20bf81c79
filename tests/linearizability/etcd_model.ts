/**
 * etcd's key-value API as a sequential model for the linearizability checker: put, delete, get (the
 * latest value, or as of a revision), and a compare-and-swap txn (`If(value == expect) Then(put)`;
 * expect null compares create_revision to 0). Each key is its own partition, its state the key's
 * versions with the revisions the writes were given; a write whose outcome is unknown enters with
 * its revision unknown until a read names it. What one key cannot see — revisions shared or going
 * backwards across keys, a read at a revision missing a write made before it — is checked over the
 * whole history by checkRevisions().
 */
import type { Model, Operation } from "./checker.ts";

export type KvInput =
  | { kind: "put"; key: string; value: string }
  | { kind: "delete"; key: string }
  /** revision 0 (or absent): the latest value, linearizable; > 0: the value as of that revision. */
  | { kind: "get"; key: string; revision?: number }
  | { kind: "cas"; key: string; expect: string | null; value: string };

export type KvOutput =
  | { kind: "put"; revision: number }
  /** `revision`: the write's revision when deleted is 1 (the header's otherwise). */
  | { kind: "delete"; revision: number; deleted: number }
  /** modRevision 0 when the key does not exist. */
  | { kind: "get"; value: string | null; modRevision: number }
  | { kind: "cas"; succeeded: boolean; revision: number };

export type KvOperation = Operation<KvInput, KvOutput>;

/** A version of one key: the value (null: deleted) and its revision (-1: not known yet). */
interface Version {
  rev: number;
  value: string | null;
}

/** One key's versions, oldest first (a fresh key: none). */
export type KeyState = readonly Version[];

const UNKNOWN = -1;

function current(state: KeyState): Version | undefined {
  return state[state.length - 1];
}

/** The highest revision known in the key's versions (0 when none is known). */
function lastKnown(state: KeyState): number {
  for (let i = state.length - 1; i >= 0; i--) if (state[i].rev !== UNKNOWN) return state[i].rev;
  return 0;
}

function append(state: KeyState, version: Version): KeyState {
  return [...state, version];
}

/** A write's revision must come after every revision the key already has. */
function writeRevisionOk(state: KeyState, rev: number): boolean {
  return rev > lastKnown(state);
}

/** The values a read as of `rev` may see: the version then current, or an unplaced unknown one. */
function valuesAt(state: KeyState, rev: number): (string | null)[] {
  let i = state.length - 1;
  while (i >= 0 && (state[i].rev === UNKNOWN || state[i].rev > rev)) i--;
  const out: (string | null)[] = [i >= 0 ? state[i].value : null];
  // Unknown revisions right after it may be at or below rev.
  for (let j = i + 1; j < state.length && state[j].rev === UNKNOWN; j++) out.push(state[j].value);
  return out;
}

function step(state: KeyState, input: KvInput, output: KvOutput | undefined): KeyState | null {
  const now = current(state);
  const value = now?.value ?? null;
  switch (input.kind) {
    case "put": {
      if (output === undefined) return append(state, { rev: UNKNOWN, value: input.value });
      if (output.kind !== "put" || !writeRevisionOk(state, output.revision)) return null;
      return append(state, { rev: output.revision, value: input.value });
    }
    case "delete": {
      if (output === undefined) {
        return value === null ? state : append(state, { rev: UNKNOWN, value: null });
      }
      if (output.kind !== "delete" || output.deleted !== (value === null ? 0 : 1)) return null;
      if (value === null) return output.revision >= lastKnown(state) ? state : null;
      if (!writeRevisionOk(state, output.revision)) return null;
      return append(state, { rev: output.revision, value: null });
    }
    case "cas": {
      const holds = value === input.expect;
      if (output === undefined) {
        return holds ? append(state, { rev: UNKNOWN, value: input.value }) : state;
      }
      if (output.kind !== "cas" || output.succeeded !== holds) return null;
      if (!holds) return output.revision >= lastKnown(state) ? state : null;
      if (!writeRevisionOk(state, output.revision)) return null;
      return append(state, { rev: output.revision, value: input.value });
    }
    case "get": {
      if (output === undefined) return state; // a read changes nothing
      if (output.kind !== "get") return null;
      if (input.revision !== undefined && input.revision > 0) {
        if (!valuesAt(state, input.revision).includes(output.value)) return null;
        return output.modRevision <= input.revision ? state : null;
      }
      if (output.value !== value) return null;
      if (value === null) return output.modRevision === 0 ? state : null;
      if (now!.rev !== UNKNOWN) return output.modRevision === now!.rev ? state : null;
      // The read names the unknown write's revision.
      const before = lastKnown(state);
      if (output.modRevision <= before) return null;
      return [...state.slice(0, -1), { rev: output.modRevision, value }];
    }
  }
}

/**
 * Only what a read of the latest value can still tell apart: the current version and, when its
 * revision is unknown, the last version whose revision is known. Far fewer distinct states, so
 * the search's cache recognises far more of them (histories with unknown writes explode without).
 */
function latestOnly(state: KeyState): KeyState {
  const cur = state[state.length - 1];
  if (cur === undefined || (state.length === 1)) return state;
  if (cur.rev !== UNKNOWN) return [cur];
  let i = state.length - 2;
  while (i >= 0 && state[i].rev === UNKNOWN) i--;
  return i < 0 ? [cur] : [state[i], cur];
}

/**
 * The model: per key, its versions. With `keepHistory` false (no read as of a revision in the
 * history) the state keeps only what reads of the latest value depend on.
 */
export function kvModel(keepHistory: boolean): Model<KeyState, KvInput, KvOutput> {
  return {
    ...etcdKvModel,
    step: keepHistory ? step : (state, input, output) => {
      const next = step(state, input, output);
      return next === null ? null : latestOnly(next);
    },
  };
}

/** The model for `history`: the versions kept only when some read asks for a past revision. */
export function kvModelFor(history: KvOperation[]): Model<KeyState, KvInput, KvOutput> {
  return kvModel(history.some((op) => op.input.kind === "get" && (op.input.revision ?? 0) > 0));
}

/** The model, every version kept (reads as of a revision allowed). */
export const etcdKvModel: Model<KeyState, KvInput, KvOutput> = {
  init: () => [],
  step,
  key: (state) =>
    state.map((v) => `${v.rev}:${v.value === null ? "-" : JSON.stringify(v.value)}`).join(","),
  partition(history) {
    const byKey = new Map<string, KvOperation[]>();
    for (const op of history) {
      const list = byKey.get(op.input.key);
      if (list) list.push(op);
      else byKey.set(op.input.key, [op]);
    }
    return [...byKey.values()];
  },
  precedes(a, b) {
    if (a.input.key !== b.input.key) return false;
    const ra = writeRevision(a);
    const rb = writeRevision(b);
    // Writes in the order of their revisions.
    if (ra !== null && rb !== null) return ra < rb;
    // A read of the latest value comes after the write it names and before any later write.
    const readOf = (op: KvOperation) =>
      op.output?.kind === "get" && op.output.value !== null &&
        !((op.input as { revision?: number }).revision)
        ? op.output.modRevision
        : null;
    const mb = readOf(b);
    if (ra !== null && mb !== null) return ra === mb;
    const ma = readOf(a);
    if (ma !== null && rb !== null) return rb > ma;
    return false;
  },
  describe: (op) =>
    `client ${op.client} [${op.call}, ${op.return ?? "?"}] ${JSON.stringify(op.input)} -> ${
      op.output === undefined ? "unknown" : JSON.stringify(op.output)
    }`,
};

/** The revision a write was given, when it is known and the write changed the key. */
function writeRevision(op: KvOperation): number | null {
  const out = op.output;
  if (out === undefined) return null;
  if (out.kind === "put") return out.revision;
  if (out.kind === "delete" && out.deleted > 0) return out.revision;
  if (out.kind === "cas" && out.succeeded) return out.revision;
  return null;
}

function writesValue(op: KvOperation): string | null {
  return op.input.kind === "put" || op.input.kind === "cas" ? op.input.value : null;
}

/**
 * What the per-key search cannot see, over the whole history: two writes given one revision; a
 * write that returned before another was called given the later revision; a read as of a
 * revision that does not show the key's acknowledged write at or below it (checked on keys with
 * no write of unknown outcome). Returns the problems found (none: []).
 */
export function checkRevisions(history: KvOperation[]): string[] {
  const problems: string[] = [];
  const writes = history.flatMap((op) => {
    const rev = writeRevision(op);
    return rev === null ? [] : [{ op, rev }];
  });
  const byRev = new Map<number, KvOperation>();
  for (const w of writes) {
    const other = byRev.get(w.rev);
    if (other) {
      problems.push(
        `revision ${w.rev} given twice: ${etcdKvModel.describe!(other)} and ${
          etcdKvModel.describe!(w.op)
        }`,
      );
    }
    byRev.set(w.rev, w.op);
  }
  // Real-time order: a write called after another returned has a higher revision.
  const returned = [...writes].sort((a, b) =>
    (a.op.return ?? Infinity) - (b.op.return ?? Infinity)
  );
  const called = [...writes].sort((a, b) => a.op.call - b.op.call);
  let highest: { op: KvOperation; rev: number } | null = null;
  let r = 0;
  for (const w of called) {
    while (r < returned.length && (returned[r].op.return ?? Infinity) < w.op.call) {
      if (highest === null || returned[r].rev > highest.rev) highest = returned[r];
      r++;
    }
    if (highest !== null && w.rev <= highest.rev) {
      problems.push(
        `revision ${w.rev} of ${
          etcdKvModel.describe!(w.op)
        } is not above revision ${highest.rev} ` +
          `of ${etcdKvModel.describe!(highest.op)}, which returned before it was called`,
      );
    }
  }
  // Reads as of a revision against the key's acknowledged writes (per key, sorted by revision,
  // found by binary search: a long history has hundreds of thousands of each).
  const unsure = new Set(
    history.filter((op) => op.output === undefined && op.input.kind !== "get").map((op) =>
      op.input.key
    ),
  );
  const byKey = new Map<string, { rev: number; value: string | null }[]>();
  for (const w of writes) {
    const list = byKey.get(w.op.input.key) ?? [];
    list.push({ rev: w.rev, value: writesValue(w.op) });
    byKey.set(w.op.input.key, list);
  }
  for (const list of byKey.values()) list.sort((a, b) => a.rev - b.rev);
  for (const op of history) {
    if (op.input.kind !== "get" || !op.input.revision || op.output?.kind !== "get") continue;
    if (unsure.has(op.input.key)) continue;
    const at = op.input.revision;
    const list = byKey.get(op.input.key) ?? [];
    let lo = 0;
    let hi = list.length; // the first write above `at`
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].rev <= at) lo = mid + 1;
      else hi = mid;
    }
    const want = lo > 0 ? list[lo - 1].value : null;
    if (op.output.value !== want) {
      problems.push(
        `${etcdKvModel.describe!(op)} but the write at or below revision ${at} left ${
          JSON.stringify(want)
        }`,
      );
    }
  }
  return problems;
}

/**
 * Leaves out puts of unknown outcome whose value nobody read (and nobody else wrote), on keys that
 * only puts and gets touch: such a put, if it happened, can always be placed last, where no one
 * observes it, so the verdict is the same; each one left in multiplies the orders the search may
 * have to try. On a key with deletes or compare-and-swaps the put stays: a delete that found the
 * key, or a CAS that failed, may be what observed it.
 */
export function withoutUnobservedUnknownPuts(history: KvOperation[]): KvOperation[] {
  const read = new Set<string>();
  const written = new Map<string, number>();
  const observedOtherwise = new Set<string>();
  for (const op of history) {
    if (op.output?.kind === "get" && op.output.value !== null) {
      read.add(`${op.input.key}\u0000${op.output.value}`);
    }
    if (op.input.kind === "put" || op.input.kind === "cas") {
      const k = `${op.input.key}\u0000${op.input.value}`;
      written.set(k, (written.get(k) ?? 0) + 1);
    }
    if (op.input.kind === "delete" || op.input.kind === "cas") observedOtherwise.add(op.input.key);
  }
  return history.filter((op) => {
    if (op.output !== undefined || op.input.kind !== "put") return true;
    if (observedOtherwise.has(op.input.key)) return true;
    const k = `${op.input.key}\u0000${op.input.value}`;
    return read.has(k) || written.get(k)! > 1;
  });
}
