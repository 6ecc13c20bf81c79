/**
 * Side-by-side conformance of leases: the user's guide lease chapter (租约命令) and the lease errors,
 * with the SAME real etcdctl 3.4.23 commands against a fresh real etcd 3.4.23 and a fresh detcd.
 * Lease IDs are server-assigned (member ID bits and the start time), so a step may refer to "the
 * n-th lease this member granted" as `$n`, and outputs show lease IDs as `<Ln>`. Remaining TTLs
 * are compared within one second (the two members' clocks started apart); the attached keys of
 * `timetolive --keys` and the IDs of `lease list` are compared as sets (etcd lists them in Go map
 * order).
 */

import assert from "node:assert/strict";
import {
  type CtlResult,
  type Member,
  normaliseOutput,
  requireDetcd,
  requireReference,
  runCtl,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  shellQuote,
  startMember,
} from "./harness.ts";

const reference = requireReference();
const detcd = requireDetcd();
const ignore = reference.ignore || detcd.ignore;

/** A step: etcdctl args (with `$n` lease references), a pause, or a CLI killed after a while. */
type Step = { args: string[]; timeoutMs?: number } | { sleepMs: number };

function cmd(line: string, timeoutMs?: number): Step {
  return { args: line.split(" ").filter((w) => w !== ""), timeoutMs };
}

interface Outcome {
  text: string;
  remaining: number[];
}

class Run {
  leases: string[] = [];
  constructor(readonly member: Member) {}

  async step(step: Step): Promise<Outcome | null> {
    if ("sleepMs" in step) {
      await new Promise((r) => setTimeout(r, step.sleepMs));
      return null;
    }
    const args = step.args.map((a) => a.replace(/\$(\d+)/g, (_, n) => this.leases[Number(n) - 1]));
    const raw: CtlResult = await runCtl(
      "etcdctl",
      [`--endpoints=${this.member.endpoint}`, ...args],
      {
        timeoutMs: step.timeoutMs,
      },
    );
    for (const m of raw.stdout.matchAll(/lease ([0-9a-f]+) granted with TTL\(\d+s\)$/gm)) {
      if (!this.leases.includes(m[1])) this.leases.push(m[1]);
    }
    if (args.includes("grant") && args.includes("json")) {
      const m = /"ID":(\d+)/.exec(raw.stdout);
      if (m) this.leases.push(BigInt(m[1]).toString(16));
    }
    return this.normalise(raw);
  }

  normalise(raw: CtlResult): Outcome {
    const context = {
      ports: { [this.member.clientPort]: "CLIENT_PORT", [this.member.peerPort]: "PEER_PORT" },
    };
    let text = `${normaliseOutput(raw.stdout, context)}\n--stderr--\n${
      normaliseOutput(raw.stderr, context)
    }\n--code-- ${step_code(raw)}`;
    this.leases.forEach((hex, i) => {
      text = text.replaceAll(hex, `<L${i + 1}>`);
      text = text.replaceAll(BigInt(`0x${hex}`).toString(), `<L${i + 1}>`);
    });
    const remaining: number[] = [];
    text = text.replace(/remaining\((-?\d+)s\)/g, (_, n) => {
      remaining.push(Number(n));
      return "remaining(<R>s)";
    });
    text = text.replace(/"TTL":(\d+),"granted-ttl"/g, (_, n) => {
      remaining.push(Number(n));
      return '"TTL":<R>,"granted-ttl"';
    });
    // etcd lists leases in Go map order: compare the list as a set.
    text = text.replace(
      /^(found \d+ leases\n)((?:<L\d+>\n)+)/m,
      (_, head: string, ids: string) => head + ids.trimEnd().split("\n").sort().join("\n") + "\n",
    );
    text = text.replace(
      /attached keys\(\[([^\]]*)\]\)/g,
      (_, keys: string) => `attached keys([${keys.split(" ").sort().join(" ")}])`,
    );
    return { text, remaining };
  }
}

function step_code(raw: CtlResult): number {
  return raw.code;
}

interface LeaseScript {
  name: string;
  steps: Step[];
  serverArgs?: string[];
}

const scripts: LeaseScript[] = [
  {
    name: "guide: 添加租约 (grant, put --lease, get within the TTL, get after it)",
    steps: [
      cmd("lease grant 3"),
      cmd("put --lease=$1 foo bar"),
      cmd("get foo"),
      { sleepMs: 6000 },
      cmd("get foo"),
      cmd("get foo -w json"),
      cmd("lease timetolive $1"),
      cmd("lease list"),
    ],
  },
  {
    name: "guide: 查看租约 (list, timetolive --keys)",
    steps: [
      cmd("lease grant 50"),
      cmd("put --lease=$1 name cuiliang"),
      cmd("lease list"),
      cmd("lease timetolive --keys $1"),
      cmd("lease timetolive $1"),
      cmd("get name -w json"),
      cmd("lease list -w json"),
    ],
  },
  {
    name: "guide: 租约续约 (keep-alive, keep-alive --once)",
    steps: [
      cmd("lease grant 60"),
      cmd("put --lease=$1 name cuiliang"),
      cmd("lease keep-alive --once $1"),
      cmd("lease keep-alive --once -w json $1"),
      cmd("lease keep-alive $1", 2500),
      cmd("lease timetolive --keys $1"),
    ],
  },
  {
    name: "guide: 删除租约 (revoke deletes the keys, then already expired)",
    steps: [
      cmd("lease grant 600"),
      cmd("put --lease=$1 foo bar"),
      cmd("lease timetolive --keys $1"),
      cmd("lease revoke $1"),
      cmd("lease timetolive --keys $1"),
      cmd("get foo"),
      cmd("get foo -w json"),
    ],
  },
  {
    name: "guide: 多key同一租约, deleting the key keeps the lease, revoking removes both",
    steps: [
      cmd("lease grant 60"),
      cmd("put --lease=$1 foo1 bar1"),
      cmd("put --lease=$1 foo2 bar2"),
      cmd("lease timetolive --keys $1"),
      cmd("lease grant 60"),
      cmd("--lease=$2 put zoo1 val1"),
      cmd("put --lease=$2 zoo1 val1"),
      cmd("del zoo1"),
      cmd("lease timetolive --keys $2"),
      cmd("lease keep-alive --once $2"),
      cmd("put --lease=$2 zoo1 val1"),
      cmd("lease revoke $2"),
      cmd("get zoo1"),
      cmd("put --lease=$1 foo1 other"),
      cmd("put foo2 nolease"),
      cmd("lease timetolive --keys $1"),
      cmd("get --prefix foo -w json"),
      cmd("lease revoke $1 -w json"),
      cmd("get --prefix foo"),
    ],
  },
  {
    name: "errors: unknown leases, too large TTL, minimum TTL",
    steps: [
      cmd("put k v --lease=1234"),
      cmd("lease revoke 1234"),
      cmd("lease timetolive 1234"),
      cmd("lease timetolive --keys 1234 -w json"),
      cmd("lease keep-alive --once 1234"),
      cmd("lease grant 9000000001"),
      cmd("lease grant 9000000000"),
      cmd("lease grant 1"),
      cmd("lease grant 0"),
      cmd("lease grant -w json 5"),
      cmd("lease list"),
      cmd("lease revoke zz"),
    ],
  },
];

Deno.test({
  name: "leases: the guide's lease chapter, etcdctl against etcd and detcd side by side",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    for (const script of scripts) {
      await t.step(script.name, async () => {
        const start = (kind: "etcd" | "detcd") =>
          startMember({
            kind,
            name: SHARED_MEMBER_NAME,
            advertisePeerUrl: SHARED_PEER_URL,
            extraArgs: script.serverArgs,
          });
        const members = await Promise.all([start("etcd"), start("detcd")]);
        try {
          const runs = members.map((m) => new Run(m));
          for (const step of script.steps) {
            const [a, b] = await Promise.all(runs.map((r) => r.step(step)));
            if (a === null || b === null) continue;
            const shown = "args" in step ? shellQuote(step.args) : "";
            assert.equal(b.text, a.text, `etcdctl ${shown}: detcd (actual) vs etcd (expected)`);
            assert.equal(a.remaining.length, b.remaining.length);
            a.remaining.forEach((r, i) =>
              assert.ok(
                Math.abs(r - b.remaining[i]) <= 1,
                `etcdctl ${shown}: remaining ${b.remaining[i]} vs etcd's ${r}`,
              )
            );
          }
        } finally {
          await Promise.all(members.map((m) => m.stop()));
        }
      });
    }
  },
});
