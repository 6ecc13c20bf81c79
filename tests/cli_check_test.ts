/**
 * `check datascale` and `check perf`, etcdctl 3.4.23 on etcd 3.4.23 against detcdctl on detcd,
 * each on its own fresh member: exit codes and output after normalising what is measured (the
 * memory used, throughput, latencies, the progress bar's timing) and the port. The verdict words
 * of `check perf` are normalised too: whether 150 writes/s held for a minute on a loaded machine
 * is the machine's business; that each line is there, in etcdctl's order and form, is ours.
 */

import assert from "node:assert/strict";
import {
  assertReference,
  type Member,
  type MemberKind,
  requireReference,
  runCtl,
  startMember,
} from "./harness.ts";

const reference = requireReference();
const OPTIONS = { ignore: reference.ignore, sanitizeOps: false, sanitizeResources: false };
const CTL_OF: Record<MemberKind, "etcdctl" | "detcdctl"> = { etcd: "etcdctl", detcd: "detcdctl" };

/** One redraw of etcdctl's progress bar (no terminal: counters, percent, time). */
const BAR_DRAW = /\r +\d+ \/ \d+ +[\d.]+%(?: (?:\d+h)?(?:\d+m)?\d+s| \d\dm\d\ds)?/g;

/**
 * The bar's redraws taken out (their number and timing are the machine's, and etcdctl's last
 * redraw races the lines printed after the load), its final state kept at the end, its running
 * time normalised.
 */
function lastBarState(text: string): string {
  const draws = text.match(BAR_DRAW) ?? [];
  if (draws.length === 0) return text;
  const rest = text.replace(BAR_DRAW, "").split("\n").filter((line) => line !== "").join("\n");
  const final = draws.at(-1)!.slice(1).replace(/ (?:\d+h)?(?:\d+m)?\d+s$/, " <TIME>");
  return `${rest}\nbar: ${final}\n`;
}

function normalise(text: string, member: Member): string {
  return lastBarState(text)
    .replaceAll(`:${member.clientPort}`, ":<PORT>")
    .replace(/memory used : -?[\d.]+ MB/, "memory used : <N> MB")
    .replace(
      /^(?:PASS: Throughput is|FAIL: Throughput too low:) \d+ writes\/s$/m,
      "<VERDICT> throughput <N> writes/s",
    )
    .replace(
      /^(?:PASS: Slowest request took|Slowest request took too long:) [\d.]+s$/m,
      "<VERDICT> slowest <N>s",
    )
    .replace(/^(?:PASS: Stddev is|Stddev too high:) [\d.]+s$/m, "<VERDICT> stddev <N>s")
    .replace(/^(?:PASS|FAIL)$/m, "<VERDICT>");
}

/**
 * `check perf --load s`'s report agrees with itself: each PASS line's number is within its bound
 * (throughput above 90 % of 150/s and at most what the rate allows, slowest at most 0.5 s, stddev
 * at most 0.1 s), each failure line's is past it, and the last line and the exit code say PASS
 * exactly when no line failed.
 */
function checkPerfVerdicts(kind: MemberKind, stdout: string, code: number): void {
  const lines = stdout.split("\n");
  const num = (re: RegExp) => {
    const m = lines.map((l) => re.exec(l)).find((m) => m !== null);
    return m ? Number(m[1]) : undefined;
  };
  const passRate = num(/^PASS: Throughput is (\d+) writes\/s$/);
  const failRate = num(/^FAIL: Throughput too low: (\d+) writes\/s$/);
  const passSlowest = num(/^PASS: Slowest request took ([\d.]+)s$/);
  const failSlowest = num(/^Slowest request took too long: ([\d.]+)s$/);
  const passStddev = num(/^PASS: Stddev is ([\d.]+)s$/);
  const failStddev = num(/^Stddev too high: ([\d.]+)s$/);
  assert.ok((passRate === undefined) !== (failRate === undefined), `${kind}: one throughput line`);
  if (passRate !== undefined) assert.ok(passRate > 135 && passRate <= 160, `${kind}: ${passRate}`);
  if (failRate !== undefined) assert.ok(failRate <= 136, `${kind}: ${failRate}`);
  assert.ok((passSlowest === undefined) !== (failSlowest === undefined), `${kind}: slowest line`);
  if (passSlowest !== undefined) assert.ok(passSlowest <= 0.5, `${kind}: ${passSlowest}`);
  if (failSlowest !== undefined) assert.ok(failSlowest > 0.5, `${kind}: ${failSlowest}`);
  assert.ok((passStddev === undefined) !== (failStddev === undefined), `${kind}: stddev line`);
  if (passStddev !== undefined) assert.ok(passStddev <= 0.1, `${kind}: ${passStddev}`);
  if (failStddev !== undefined) assert.ok(failStddev > 0.1, `${kind}: ${failStddev}`);
  const failed = failRate !== undefined || failSlowest !== undefined ||
    failStddev !== undefined || lines.includes("FAIL: too many errors");
  assert.equal(lines.at(-2), failed ? "FAIL" : "PASS", `${kind}: the verdict line`);
  assert.equal(code, failed ? 1 : 0, `${kind}: the exit code`);
}

/**
 * check perf's puts are paced, so how many fit in its minute (and the revision it compacts at) is
 * the machine's; the two lines must still name one revision.
 */
function perfRevision(text: string): string {
  const revs = [...text.matchAll(/^Compact(?:ing|ed) with revision (\d+)$/gm)].map((m) => m[1]);
  assert.ok(revs.length === 0 || (revs.length === 2 && revs[0] === revs[1]), text);
  return text.replace(/^(Compact(?:ing|ed) with revision) \d+$/gm, "$1 <REV>");
}

async function run(kind: MemberKind, steps: string[][]): Promise<string[]> {
  const member = await startMember({ kind });
  try {
    const out: string[] = [];
    for (const args of steps) {
      const r = await runCtl(CTL_OF[kind], [`--endpoints=${member.endpoint}`, ...args], {
        timeoutMs: 180_000,
      });
      // check perf exits 1 exactly when it printed FAIL; its verdicts are held to its numbers
      // here, since the comparison below normalises them away.
      const ran = args[1] === "perf" && (r.code === 0 || r.code === 1);
      if (ran) checkPerfVerdicts(kind, r.stdout, r.code);
      const code = ran ? "<0|1>" : r.code;
      const stdout = ran ? perfRevision(normalise(r.stdout, member)) : normalise(r.stdout, member);
      out.push(
        `$ ${args.join(" ")} -> ${code}\n${stdout}${normalise(r.stderr, member)}`,
      );
    }
    return out;
  } finally {
    await member.stop();
  }
}

Deno.test({
  name: "check datascale: loads, reports memory, deletes, compacts and defragments as etcdctl's",
  ...OPTIONS,
  fn: async () => {
    assertReference();
    const steps = [
      ["check", "datascale", "--load", "nope"],
      ["put", "/etcdctl-check-datascale/x", "1"],
      ["check", "datascale"],
      ["del", "/etcdctl-check-datascale/x"],
      ["check", "datascale", "--load", "small", "--auto-compact", "--auto-defrag"],
      ["get", "/etcdctl-check-datascale/", "--prefix", "--count-only"],
      ["check", "perf", "--load", "huge"],
      ["put", "/etcdctl-check-perf/x", "1"],
      ["check", "perf"],
    ];
    const [etcd, detcd] = await Promise.all([run("etcd", steps), run("detcd", steps)]);
    assert.deepEqual(detcd, etcd);
    assert.match(etcd[4], /^bar: {2}10000 \/ 10000 {2}100\.00% <TIME>$/m);
    assert.match(etcd[4], /Compacted with revision 10004\n/);
  },
});

Deno.test({
  name: "check perf: a minute of 150 puts/s, the report's lines, cleanup as etcdctl's",
  ...OPTIONS,
  fn: async () => {
    assertReference();
    const steps = [
      ["check", "perf", "--auto-compact"],
      ["get", "/etcdctl-check-perf/", "--prefix", "--count-only"],
    ];
    const [etcd, detcd] = await Promise.all([run("etcd", steps), run("detcd", steps)]);
    assert.deepEqual(detcd, etcd);
    assert.match(etcd[0], /^bar: {2}60 \/ 60 {2}100\.00% <TIME>$/m);
  },
});
