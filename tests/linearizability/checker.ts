/**
 * A linearizability checker: the Wing–Gong search as Lowe improved it (a cache of the states
 * already reached with the same operations linearized, so no configuration is explored twice),
 * run on each partition of a P-compositional model separately (per key for a key-value store), as
 * Porcupine does. Written for detcd's tests from the papers (Wing & Gong 1993; Lowe, "Testing for
 * linearizability", 2017; Horn & Kroening, "Faster linearizability checking via P-compositionality",
 * 2015).
 *
 * An operation is `ok` (it happened: its output is known), or `unknown` (a timeout, a lost
 * connection: it may have happened, at any time after its call, or never); an operation known to
 * have failed did not happen and is left out of the history by the caller. An unknown operation's
 * return is at the end of time, so the search may place it anywhere after its call, or last, where
 * it changes nothing anyone saw.
 *
 * The search has a budget (steps of the search): a history it cannot decide within it is reported
 * as `unknown` rather than left to run for ever.
 */

/** One operation of a history. Times are any increasing clock (ms, a logical counter). */
export interface Operation<I, O> {
  /** Who issued it (for reports). */
  client: number;
  input: I;
  /** The output when the operation is known to have happened; undefined when unknown. */
  output?: O;
  /** When it was called. */
  call: number;
  /** When it returned; absent (or Infinity) when its outcome is unknown. */
  return?: number;
}

/** A sequential specification: what one operation does to the state, and what it may answer. */
export interface Model<S, I, O> {
  init(): S;
  /**
   * The state after `input` is applied to `state` and answered with `output` (undefined: an
   * unknown outcome, the operation taking effect as it would), or null when that answer is
   * impossible in that state.
   */
  step(state: S, input: I, output: O | undefined): S | null;
  /** A key for the state (equal states, equal keys): the search's cache uses it. */
  key(state: S): string;
  /** Splits a history into parts checked on their own (P-compositionality); default: one part. */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  /** An operation as text, for reports. */
  describe?(op: Operation<I, O>): string;
  /**
   * Whether `a` must come before `b` in every legal order of the part (facts the outputs fix, such
   * as two writes' revisions): the search then never tries `b` before `a`. Only a shortcut: the
   * verdict is the same without it, reached after trying the orders it rules out.
   */
  precedes?(a: Operation<I, O>, b: Operation<I, O>): boolean;
}

export type Verdict = "ok" | "illegal" | "unknown";

export interface CheckResult<I, O> {
  verdict: Verdict;
  /** For `illegal`: the part that is not linearizable, and the longest prefix order found. */
  part?: Operation<I, O>[];
  longest?: Operation<I, O>[];
  /** Steps the search took (all parts). */
  steps: number;
  /** Number of parts checked. */
  parts: number;
}

export interface CheckOptions {
  /** Search steps allowed over all parts before giving up with `unknown` (default 2,000,000). */
  budget?: number;
}

interface Entry<I, O> {
  op: Operation<I, O> | null; // null for the list's head
  index: number; // the operation's index in its part
  isCall: boolean;
  time: number;
  match: Entry<I, O> | null; // a call's return entry
  prev: Entry<I, O> | null;
  next: Entry<I, O> | null;
}

/** Checks that `history` is linearizable with respect to `model`. */
export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  const parts = model.partition ? model.partition(history) : [history];
  let budget = options.budget ?? 2_000_000;
  let steps = 0;
  let undecided = false;
  for (const part of parts) {
    const result = checkPart(model, part, budget);
    steps += result.steps;
    budget -= result.steps;
    if (result.verdict === "illegal") {
      return {
        verdict: "illegal",
        part,
        longest: result.longest,
        steps,
        parts: parts.length,
      };
    }
    if (result.verdict === "unknown") {
      undecided = true;
      if (budget <= 0) break;
    }
  }
  return { verdict: undecided ? "unknown" : "ok", steps, parts: parts.length };
}

/** The entry list of a part: calls and returns in time order (a call first on a tie). */
function entries<I, O>(part: Operation<I, O>[]): Entry<I, O> {
  const list: Entry<I, O>[] = [];
  part.forEach((op, index) => {
    const ret = op.output === undefined ? Infinity : op.return ?? Infinity;
    if (ret < op.call) {
      throw new Error(`operation returns before it is called: ${op.call} > ${ret}`);
    }
    const call: Entry<I, O> = {
      op,
      index,
      isCall: true,
      time: op.call,
      match: null,
      prev: null,
      next: null,
    };
    const back: Entry<I, O> = {
      op,
      index,
      isCall: false,
      time: ret,
      match: null,
      prev: null,
      next: null,
    };
    call.match = back;
    list.push(call, back);
  });
  // Calls before returns at the same time: operations that touch are taken as concurrent.
  list.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry<I, O> = {
    op: null,
    index: -1,
    isCall: false,
    time: -Infinity,
    match: null,
    prev: null,
    next: null,
  };
  let prev = head;
  for (const e of list) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

/** Takes a call and its return out of the list (the operation is linearized). */
function lift<I, O>(call: Entry<I, O>): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

/** Puts a lifted call and its return back (in the reverse order of lift). */
function unlift<I, O>(call: Entry<I, O>): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

function checkPart<S, I, O>(
  model: Model<S, I, O>,
  part: Operation<I, O>[],
  budget: number,
): { verdict: Verdict; steps: number; longest?: Operation<I, O>[] } {
  const head = entries(part);
  const linearized = new Uint8Array(part.length);
  // For each operation, those that must be linearized before it.
  const before: number[][] = part.map(() => []);
  if (model.precedes) {
    for (let a = 0; a < part.length; a++) {
      for (let b = 0; b < part.length; b++) {
        if (a !== b && model.precedes(part[a], part[b])) before[b].push(a);
      }
    }
  }
  const ready = (index: number) => {
    for (const a of before[index]) if (linearized[a] === 0) return false;
    return true;
  };
  const seen = new Set<string>();
  const stack: { call: Entry<I, O>; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  let longest: Operation<I, O>[] = [];
  // The cache key: which operations are linearized (as a bit string) and the state reached.
  const bits = () => {
    let s = "";
    for (let i = 0; i < linearized.length; i += 16) {
      let word = 0;
      for (let j = i; j < Math.min(i + 16, linearized.length); j++) {
        word = (word << 1) | linearized[j];
      }
      s += String.fromCharCode(word);
    }
    return s;
  };
  while (head.next !== null) {
    if (++steps > budget) return { verdict: "unknown", steps };
    if (entry === null) throw new Error("checker: ran off the end of the history");
    if (entry.isCall) {
      const op = entry.op!;
      const next = ready(entry.index) ? model.step(state, op.input, op.output) : null;
      if (next !== null) {
        linearized[entry.index] = 1;
        const key = `${bits()}\u0000${model.key(next)}`;
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          if (stack.length > longest.length) longest = stack.map((s) => s.call.op!);
          entry = head.next;
          continue;
        }
        linearized[entry.index] = 0;
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized: undo the last choice and try the next one.
      const top = stack.pop();
      if (top === undefined) return { verdict: "illegal", steps, longest };
      state = top.state;
      linearized[top.call.index] = 0;
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { verdict: "ok", steps };
}
