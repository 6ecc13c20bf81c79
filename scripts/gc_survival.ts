/**
 * What a request leaves to V8's collector: one detcd member started with `--trace-gc-nvp`, ebench's
 * load on it, and per request the bytes allocated, the bytes that survived a young-generation
 * collection (scavenge) and the bytes promoted to the old generation, with the scavenges' pauses.
 * A request's objects should die young: what survives is copied by every scavenge and sets its
 * pause, which is much of the tail latency (docs/benchmarks.md, "What each call left behind").
 *
 * Usage: deno task bench:gc [--op put|range|rangeser|txn|watch|keepalive] [--clients 50]
 *   [--conns 10] [--total 40000] [--v8-flags FLAGS] [-- member flags]
 *
 * Requests are ebench's: for `watch`, one put reaches `--clients` watchers (per request = per put).
 */
import { MEMBER_V8_FLAGS } from "../server/v8_flags.ts";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../tests/harness.ts";
import { ebenchPath, runEbench } from "./_ebench.ts";

const { values: o, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    op: { type: "string", default: "put" },
    clients: { type: "string", default: "50" },
    conns: { type: "string", default: "10" },
    total: { type: "string", default: "40000" },
    "v8-flags": { type: "string", default: "" },
  },
});

const port = 24379;
const dataDir = await Deno.makeTempDir({ prefix: "detcd-gc-" });
// A member's own flags first; --v8-flags adds (or, for the same flag, overrides) them.
const v8 = ["--trace-gc-nvp", ...MEMBER_V8_FLAGS, ...(o["v8-flags"] ? [o["v8-flags"]] : [])].join(
  ",",
);
const member = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    `--v8-flags=${v8}`,
    `${REPO_ROOT}/server/main.ts`,
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    `http://127.0.0.1:${port}`,
    "--advertise-client-urls",
    `http://127.0.0.1:${port}`,
    "--listen-peer-urls",
    `http://127.0.0.1:${port + 1}`,
    "--initial-advertise-peer-urls",
    `http://127.0.0.1:${port + 1}`,
    "--initial-cluster",
    `default=http://127.0.0.1:${port + 1}`,
    ...positionals,
  ],
  stdout: "piped",
  stderr: "null",
}).spawn();

// V8 prints one line per collection on stdout; the member's own log goes to stderr.
interface Collection {
  kind: string;
  pause: number;
  allocated: number;
  survived: number;
  promoted: number;
}
const collections: Collection[] = [];
const reading = (async () => {
  let rest = "";
  for await (const chunk of member.stdout.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let nl;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      const field = (name: string) => Number(new RegExp(`"${name}":([0-9.]+)`).exec(line)?.[1]);
      const kind = /"gc":"([a-z]+)"/.exec(line)?.[1];
      if (kind === undefined) continue;
      collections.push({
        kind,
        pause: field("pause"),
        allocated: field("allocated"),
        survived: field("new_space_survived"),
        promoted: field("promoted"),
      });
    }
  }
})();

try {
  const ebench = await ebenchPath();
  const endpoint = `127.0.0.1:${port}`;
  const base = ["-keys", "1000"];
  const run = (args: string[]) => runEbench(ebench, endpoint, [...base, ...args], "detcd");
  for (let i = 0; i < 50; i++) {
    const up = await run(["-op", "put", "-total", "1", "-clients", "1"]).catch(() => null);
    if (up !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  // The same warm-up as `deno task bench` (V8 compiles the hot paths), then the measured run.
  await run(["-op", o.op === "watch" ? "put" : o.op, "-total", "5000"]);
  const before = collections.length;
  const result = await run([
    "-op",
    o.op,
    "-clients",
    o.clients,
    "-conns",
    o.conns,
    "-total",
    o.total,
  ]);
  await new Promise((r) => setTimeout(r, 300));
  const measured = collections.slice(before);
  const scavenges = measured.filter((c) => c.kind === "s");
  const requests = Number(o.total);
  const sum = (k: keyof Collection) => scavenges.reduce((n, c) => n + (c[k] as number), 0);
  const pauses = scavenges.map((c) => c.pause).sort((a, b) => a - b);
  console.log(
    `${o.op}, ${o.clients} clients: ${Math.round(result.qps)}/s, p99 ${result.p99_ms} ms` +
      (o.op === "watch" ? " (events)" : ""),
  );
  console.log(
    `per request: allocated ${Math.round(sum("allocated") / requests)} B, survived a scavenge ` +
      `${Math.round(sum("survived") / requests)} B, promoted ${
        Math.round(sum("promoted") / requests)
      } B`,
  );
  console.log(
    `${scavenges.length} scavenges, pause median ${pauses[pauses.length >> 1]?.toFixed(2)} ms, ` +
      `max ${pauses.at(-1)?.toFixed(2)} ms; ${
        measured.length - scavenges.length
      } other collections`,
  );
} finally {
  member.kill("SIGINT");
  await member.status;
  await reading;
  await Deno.remove(dataDir, { recursive: true });
}
