/**
 * Replays the protocol scenarios in testdata/*.txt. Each file is a list of commands; the lines
 * starting with "> " after a command are its expected output. Run with DETCD_REWRITE=1 to rewrite
 * the expected output from the current behaviour (then review the diff).
 *
 * The output of a command starts with every message the network carried while it ran, in
 * delivery order and in etcd-io/raft's notation (see describe.ts), e.g.
 * `> 1->2 MsgApp Term:2 Log:1/3 Commit:3 Entries:[2/4 EntryNormal "a"]`; a message lost to a
 * partition or a crashed member is shown as `> dropped: 1->2 ...`. So the file shows the protocol
 * flow of the scenario, and the test fails when the messages differ from it.
 *
 * Commands:
 *   cluster 1 2 3 [prevote] [checkquorum] [seed=N]   new bootstrapped cluster, Ready handled
 *   tick <id|all> [xN]         campaign <id>         deliver
 *   run N                      N times: tick every member once, then deliver everything
 *                              (a round that repeats the one before is counted, not printed)
 *   propose <id> "data"        read <id> "ctx"       transfer <id> <to>
 *   partition 1 | 2 3          heal                  crash <id>      restart <id>
 *   add-node <via> <id>        add-learner <via> <id>                remove-node <via> <id>
 *   compact <id>               status                applied         reads <id>
 */

import { assertEquals } from "../testing.ts";
import { ctxString, Network, type TestOptions } from "./_testing.ts";
import { describeMessage } from "./describe.ts";
import {
  ConfChangeType,
  type Message,
  type NodeId,
  ProposalDroppedError,
  StateType,
} from "./types.ts";

const stateNames: Record<StateType, string> = {
  [StateType.Follower]: "follower",
  [StateType.Candidate]: "candidate",
  [StateType.Leader]: "leader",
  [StateType.PreCandidate]: "pre-candidate",
};

function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) out.push(m[1] ?? m[2]);
  return out;
}

function id(s: string): NodeId {
  return BigInt(s);
}

/**
 * A Network that writes down each message it carries (or loses), for the trace output. It
 * delivers exactly as Network does: the record is taken around `deliverRound`, through the
 * network's `drop` hook, which sees every message that passed the partition and crash checks.
 */
class RecordingNetwork extends Network {
  readonly #lines: string[] = [];

  /** A new cluster as Network.bootstrap makes it, recording. */
  static bootstrapRecording(ids: NodeId[], options: TestOptions): RecordingNetwork {
    const net = new RecordingNetwork(options);
    for (const nid of ids) {
      net.addNode(nid).raw.bootstrap(ids.map((p) => ({ id: p, context: new Uint8Array(0) })));
    }
    return net;
  }

  override deliverRound(): number {
    this.flushReadies();
    const batch = [...this.inFlight];
    const passed = new Set<Message>();
    const drop = this.drop;
    this.drop = (m) => {
      const dropped = drop !== null && drop(m);
      if (!dropped) passed.add(m);
      return dropped;
    };
    try {
      return super.deliverRound();
    } finally {
      this.drop = drop;
      for (const m of batch) {
        const text = describeMessage(m);
        this.#lines.push(...(passed.has(m) ? text : `dropped: ${text}`).split("\n"));
      }
    }
  }

  /** The messages recorded since the last call. */
  takeLines(): string[] {
    return this.#lines.splice(0);
  }
}

class TraceRunner {
  #net: RecordingNetwork | null = null;

  get #n(): RecordingNetwork {
    if (this.#net === null) throw new Error("no cluster: start with `cluster ...`");
    return this.#net;
  }

  /** Runs one command; returns its output: the messages carried, then what the command prints. */
  run(line: string): string[] {
    const out = this.#run(line);
    return this.#net === null ? out : [...this.#net.takeLines(), ...out];
  }

  #run(line: string): string[] {
    const [cmd, ...args] = tokenize(line);
    const out: string[] = [];
    switch (cmd) {
      case "cluster": {
        const ids = args.filter((a) => /^\d+$/.test(a)).map(id);
        const seed = args.find((a) => a.startsWith("seed="));
        this.#net = RecordingNetwork.bootstrapRecording(ids, {
          preVote: args.includes("prevote"),
          checkQuorum: args.includes("checkquorum"),
          seed: seed === undefined ? 1 : Number(seed.slice(5)),
        });
        this.#net.deliver();
        break;
      }
      case "tick": {
        const times = args[1]?.startsWith("x") ? Number(args[1].slice(1)) : 1;
        if (args[0] === "all") this.#n.tickAll(times);
        else this.#n.tick(id(args[0]), times);
        break;
      }
      case "run": {
        // A round whose messages are those of the round before (steady heartbeats) is counted,
        // not printed again, so that the rounds where something changes stand out.
        let previous: string[] = [];
        let repeats = 0;
        const flushRepeats = () => {
          if (repeats > 0) out.push(`... the round above again, ${repeats} more time(s)`);
          repeats = 0;
        };
        for (let i = 0; i < Number(args[0]); i++) {
          this.#n.tickAll(1);
          this.#n.deliver();
          const round = this.#n.takeLines();
          if (round.length > 0 && round.join("\n") === previous.join("\n")) {
            repeats++;
            continue;
          }
          flushRepeats();
          out.push(...round);
          previous = round;
        }
        flushRepeats();
        break;
      }
      case "campaign":
        this.#n.node(id(args[0])).raw.campaign();
        break;
      case "deliver":
        this.#n.deliver();
        break;
      case "propose":
        try {
          this.#n.propose(id(args[0]), args[1]);
        } catch (e) {
          if (!(e instanceof ProposalDroppedError)) throw e;
          out.push("dropped");
        }
        break;
      case "read":
        this.#n.readIndex(id(args[0]), args[1]);
        break;
      case "reads":
        for (const rs of this.#n.node(id(args[0])).readStates) {
          out.push(`${ctxString(rs)} index=${rs.index}`);
        }
        break;
      case "transfer":
        this.#n.node(id(args[0])).raw.transferLeader(id(args[1]));
        break;
      case "partition": {
        const groups: NodeId[][] = [[]];
        for (const a of args) {
          if (a === "|") groups.push([]);
          else groups[groups.length - 1].push(id(a));
        }
        this.#n.partition(...groups);
        break;
      }
      case "heal":
        this.#n.heal();
        break;
      case "crash":
        this.#n.crash(id(args[0]));
        break;
      case "restart":
        this.#n.restart(id(args[0]));
        break;
      case "add-node":
      case "add-learner":
      case "remove-node": {
        const target = id(args[1]);
        const type = cmd === "add-node"
          ? ConfChangeType.AddNode
          : cmd === "add-learner"
          ? ConfChangeType.AddLearnerNode
          : ConfChangeType.RemoveNode;
        try {
          this.#n.proposeConfChange(id(args[0]), {
            type,
            nodeId: target,
            context: new Uint8Array(),
          });
        } catch (e) {
          if (!(e instanceof ProposalDroppedError)) throw e;
          out.push("dropped");
          break;
        }
        if (cmd !== "remove-node" && !this.#n.nodes.has(target)) this.#n.addNode(target);
        break;
      }
      case "compact":
        this.#n.node(id(args[0])).compact();
        break;
      case "status":
        for (const nid of this.#n.ids()) {
          if (this.#n.isDown(nid)) {
            out.push(`${nid}: down`);
            continue;
          }
          const node = this.#n.node(nid);
          const st = node.raw.status();
          const cs = node.confState;
          const learners = cs.learners.length > 0 ? ` learners=${cs.learners.join(",")}` : "";
          out.push(
            `${nid}: ${stateNames[st.state]} term=${st.term} lead=${st.lead} commit=${st.commit} ` +
              `applied=${st.applied} last=${node.storage.lastIndex()} ` +
              `voters=${cs.voters.join(",")}${learners}`,
          );
        }
        break;
      case "applied":
        for (const nid of this.#n.ids()) {
          out.push(`${nid}: ${JSON.stringify(this.#n.node(nid).applied)}`);
        }
        break;
      default:
        throw new Error(`unknown trace command: ${line}`);
    }
    return out;
  }
}

/** Replays one trace; returns the file text as the current behaviour would write it. */
function replay(text: string): string {
  const runner = new TraceRunner();
  const out: string[] = [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    if (line.startsWith("> ")) continue;
    out.push(line);
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    for (const o of runner.run(trimmed)) out.push(`> ${o}`);
  }
  return out.join("\n") + "\n";
}

const dir = new URL("./testdata/", import.meta.url);
const rewrite = Deno.env.get("DETCD_REWRITE") === "1";

for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
  if (!entry.name.endsWith(".txt")) continue;
  Deno.test(`trace ${entry.name}`, () => {
    const file = new URL(entry.name, dir);
    const text = Deno.readTextFileSync(file);
    const actual = replay(text);
    if (rewrite) {
      if (actual !== text) Deno.writeTextFileSync(file, actual);
      return;
    }
    assertEquals(actual, text, `${entry.name} differs; rerun with DETCD_REWRITE=1 to update`);
  });
}
