/**
 * What the benchmarks share: ebench, the load generator built on etcd's own Go client
 * (../shared/bench), found, built and run; the Go tools in scripts/ built into .bench/ and run;
 * and a process's resident memory.
 */
import { type Member, REPO_ROOT } from "../tests/harness.ts";

/** One ebench result line (see ebench.go `result`). */
export interface EbenchResult {
  op: string;
  clients: number;
  total: number;
  errors: number;
  seconds: number;
  qps: number;
  p50_ms: number;
  p99_ms: number;
  first_error?: string;
}

/** Whether a file exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * DETCD_EBENCH (a built binary), else .bench/ebench, else it is built there with build.sh from
 * DETCD_EBENCH_SRC (default ../shared/bench; needs golang-go and golang-etcd-server-dev).
 */
export async function ebenchPath(): Promise<string> {
  const given = Deno.env.get("DETCD_EBENCH");
  if (given !== undefined) return given;
  const built = `${REPO_ROOT}/.bench/ebench`;
  if (await exists(built)) return built;
  const source = Deno.env.get("DETCD_EBENCH_SRC") ?? `${REPO_ROOT}/../shared/bench`;
  const script = `${source}/build.sh`;
  if (!await exists(script)) {
    throw new Error(
      `ebench is not built and ${script} does not exist: set DETCD_EBENCH to a built ebench or ` +
        "DETCD_EBENCH_SRC to the directory with ebench.go and build.sh",
    );
  }
  console.error(`building ebench into ${built} (needs golang-go and golang-etcd-server-dev)...`);
  await Deno.mkdir(`${REPO_ROOT}/.bench`, { recursive: true });
  const status = await new Deno.Command("bash", { args: [script, built] }).spawn().status;
  if (!status.success) throw new Error(`building ebench failed (exit ${status.code})`);
  return built;
}

/**
 * Runs one of the load tools (`program args...`) and returns the JSON object its last stdout line
 * holds; a failed run or no such line throws with the tool's output.
 */
export async function runJsonTool<T>(
  program: string,
  args: string[],
  description: string,
): Promise<T> {
  const output = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  const line = stdout.split("\n").at(-1) ?? "";
  if (!output.success || !line.startsWith("{")) {
    throw new Error(
      `${description} failed (exit ${output.code}):\n` +
        `${stdout}\n${new TextDecoder().decode(output.stderr)}`,
    );
  }
  return JSON.parse(line) as T;
}

/** Runs ebench against `endpoints` (comma-separated) and returns its result line. */
export function runEbench(
  ebench: string,
  endpoints: string,
  args: string[],
  label: string,
): Promise<EbenchResult> {
  return runJsonTool(
    ebench,
    ["-endpoints", endpoints, ...args],
    `ebench ${args.join(" ")} against ${label}`,
  );
}

/**
 * scripts/<tool>/main.go (a Go program on etcd's client 3.4) built into .bench/<tool> with Debian's
 * golang-go and golang-etcd-server-dev, again whenever the source changed since.
 */
export async function builtGoTool(
  tool: "scale_bench" | "lease_bench" | "tls_handshake",
): Promise<string> {
  const out = `${REPO_ROOT}/.bench/${tool}`;
  const source = `${REPO_ROOT}/scripts/${tool}/main.go`;
  if (
    await exists(out) &&
    (await Deno.stat(out)).mtime! >= (await Deno.stat(source)).mtime!
  ) return out;
  const gopath = await Deno.makeTempDir();
  const dir = `${gopath}/src/${tool.replace("_", "")}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(source, `${dir}/main.go`);
  await Deno.mkdir(`${REPO_ROOT}/.bench`, { recursive: true });
  const built = await new Deno.Command("go", {
    args: ["build", "-o", out, "."],
    cwd: dir,
    env: { GO111MODULE: "off", GOPATH: `${gopath}:/usr/share/gocode`, GOCACHE: `${gopath}/cache` },
  }).output();
  await Deno.remove(gopath, { recursive: true });
  if (!built.success) {
    throw new Error(`building ${tool}: ${new TextDecoder().decode(built.stderr)}`);
  }
  return out;
}

/** scripts/scale_bench, built (see builtGoTool) unless DETCD_SCALE_BENCH names a binary. */
export async function scaleBenchPath(): Promise<string> {
  return Deno.env.get("DETCD_SCALE_BENCH") || await builtGoTool("scale_bench");
}

/** scripts/lease_bench, built (see builtGoTool) unless DETCD_LEASE_BENCH names a binary. */
export async function leaseBenchPath(): Promise<string> {
  return Deno.env.get("DETCD_LEASE_BENCH") || await builtGoTool("lease_bench");
}

/** Runs lease_bench against one endpoint; its result line as ebench's (total = requests done). */
export async function runLeaseBench(
  path: string,
  endpoint: string,
  args: string[],
  label: string,
): Promise<EbenchResult> {
  const r = await runJsonTool<EbenchResult & { done: number }>(
    path,
    ["-endpoints", endpoint, ...args],
    `lease_bench ${args.join(" ")} against ${label}`,
  );
  return { ...r, total: r.done };
}

/** VmRSS of a process in MB (0 once it is gone). */
export function rssMb(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** What a scale_bench probe answers: its summary and every latency in the order taken. */
export interface ProbeResult {
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  total: number;
  lat_ms: number[];
}

/** A running scale_bench -mode probe; end() closes its stdin and returns its result. */
export function startProbe(tool: string, member: Member, seconds: number) {
  const child = new Deno.Command(tool, {
    args: ["-mode", "probe", "-raw", "-endpoints", member.endpoint, "-for", `${seconds}s`],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return {
    async end(): Promise<ProbeResult> {
      await child.stdin.close().catch(() => {});
      const out = await child.output();
      const result = JSON.parse(new TextDecoder().decode(out.stdout));
      return { ...result, lat_ms: result.lat_ms ?? [] };
    },
  };
}

/** The middle value (of an even count, the lower of the two middle ones). */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

/** p99 and max of latencies pooled from several probes (the p99 taken as the probe takes it). */
export function pooledProbe(
  results: ProbeResult[],
): { p99_ms: number; max_ms: number; total: number } {
  const all = results.flatMap((r) => r.lat_ms).sort((a, b) => a - b);
  if (all.length === 0) return { p99_ms: 0, max_ms: 0, total: 0 };
  return {
    p99_ms: all[Math.floor(all.length * 99 / 100)],
    max_ms: all[all.length - 1],
    total: all.length,
  };
}
