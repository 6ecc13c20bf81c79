/**
 * `deno task cluster`: a local 3-member cluster like etcd's Procfile: members infra1..infra3 with
 * clients on 127.0.0.1:2379/22379/32379 and peers on 2380/22380/32380, data in
 * `.detcd-cluster/infraN` (kept between runs: a second run restarts the same cluster; add
 * `--fresh` to start over). Each member's log lines are printed with its name in front, shortened
 * to `level message key=value...` (`--json` prints them as the members wrote them). Ctrl-C (or
 * SIGTERM) stops all three cleanly and waits for them.
 *
 *   deno task cluster [--fresh] [--json] [-- extra detcd flags for every member]
 *   etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table
 */

import { MEMBER_V8_FLAG_ARG } from "../server/v8_flags.ts";

const root = new URL("..", import.meta.url).pathname;
const args = [...Deno.args];
const dash = args.indexOf("--");
const extra = dash >= 0 ? args.splice(dash).slice(1) : [];
const fresh = args.includes("--fresh");
const json = args.includes("--json");
const unknown = args.filter((a) => a !== "--fresh" && a !== "--json");
if (unknown.length > 0) {
  console.error(`deno task cluster: unknown argument ${unknown[0]}`);
  console.error("usage: deno task cluster [--fresh] [--json] [-- detcd flags]");
  Deno.exit(2);
}

const dataRoot = `${Deno.cwd()}/.detcd-cluster`;
if (fresh) await Deno.remove(dataRoot, { recursive: true }).catch(() => {});
await Deno.mkdir(dataRoot, { recursive: true });

const members = [
  { name: "infra1", client: 2379, peer: 2380 },
  { name: "infra2", client: 22379, peer: 22380 },
  { name: "infra3", client: 32379, peer: 32380 },
];
const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(",");
const colors = ["\x1b[36m", "\x1b[33m", "\x1b[35m"];
const useColor = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
const encoder = new TextEncoder();

function prefix(i: number): string {
  const name = members[i].name.padEnd(6);
  return useColor ? `${colors[i]}${name}\x1b[0m | ` : `${name} | `;
}

/** `{"level":"info","msg":"x","a":1}` → `info x a=1`; anything else unchanged. */
function readable(line: string): string {
  if (json || !line.startsWith("{")) return line;
  try {
    const { level, ts: _ts, caller: _caller, msg, ...fields } = JSON.parse(line);
    const rest = Object.entries(fields).map(([k, v]) =>
      `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
    );
    return [String(level).padEnd(5), msg, ...rest].join(" ");
  } catch {
    return line;
  }
}

async function pump(i: number, stream: ReadableStream<Uint8Array>): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    const out = lines.map((l) => `${prefix(i)}${readable(l)}\n`).join("");
    await Deno.stdout.write(encoder.encode(out));
  }
  if (pending !== "") await Deno.stdout.write(encoder.encode(`${prefix(i)}${readable(pending)}\n`));
}

const children = members.map((m, i) => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MEMBER_V8_FLAG_ARG,
      `${root}server/main.ts`,
      `--name=${m.name}`,
      `--data-dir=${dataRoot}/${m.name}`,
      `--listen-client-urls=http://127.0.0.1:${m.client}`,
      `--advertise-client-urls=http://127.0.0.1:${m.client}`,
      `--listen-peer-urls=http://127.0.0.1:${m.peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${m.peer}`,
      `--initial-cluster=${initialCluster}`,
      "--initial-cluster-token=etcd-cluster-1",
      "--initial-cluster-state=new",
      ...extra,
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const pumps = Promise.all([pump(i, child.stdout), pump(i, child.stderr)]);
  return { child, done: Promise.all([child.status, pumps]).then(([s]) => s) };
});

console.log(
  `detcd cluster: ${
    members.map((m) => `${m.name} client http://127.0.0.1:${m.client}`).join(", ")
  }` +
    ` (data in ${dataRoot}; Ctrl-C stops it)`,
);

let stopping = false;
function stop(signal: Deno.Signal): void {
  if (stopping) return;
  stopping = true;
  console.log(`\ndetcd cluster: stopping (${signal})`);
  for (const { child } of children) {
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
  }
}
Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));

const statuses = await Promise.all(children.map((c) => c.done));
let code = 0;
statuses.forEach((s, i) => {
  if (!stopping || (s.code !== 0 && s.signal !== "SIGTERM")) {
    console.log(`detcd cluster: ${members[i].name} exited with code ${s.code}`);
    if (s.code !== 0) code = 1;
  }
});
if (!stopping) stop("SIGTERM");
Deno.exit(code);
