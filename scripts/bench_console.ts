/**
 * `deno task bench:console`: the web console against a large key space (issue 16). One detcd
 * member, fresh on loopback:
 *
 * 1. loads --keys keys (default 1M) under a few prefixes, Kubernetes-like
 *    (`/registry/<kind>/<namespace>/<name>`, 4 kinds x 100 namespaces, 256-byte values), in
 *    transactions of 128 puts;
 * 2. opens the tree as the console does (Console.Level over Connect, the browser's protocol, 100
 *    entries a page), root, then each level down to one namespace, then pages through that
 *    namespace's level to its end: each page's time;
 * 3. the watch panel in headless Chromium: a watch on /registry/ while 1,000 puts/s arrive for
 *    --watch-seconds (default 30): events shown per second, the panel's list size (bounded at 500)
 *    and the page's JS heap at the start and the end of the run.
 *
 * Usage: deno task bench:console [--keys N] [--watch-seconds S]
 */
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import puppeteer from "puppeteer-core";
import { KV } from "../gen/etcdserverpb/rpc_pb.ts";
import { Console } from "../gen/detcdpb/console_pb.ts";
import { startMember, which } from "../tests/harness.ts";
import { loadKeys } from "./_load_keys.ts";

const { values: flags } = parseArgs({
  options: {
    keys: { type: "string", default: "1000000" },
    "watch-seconds": { type: "string", default: "30" },
  },
});
const KEYS = Number(flags.keys);
const WATCH_SECONDS = Number(flags["watch-seconds"]);
const KINDS = ["configmaps", "pods", "secrets", "services"];
const NAMESPACES = 100;
const enc = new TextEncoder();
const VALUE = new Uint8Array(256).fill(0x61);

const member = await startMember({
  kind: "detcd",
  extraArgs: ["--quota-backend-bytes", String(8 * 1024 ** 3)],
});
const transport = createConnectTransport({ baseUrl: member.clientUrl, useBinaryFormat: true });
const kv = createClient(KV, transport);
const consoleApi = createClient(Console, transport);

function keyOf(i: number): string {
  const kind = KINDS[i % KINDS.length];
  const ns = Math.floor(i / KINDS.length) % NAMESPACES;
  return `/registry/${kind}/ns-${String(ns).padStart(3, "0")}/obj-${String(i).padStart(8, "0")}`;
}

try {
  // 1. Load.
  const started = performance.now();
  await loadKeys(kv, KEYS, (i) => enc.encode(keyOf(i)), VALUE, 16);
  const loadSec = (performance.now() - started) / 1000;
  console.log(`loaded ${KEYS} keys in ${loadSec.toFixed(1)} s (${(KEYS / loadSec).toFixed(0)}/s)`);

  // 2. The tree.
  const rows: string[] = [];
  const timed = async (label: string, prefix: string, from: Uint8Array = new Uint8Array(0)) => {
    const t = performance.now();
    const r = await consoleApi.level({
      prefix: enc.encode(prefix),
      separator: enc.encode("/"),
      from,
      limit: 100n,
    });
    const ms = performance.now() - t;
    rows.push(
      `| ${label.padEnd(34)} | ${String(r.entries.length).padStart(7)} | ${
        ms.toFixed(1).padStart(7)
      } |`,
    );
    return { next: r.next.length > 0 ? r.next : null, ms };
  };
  // Warm the connection first.
  await kv.range({ key: enc.encode("/"), limit: 1n, keysOnly: true });
  await timed("root", "");
  await timed("/", "/");
  await timed("/registry/", "/registry/");
  await timed("/registry/pods/", "/registry/pods/");
  const ns = "/registry/pods/ns-007/";
  let cursor: Uint8Array | null = new Uint8Array(0);
  const pageMs: number[] = [];
  let n = 0;
  while (cursor !== null) {
    const r = await timed(n === 0 ? `${ns} page 1` : `${ns} page ${n + 1}`, ns, cursor);
    pageMs.push(r.ms);
    cursor = r.next;
    n++;
  }
  console.log(`\n| level (100 entries a page)         | entries | ms      |`);
  console.log(`| ---------------------------------- | ------: | ------: |`);
  // Root levels, then the first, a middle and the last page of the namespace.
  const shown = [0, 1, 2, 3, 4, 4 + Math.floor(n / 2), 3 + n];
  for (const i of [...new Set(shown)]) if (rows[i]) console.log(rows[i]);
  pageMs.sort((a, b) => a - b);
  console.log(
    `\n${ns}: ${n} pages, median ${pageMs[Math.floor(n / 2)].toFixed(1)} ms, ` +
      `max ${pageMs[n - 1].toFixed(1)} ms`,
  );

  // 3. The watch panel under 1,000 events/s.
  const chromium = Deno.env.get("DETCD_CHROMIUM") ?? which("chromium");
  if (chromium === undefined) {
    console.log("no chromium: the watch panel part is skipped");
  } else {
    const browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    try {
      const tab = await browser.newPage();
      await tab.goto(`${member.clientUrl}/ui/`);
      await tab.click('nav button[data-view="watch"]');
      await tab.type("#watch-key", "/registry/");
      await tab.click("#watch-start");
      await new Promise((r) => setTimeout(r, 500));
      const cdp = await tab.createCDPSession();
      await cdp.send("Performance.enable");
      const heapMb = async () => {
        await cdp.send("HeapProfiler.collectGarbage");
        const { metrics } = await cdp.send("Performance.getMetrics");
        return metrics.find((m) => m.name === "JSHeapUsedSize")!.value / 1e6;
      };
      const heapStart = await heapMb();
      const newest = () => tab.$eval("#events li", (e) => e.textContent ?? "").catch(() => "");
      let sent = 0;
      let lastRev = 0n;
      const t0 = performance.now();
      const lags: number[] = [];
      for (let s = 0; s < WATCH_SECONDS; s++) {
        // 1,000 puts in this second, in 10 bursts of 100.
        for (let b = 0; b < 10; b++) {
          const burst = Array.from({ length: 100 }, () => {
            const key = enc.encode(`/registry/events/e-${sent++ % 5000}`);
            return kv.put({ key, value: VALUE.subarray(0, 64) });
          });
          const results = await Promise.all(burst);
          for (const r of results) {
            if (r.header!.revision > lastRev) lastRev = r.header!.revision;
          }
          const wait = t0 + s * 1000 + (b + 1) * 100 - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        const top = Number(/^(\d+) /.exec(await newest())?.[1] ?? 0);
        lags.push(Number(lastRev) - top);
      }
      const elapsed = (performance.now() - t0) / 1000;
      // The panel catches up: the newest event shown is the last put's.
      const deadline = Date.now() + 10_000;
      while (Number(/^(\d+) /.exec(await newest())?.[1] ?? 0) < Number(lastRev)) {
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const caughtUp = Number(/^(\d+) /.exec(await newest())?.[1] ?? 0) === Number(lastRev);
      const listed = await tab.$$eval("#events li", (l) => l.length);
      const heapEnd = await heapMb();
      lags.sort((a, b) => a - b);
      console.log(
        `\nwatch panel: ${sent} puts in ${elapsed.toFixed(1)} s (${
          (sent / elapsed).toFixed(0)
        }/s); ` +
          `caught up: ${caughtUp}; events listed ${listed} (bound 500); ` +
          `revisions behind at each second's end: median ${lags[lags.length >> 1]}, ` +
          `max ${lags[lags.length - 1]}; page JS heap ${heapStart.toFixed(1)} → ` +
          `${heapEnd.toFixed(1)} MB`,
      );
    } finally {
      await browser.close();
    }
  }
} finally {
  await member.stop();
}
