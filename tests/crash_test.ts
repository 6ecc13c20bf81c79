/**
 * Acknowledged means durable, even under kill -9 (etcd #14370, #13766): concurrent writers load a
 * member, the member is SIGKILLed mid-load, restarted on the same data dir, and every acknowledged
 * write must be there with its value and the revision it was acknowledged with, and the store's
 * revision must not have gone backwards. Runs against real etcd (which proves the test) and detcd.
 *
 * Writers are gRPC clients from the harness (one HTTP/2 connection each) plus one real etcdctl
 * `put -w json` loop, so the server sees both its own kind of client and etcd's.
 */

import assert from "node:assert/strict";
import {
  assertReference,
  KvClient,
  type Member,
  type MemberKind,
  requireDetcd,
  requireReference,
  runCtl,
  startMember,
} from "./harness.ts";

const reference = requireReference();
const detcd = requireDetcd();

const GRPC_WRITERS = 8;
const LOAD_BEFORE_KILL_MS = 2_000;
const MIN_ACKS_BEFORE_KILL = 100;
const CALL_TIMEOUT_MS = 10_000;

interface Ack {
  key: string;
  value: string;
  revision: number;
}

/** Rejects when the promise takes longer than `ms`, so no writer can hang the test. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Load of concurrent writers that records what the server acknowledged, until stopped. */
class Load {
  readonly acks: Ack[] = [];
  private stopped = false;
  private readonly done: Promise<void>[] = [];

  constructor(private readonly member: Member, private readonly round: number) {}

  start(): void {
    const nonce = crypto.randomUUID().slice(0, 8);
    for (let writer = 0; writer < GRPC_WRITERS; writer++) {
      this.done.push(this.grpcWriter(writer, nonce));
    }
    this.done.push(this.etcdctlWriter(nonce));
  }

  /** Stops issuing writes and waits until every writer has finished or failed its last call. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.done);
  }

  private async grpcWriter(writer: number, nonce: string): Promise<void> {
    const client = new KvClient(this.member.endpoint);
    try {
      for (let n = 0; !this.stopped && n < 100_000; n++) {
        const key = `crash/r${this.round}/w${writer}/${String(n).padStart(6, "0")}`;
        const value = `${nonce}-${writer}-${n}`;
        try {
          const response = await within(client.put(key, value), CALL_TIMEOUT_MS, key);
          this.acks.push({ key, value, revision: Number(response.header?.revision ?? 0) });
        } catch {
          return; // the member died under us: this write is not acknowledged
        }
      }
    } finally {
      client.close();
    }
  }

  private async etcdctlWriter(nonce: string): Promise<void> {
    for (let n = 0; !this.stopped && n < 500; n++) {
      const key = `crash/r${this.round}/ctl/${String(n).padStart(6, "0")}`;
      const value = `${nonce}-ctl-${n}`;
      const result = await runCtl("etcdctl", [
        `--endpoints=${this.member.endpoint}`,
        "--dial-timeout=2s",
        "--command-timeout=2s",
        "put",
        key,
        value,
        "-w",
        "json",
      ], { timeoutMs: CALL_TIMEOUT_MS });
      if (result.code !== 0) return;
      const revision = Number(/"revision":(\d+)/.exec(result.stdout)?.[1] ?? "0");
      this.acks.push({ key, value, revision });
    }
  }
}

/** Reads back every acknowledged write and the store revision; lists what is missing or wrong. */
async function verify(member: Member, acks: readonly Ack[]): Promise<string[]> {
  const client = new KvClient(member.endpoint);
  try {
    const range = await within(client.range("crash/", "crash0"), CALL_TIMEOUT_MS, "range");
    const stored = new Map<string, { value: string; modRevision: number }>();
    const decoder = new TextDecoder();
    for (const kv of range.kvs) {
      stored.set(decoder.decode(kv.key), {
        value: decoder.decode(kv.value),
        modRevision: Number(kv.modRevision),
      });
    }
    const problems: string[] = [];
    for (const ack of acks) {
      const found = stored.get(ack.key);
      if (found === undefined) {
        problems.push(`acknowledged ${ack.key} (revision ${ack.revision}) is missing`);
      } else if (found.value !== ack.value) {
        problems.push(`${ack.key}: value ${found.value}, acknowledged ${ack.value}`);
      } else if (found.modRevision !== ack.revision) {
        problems.push(
          `${ack.key}: mod_revision ${found.modRevision}, acknowledged at ${ack.revision}`,
        );
      }
    }
    const highest = Math.max(0, ...acks.map((ack) => ack.revision));
    const revision = Number(range.header?.revision ?? 0);
    if (revision < highest) {
      problems.push(`revision after restart ${revision} < highest acknowledged ${highest}`);
    }
    return problems;
  } finally {
    client.close();
  }
}

function describe(problems: string[]): string {
  const shown = problems.slice(0, 20).join("\n");
  return problems.length > 20 ? `${shown}\n... ${problems.length} problems` : shown;
}

function registerCrashTests(kind: MemberKind): void {
  const ignore = reference.ignore || (kind === "detcd" && detcd.ignore);

  Deno.test({
    name: `${kind}: every acknowledged write survives kill -9 under concurrent load (two rounds)`,
    ignore,
    async fn() {
      assertReference();
      if (kind === "detcd" && detcd.reason !== "") throw new Error(detcd.reason);
      const started = Date.now();
      const member = await startMember({ kind, name: "crash" });
      const allAcks: Ack[] = [];
      try {
        for (let round = 1; round <= 2; round++) {
          const load = new Load(member, round);
          load.start();
          const loadStarted = Date.now();
          while (
            Date.now() - loadStarted < LOAD_BEFORE_KILL_MS ||
            (load.acks.length < MIN_ACKS_BEFORE_KILL && Date.now() - loadStarted < 15_000)
          ) {
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          const loadMs = Date.now() - loadStarted;
          const acksAtKill = load.acks.length;
          await member.kill("SIGKILL");
          await load.stop();
          allAcks.push(...load.acks);
          console.log(
            `round ${round}: SIGKILL after ${loadMs} ms of load and ${acksAtKill} ` +
              `acknowledged writes (${load.acks.length} counting replies in flight)`,
          );
          assert.ok(
            load.acks.length >= MIN_ACKS_BEFORE_KILL,
            `round ${round}: only ${load.acks.length} writes acknowledged before the kill`,
          );
          await member.restart();
          const problems = await verify(member, allAcks);
          assert.deepEqual(
            problems,
            [],
            `round ${round}, ${allAcks.length} acknowledged writes:\n${describe(problems)}\n` +
              `log tail:\n${member.logTail(2000)}`,
          );
        }
      } finally {
        await member.stop();
      }
      assert.ok(Date.now() - started < 60_000, "crash test exceeded its 60 s budget");
    },
  });

  Deno.test({
    name: `${kind}: a write acknowledged just before kill -9 is there after restart (etcd #14370)`,
    ignore,
    async fn() {
      assertReference();
      if (kind === "detcd" && detcd.reason !== "") throw new Error(detcd.reason);
      const member = await startMember({ kind, name: "lastwrite" });
      try {
        const acks: Ack[] = [];
        for (let attempt = 0; attempt < 3; attempt++) {
          const client = new KvClient(member.endpoint);
          const key = `crash/last/${attempt}`;
          const value = crypto.randomUUID();
          let response;
          try {
            response = await within(client.put(key, value), CALL_TIMEOUT_MS, key);
            // Kill in the same tick as the reply arrives: nothing else can run on the server's
            // side of the acknowledgement before the process is gone.
            Deno.kill(member.pid(), "SIGKILL");
          } finally {
            client.close();
          }
          await member.kill("SIGKILL");
          acks.push({ key, value, revision: Number(response.header?.revision ?? 0) });
          await member.restart();
          const problems = await verify(member, acks);
          assert.deepEqual(problems, [], describe(problems));
        }
      } finally {
        await member.stop();
      }
    },
  });
}

registerCrashTests("etcd");
registerCrashTests("detcd");
