/**
 * `deno task chaos`: a real-process chaos run (tests/chaos/run.ts) against a local cluster of
 * detcd members, or of etcd 3.4.23 with `--target etcd`. Prints the faults as they happen and a
 * one-line summary; exits 1 when a check failed.
 *
 *   deno task chaos --seconds 60 --seed 7 [--members 3|5] [--target detcd|etcd] [--clients 8]
 *                   [--no-disk-fault] [--no-clock-skew] [--faults kill-leader,disk-full,...] [--history FILE] [--quiet]
 */
import { parseArgs } from "node:util";
import { runChaos } from "../tests/chaos/run.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "30" },
    seed: { type: "string" },
    members: { type: "string", default: "3" },
    target: { type: "string", default: "detcd" },
    clients: { type: "string", default: "8" },
    "no-disk-fault": { type: "boolean", default: false },
    "no-clock-skew": { type: "boolean", default: false },
    faults: { type: "string" },
    history: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
});

const target = values.target;
if (target !== "detcd" && target !== "etcd") {
  console.error(`--target must be detcd or etcd, not ${target}`);
  Deno.exit(2);
}
const members = Number(values.members);
if (members !== 3 && members !== 5) {
  console.error(`--members must be 3 or 5, not ${values.members}`);
  Deno.exit(2);
}
const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);

/**
 * The commit the members run, "+dirty" when server/, core/ or platform/ have uncommitted changes:
 * members restarted by a fault run the files as they are on disk at that moment, so a long run
 * must not share its checkout with ongoing work (run it from a `git worktree` at a fixed commit).
 */
async function codeVersion(): Promise<string> {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "";
  };
  const head = await git("rev-parse", "--short", "HEAD");
  if (head === "") return "unknown";
  const dirty = await git("status", "--porcelain", "--", "server", "core", "platform");
  return dirty === "" ? head : `${head}+dirty`;
}
const version = await codeVersion();
if (version.endsWith("+dirty")) {
  console.error(
    `warning: server/, core/ or platform/ have uncommitted changes; members restarted during ` +
      `the run will run whatever is on disk then`,
  );
}
const summary = await runChaos({
  seconds: Number(values.seconds),
  seed,
  members,
  target,
  clients: Number(values.clients),
  diskFault: !values["no-disk-fault"],
  clockSkew: !values["no-clock-skew"],
  faults: values.faults?.split(","),
  historyFile: values.history,
  log: values.quiet ? undefined : (line) => console.log(line),
});
for (const problem of summary.problems) console.log(`PROBLEM: ${problem}`);
console.log(`faults by kind: ${JSON.stringify(summary.faultKinds)}`);
console.log(`${summary.line} code=${version}`);
Deno.exit(summary.problems.length === 0 && summary.linearizable === "yes" ? 0 : 1);
