/**
 * ebench, the load generator built on etcd's own Go client (../shared/bench), as both benchmarks
 * (scripts/bench.ts, scripts/bench_cluster.ts) find, build and run it.
 */
import { REPO_ROOT } from "../tests/harness.ts";

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

/** Runs ebench against `endpoints` (comma-separated) and returns its result line. */
export async function runEbench(
  ebench: string,
  endpoints: string,
  args: string[],
  label: string,
): Promise<EbenchResult> {
  const output = await new Deno.Command(ebench, {
    args: ["-endpoints", endpoints, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  const line = stdout.split("\n").at(-1) ?? "";
  if (!output.success || !line.startsWith("{")) {
    throw new Error(
      `ebench ${args.join(" ")} against ${label} failed (exit ${output.code}):\n` +
        `${stdout}\n${new TextDecoder().decode(output.stderr)}`,
    );
  }
  return JSON.parse(line) as EbenchResult;
}

/**
 * scripts/scale_bench built into .bench/scale_bench (Debian's golang-go and
 * golang-etcd-server-dev), unless DETCD_SCALE_BENCH names a built binary.
 */
export async function scaleBenchPath(): Promise<string> {
  const given = Deno.env.get("DETCD_SCALE_BENCH");
  if (given) return given;
  const out = `${REPO_ROOT}/.bench/scale_bench`;
  const source = `${REPO_ROOT}/scripts/scale_bench/main.go`;
  // Built again when the source changed since.
  if (
    await exists(out) &&
    (await Deno.stat(out)).mtime! >= (await Deno.stat(source)).mtime!
  ) return out;
  const gopath = await Deno.makeTempDir();
  await Deno.mkdir(`${gopath}/src/scalebench`, { recursive: true });
  await Deno.copyFile(
    `${REPO_ROOT}/scripts/scale_bench/main.go`,
    `${gopath}/src/scalebench/main.go`,
  );
  await Deno.mkdir(`${REPO_ROOT}/.bench`, { recursive: true });
  const built = await new Deno.Command("go", {
    args: ["build", "-o", out, "."],
    cwd: `${gopath}/src/scalebench`,
    env: { GO111MODULE: "off", GOPATH: `${gopath}:/usr/share/gocode`, GOCACHE: `${gopath}/cache` },
  }).output();
  await Deno.remove(gopath, { recursive: true });
  if (!built.success) {
    throw new Error(`building scale_bench: ${new TextDecoder().decode(built.stderr)}`);
  }
  return out;
}
