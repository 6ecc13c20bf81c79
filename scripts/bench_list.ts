/**
 * `deno task bench:list`: paginated lists, detcd against etcd 3.4.23 in one run. Each member,
 * fresh and single on loopback, gets --keys keys (default 200,000) under `/registry/pods/` (256-byte
 * values, transactions of 128 puts over gRPC), then:
 *
 * 1. a page: Range over the whole prefix with limit 500 (what a Kubernetes LIST with a limit
 *    asks), 50 times, each from the key after the last page's: median and p99 ms;
 * 2. a count: Range over the prefix with count_only (what the API server's object-count metrics
 *    ask), 20 times: median ms;
 * 3. a consistent list, as Kubernetes pages one: the first page at the current revision, each
 *    later page at that revision (the continue token's), with 20 puts to other keys between
 *    pages (the cluster keeps changing while it is listed): median and p99 ms of the later pages.
 *
 * Both answer `count` for the whole range. etcd walks every key of the range for it on every call;
 * detcd sums its key index's per-chunk counts (core/mvcc/sorted_records.ts).
 *
 * Usage: deno task bench:list [--keys N]
 */
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV } from "../gen/etcdserverpb/rpc_pb.ts";
import { type MemberKind, startMember } from "../tests/harness.ts";
import { loadKeys } from "./_load_keys.ts";

const { values: flags } = parseArgs({ options: { keys: { type: "string", default: "200000" } } });
const KEYS = Number(flags.keys);
const enc = new TextEncoder();
const VALUE = new Uint8Array(256).fill(0x61);
const PREFIX = enc.encode("/registry/pods/");
const END = enc.encode("/registry/pods0");

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function measure(kind: MemberKind) {
  const member = await startMember({ kind, extraArgs: ["--quota-backend-bytes", "8589934592"] });
  try {
    const kv = createClient(
      KV,
      createGrpcTransport({ baseUrl: member.clientUrl }),
    );
    const keyOf = (i: number) =>
      enc.encode(`/registry/pods/ns-${i % 100}/pod-${String(i).padStart(8, "0")}`);
    await loadKeys(kv, KEYS, keyOf, VALUE, 8);
    // Pages of 500 from the prefix on, each from the key after the last one's.
    const pages: number[] = [];
    let from = PREFIX;
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      const r = await kv.range({ key: from, rangeEnd: END, limit: 500n });
      pages.push(performance.now() - t);
      if (r.count !== BigInt(KEYS) - BigInt(i * 500)) {
        throw new Error(`${kind}: page ${i} count ${r.count}`);
      }
      const last = r.kvs[r.kvs.length - 1].key;
      from = new Uint8Array([...last, 0]);
    }
    const counts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const r = await kv.range({ key: PREFIX, rangeEnd: END, countOnly: true });
      counts.push(performance.now() - t);
      if (r.count !== BigInt(KEYS)) throw new Error(`${kind}: count ${r.count}`);
    }
    // A consistent list: later pages at the first page's revision while other keys change.
    const later: number[] = [];
    from = PREFIX;
    let revision = 0n;
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      const r = await kv.range({ key: from, rangeEnd: END, limit: 500n, revision });
      if (i > 0) later.push(performance.now() - t);
      if (r.count !== BigInt(KEYS) - BigInt(i * 500)) {
        throw new Error(`${kind}: list page ${i} count ${r.count}`);
      }
      if (i === 0) revision = r.header!.revision;
      from = new Uint8Array([...r.kvs[r.kvs.length - 1].key, 0]);
      for (let j = 0; j < 20; j++) {
        await kv.put({ key: enc.encode(`/registry/events/e-${i}-${j}`), value: VALUE });
      }
    }
    pages.sort((a, b) => a - b);
    counts.sort((a, b) => a - b);
    later.sort((a, b) => a - b);
    return {
      pageMedian: percentile(pages, 0.5),
      pageP99: percentile(pages, 0.99),
      countMedian: percentile(counts, 0.5),
      laterMedian: percentile(later, 0.5),
      laterP99: percentile(later, 0.99),
    };
  } finally {
    await member.stop();
  }
}

const etcd = await measure("etcd");
const detcd = await measure("detcd");
const row = (label: string, a: number, b: number) =>
  console.log(
    `| ${label.padEnd(40)} | ${a.toFixed(1).padStart(8)} | ${b.toFixed(1).padStart(8)} | ` +
      `${(b / a).toFixed(2).padStart(6)}x |`,
  );
console.log(`\n${KEYS} keys under /registry/pods/`);
console.log(`| ${"".padEnd(40)} |  etcd ms | detcd ms | detcd/etcd |`);
console.log(`| ${"-".repeat(40)} | -------: | -------: | ---------: |`);
row("page of 500 (limit), median", etcd.pageMedian, detcd.pageMedian);
row("page of 500 (limit), p99", etcd.pageP99, detcd.pageP99);
row("count of the prefix (count_only), median", etcd.countMedian, detcd.countMedian);
row("later page at the list's revision, median", etcd.laterMedian, detcd.laterMedian);
row("later page at the list's revision, p99", etcd.laterP99, detcd.laterP99);
