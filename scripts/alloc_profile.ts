/**
 * Where a running member allocates: attaches to its V8 inspector, samples allocations for a while
 * (including objects collected since, so short-lived garbage counts), and prints the functions that
 * allocated most, by their own allocations and with their callees. Garbage per request is what sets
 * how often the young generation is collected, and with it much of the tail latency
 * (docs/benchmarks.md, "Where a put's time and memory go").
 *
 * With --survivors only what outlived the young generation counts (promoted to the old one, whether
 * alive at the end or freed by a full collection since): what makes the old generation grow and
 * its collections come. With --live only what is still alive after a full collection at the end
 * (what was kept, not garbage): --survivors minus --live over the same load is the old generation's
 * garbage.
 *
 * Usage: start the member with `--inspect=127.0.0.1:9229` (before `server/main.ts`), put load on it,
 * then: deno run -A scripts/alloc_profile.ts [--port 9229] [--seconds 5] [--top 40] [--survivors | --live]
 */
import { parseArgs } from "node:util";

const { values: flags } = parseArgs({
  options: {
    port: { type: "string", default: "9229" },
    seconds: { type: "string", default: "5" },
    top: { type: "string", default: "40" },
    survivors: { type: "boolean", default: false },
    live: { type: "boolean", default: false },
  },
});

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  callFrame: CallFrame;
  selfSize: number;
  children: ProfileNode[];
}

const targets = await (await fetch(`http://127.0.0.1:${flags.port}/json/list`)).json();
const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
  socket.onopen = resolve;
  socket.onerror = reject;
});
let nextId = 0;
const waiting = new Map<number, (result: unknown) => void>();
socket.onmessage = (e) => {
  const message = JSON.parse(e.data);
  waiting.get(message.id)?.(message.result);
  waiting.delete(message.id);
};
function send<T>(method: string, params: unknown = {}): Promise<T> {
  const id = ++nextId;
  return new Promise((resolve) => {
    waiting.set(id, resolve as (result: unknown) => void);
    socket.send(JSON.stringify({ id, method, params }));
  });
}

await send("HeapProfiler.enable");
await send("HeapProfiler.startSampling", {
  samplingInterval: 1024,
  includeObjectsCollectedByMajorGC: !flags.live,
  includeObjectsCollectedByMinorGC: !flags.survivors && !flags.live,
});
await new Promise((r) => setTimeout(r, Number(flags.seconds) * 1000));
if (flags.live) await send("HeapProfiler.collectGarbage");
const { profile } = await send<{ profile: { head: ProfileNode } }>("HeapProfiler.stopSampling");
socket.close();

const label = (f: CallFrame) =>
  `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
const own = new Map<string, number>();
const withCallees = new Map<string, number>();
/** Per function, its own allocations by the chain of its three nearest callers. */
const callers = new Map<string, Map<string, number>>();
let total = 0;
/** Adds a subtree's sizes; a function counts once per path however often it recurses. */
function visit(node: ProfileNode, onPath: Set<string>, stack: string[] = []): number {
  const name = label(node.callFrame);
  total += node.selfSize;
  own.set(name, (own.get(name) ?? 0) + node.selfSize);
  if (node.selfSize > 0) {
    const chain = stack.slice(-3).reverse().join(" < ");
    const byChain = callers.get(name) ?? new Map<string, number>();
    byChain.set(chain, (byChain.get(chain) ?? 0) + node.selfSize);
    callers.set(name, byChain);
  }
  stack.push(name);
  const first = !onPath.has(name);
  if (first) onPath.add(name);
  let sum = node.selfSize;
  for (const child of node.children) sum += visit(child, onPath, stack);
  stack.pop();
  if (first) {
    onPath.delete(name);
    withCallees.set(name, (withCallees.get(name) ?? 0) + sum);
  }
  return sum;
}
visit(profile.head, new Set());

const mb = (n: number) => (n / 1048576).toFixed(2).padStart(8);
const top = Number(flags.top);
const what = flags.live
  ? "alive after a full collection"
  : flags.survivors
  ? "outlived the young generation"
  : "sampled";
console.log(`${what}: ${mb(total).trim()} MB in ${flags.seconds} s (JS line numbers)`);
console.log("\nown allocations (MB)");
for (const [name, size] of [...own].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${mb(size)}  ${name}`);
}
console.log("\nthe ten largest, by their nearest callers (MB)");
for (const [name, size] of [...own].sort((a, b) => b[1] - a[1]).slice(0, 10)) {
  console.log(`${mb(size)}  ${name}`);
  const chains = [...callers.get(name) ?? []].sort((a, b) => b[1] - a[1]).slice(0, 3);
  for (const [chain, bytes] of chains) console.log(`${mb(bytes)}      < ${chain}`);
}
console.log("\nwith callees (MB)");
for (const [name, size] of [...withCallees].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${mb(size)}  ${name}`);
}
