/**
 * Test harness for real processes: starts etcd 3.4.23 or detcd members on loopback, runs etcdctl or
 * detcdctl against them, normalises what legitimately differs between two runs, and compares the
 * outputs of the same script side by side. Everything here is built and proven against real etcd
 * first, so that a difference seen against detcd is detcd's, not the harness's.
 *
 * Processes never outlive a test: every spawned child is tracked, tests stop members in `finally`,
 * and an `unload` handler SIGKILLs whatever is left if a test forgets.
 */

import { MEMBER_V8_FLAG_ARG } from "../server/v8_flags.ts";
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  MemberListRequestSchema,
  MemberListResponseSchema,
  PutRequestSchema,
  PutResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
  StatusRequestSchema,
  StatusResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type {
  MemberListResponse,
  PutResponse,
  RangeResponse,
  StatusResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { encodeGrpcFrame, GRPC_PREFIX_BYTES, grpcFrameLength } from "../core/wire/mod.ts";

/** Repository root, so that `deno run -A server/main.ts` works whatever the test's cwd is. */
export const REPO_ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Which server implementation a member runs. */
export type MemberKind = "etcd" | "detcd";

/** Which CLI runs a command: the reference etcdctl 3.4.23 or ours. */
export type CtlKind = "etcdctl" | "detcdctl";

/**
 * Log messages that mean "the client port serves now". etcd 3.4 prints the first one with its
 * default logger (capnslog) and only the second one with `--logger=zap`; detcd prints the first.
 */
export const READY_MARKERS: readonly string[] = [
  "ready to serve client requests",
  "serving client traffic insecurely",
];

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Environment probes

/** Finds an executable on PATH (or `path`) the way a shell would; undefined when absent. */
export function which(name: string, path: string = Deno.env.get("PATH") ?? ""): string | undefined {
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const candidate = `${dir}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Outcome of probing for something a test needs; `ignore` feeds `Deno.test({ ignore })`. */
export interface Requirement {
  ignore: boolean;
  reason: string;
}

function envFlag(name: string): boolean {
  const value = Deno.env.get(name);
  return value === "1" || value === "true";
}

/**
 * DETCD_TEST_TLS=1 runs every member on TLS, client and peer ports alike (etcd and detcd with the
 * same certificates), and every CLI with `ETCDCTL_CACERT`: the conformance suites run once in
 * this mode in CI, so each scenario is also checked over TLS. Peers verify each other's client
 * certificates; clients present none (with --client-cert-auth the certificate's CN would become
 * the user and change what the auth scenarios expect).
 */
export const TEST_TLS: boolean = envFlag("DETCD_TEST_TLS");

let testTlsDir: string | null = null;

/** The certificates of TLS mode (made once per test process with openssl): ca, member. */
export function testTlsFiles(): { dir: string; ca: string; cert: string; key: string } {
  if (testTlsDir === null) {
    const dir = Deno.makeTempDirSync({ prefix: "detcd-test-tls-" });
    const run = (args: string[]) => {
      const out = new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).outputSync();
      if (!out.success) {
        throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
      }
    };
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "3",
      "-subj",
      "/CN=detcd-test-ca",
    ]);
    run(["req", ...ec, "-keyout", "member.key", "-out", "member.csr", "-subj", "/CN=member"]);
    Deno.writeTextFileSync(
      `${dir}/member.ext`,
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    run([
      "x509",
      "-req",
      "-in",
      "member.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "member.crt",
      "-days",
      "3",
      "-extfile",
      "member.ext",
    ]);
    testTlsDir = dir;
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // already gone
      }
    });
  }
  const dir = testTlsDir;
  return { dir, ca: `${dir}/ca.crt`, cert: `${dir}/member.crt`, key: `${dir}/member.key` };
}

/** The environment a CLI started outside runCtl needs in TLS mode (ETCDCTL_CACERT). */
export function tlsCtlEnv(): Record<string, string> {
  return TEST_TLS ? { ETCDCTL_CACERT: testTlsFiles().ca } : {};
}

/** The server flags of TLS mode. */
function testTlsArgs(): string[] {
  const f = testTlsFiles();
  return [
    "--cert-file",
    f.cert,
    "--key-file",
    f.key,
    "--peer-cert-file",
    f.cert,
    "--peer-key-file",
    f.key,
    "--peer-trusted-ca-file",
    f.ca,
    "--peer-client-cert-auth",
  ];
}

/** The reference every comparison is made against: etcd and etcdctl of exactly this version. */
export const REFERENCE_VERSION = "3.4.23";

/**
 * True when DETCD_REQUIRE_REFERENCE is `1` or `true`: tests that need the reference then run and
 * fail instead of being ignored when it is missing or of another version (CI sets it).
 */
export function referenceRequired(): boolean {
  return envFlag("DETCD_REQUIRE_REFERENCE");
}

/**
 * The version in the first line of `etcd --version` ("etcd Version: 3.4.23") or of
 * `etcdctl version` ("etcdctl version: 3.4.23"); undefined when the first line is not of that
 * form (another program, or a release that prints something else).
 */
export function parseReferenceVersion(
  program: "etcd" | "etcdctl",
  output: string,
): string | undefined {
  const firstLine = output.split("\n")[0].trim();
  const label = program === "etcd" ? "etcd Version" : "etcdctl version";
  const match = new RegExp(`^${label}: (\\S+)$`).exec(firstLine);
  return match?.[1];
}

/**
 * What is wrong with the reference binaries found on `path` (default: PATH): missing, or not
 * exactly {@link REFERENCE_VERSION}. Undefined when both are there and of the right version.
 */
export function referenceProblem(path?: string): string | undefined {
  const missing = ["etcd", "etcdctl"].filter((name) => which(name, path) === undefined);
  if (missing.length > 0) {
    return `reference ${missing.join(" and ")} not on PATH ` +
      "(apt-get install -y etcd-server etcd-client)";
  }
  const wrong: string[] = [];
  for (const [program, args] of [["etcd", ["--version"]], ["etcdctl", ["version"]]] as const) {
    const binary = which(program, path)!;
    let output = "";
    try {
      const result = new Deno.Command(binary, {
        args: [...args],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        clearEnv: true,
        env: { PATH: Deno.env.get("PATH") ?? "" },
      }).outputSync();
      output = textDecoder.decode(result.stdout);
    } catch (error) {
      output = `${error}`;
    }
    const version = parseReferenceVersion(program, output);
    if (version !== REFERENCE_VERSION) {
      wrong.push(
        `${binary} is ${
          version === undefined ? `not a recognisable ${program}` : `version ${version}`
        } (first line: ${JSON.stringify(output.split("\n")[0])}), not ${REFERENCE_VERSION}`,
      );
    }
  }
  return wrong.length > 0 ? `wrong reference: ${wrong.join("; ")}` : undefined;
}

/** The answer of {@link referenceProblem} for PATH, computed once per test process. */
let cachedReferenceProblem: { problem: string | undefined } | undefined;

function pathReferenceProblem(): string | undefined {
  cachedReferenceProblem ??= { problem: referenceProblem() };
  return cachedReferenceProblem.problem;
}

/**
 * Decides whether tests that need the reference etcd/etcdctl run. When they are missing or not
 * exactly {@link REFERENCE_VERSION}, tests are ignored (and say why) unless
 * DETCD_REQUIRE_REFERENCE is set (`1` or `true`), in which case they run and fail at once through
 * {@link assertReference}: CI must never pass by silently skipping or by comparing with the wrong
 * reference. `path` replaces PATH (for the harness's own tests).
 */
export function requireReference(path?: string): Requirement {
  const problem = path === undefined ? pathReferenceProblem() : referenceProblem(path);
  if (problem === undefined) return { ignore: false, reason: "" };
  if (referenceRequired()) return { ignore: false, reason: problem };
  console.warn(`ignoring tests that need the reference: ${problem}`);
  return { ignore: true, reason: problem };
}

/**
 * Throws a clear error inside a test when the reference binaries are missing or of another version
 * than {@link REFERENCE_VERSION}. `path` replaces PATH (for the harness's own tests).
 */
export function assertReference(path?: string): void {
  const problem = path === undefined ? pathReferenceProblem() : referenceProblem(path);
  if (problem !== undefined) {
    throw new Error(
      `${problem}; DETCD_REQUIRE_REFERENCE is set or the test was run anyway: ` +
        `install etcd-server and etcd-client (etcd ${REFERENCE_VERSION})`,
    );
  }
}

/**
 * Decides whether tests that need detcd's server entry point run. While server/main.ts does not
 * exist yet they are ignored, except in CI (CI=true or DETCD_REQUIRE_DETCD=1) where that is a
 * failure.
 */
export function requireDetcd(): Requirement {
  let present = false;
  try {
    present = Deno.statSync(`${REPO_ROOT}/server/main.ts`).isFile;
  } catch {
    present = false;
  }
  if (present) return { ignore: false, reason: "" };
  const reason = "server/main.ts does not exist yet";
  if (envFlag("CI") || envFlag("DETCD_REQUIRE_DETCD")) return { ignore: false, reason };
  console.warn(`ignoring tests that need detcd: ${reason}`);
  return { ignore: true, reason };
}

// ---------------------------------------------------------------------------------------------
// Ports and processes

/** Ports handed out by {@link freePort} in this process, never handed out twice. */
const handedOutPorts = new Set<number>();

/** The kernel's ephemeral port range (outgoing connections take their source ports from it). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim()
      .split(/\s+/).map(Number);
    if (low > 0 && high >= low) return [low, high];
  } catch {
    // not Linux, or no /proc: assume the IANA range
  }
  return [49152, 65535];
}

/**
 * A currently free loopback port for a member to listen on. Chosen at random below the kernel's
 * ephemeral range: a port the kernel hands out for port 0 is also what the next outgoing connection
 * may take as its source port, and with hundreds of client connections in a parallel test run that
 * happened (EADDRINUSE at startup). The port is checked free and released, so another process can
 * still take it before the member binds it; {@link startMember} retries with new ports then.
 */
export function freePort(): number {
  const [ephemeralLow] = ephemeralRange();
  const high = Math.min(ephemeralLow - 1, 32_767);
  const low = Math.max(10_000, high - 20_000);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOutPorts.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch {
      continue;
    }
    handedOutPorts.add(port);
    return port;
  }
  throw new Error(`no free port found in ${low}..${high}`);
}

/** The environment for child processes: ours minus ETCD_* and ETCDCTL_*, which would change them. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (key.startsWith("ETCD_") || key.startsWith("ETCDCTL_")) continue;
    env[key] = value;
  }
  env.NO_COLOR = "1";
  if (TEST_TLS) env.ETCDCTL_CACERT = testTlsFiles().ca;
  return { ...env, ...extra };
}

const liveChildren = new Set<Deno.ChildProcess>();

globalThis.addEventListener("unload", () => {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/**
 * V8 flags a member runs with: those of `deno task start` (server/v8_flags.ts; V8's memory reducer
 * stays on: docs/benchmarks.md, "Slabs instead of an ArrayBuffer per write").
 * DETCD_SERVER_V8_FLAGS (a comma-separated V8 flag list) replaces them, to measure others; they
 * must be given at start (set later, V8 ignores them).
 */
const serverV8Flags = Deno.env.get("DETCD_SERVER_V8_FLAGS");
export const SERVER_V8_FLAGS: readonly string[] = serverV8Flags !== undefined
  ? (serverV8Flags === "" ? [] : [`--v8-flags=${serverV8Flags}`])
  : [MEMBER_V8_FLAG_ARG];

/** The command line that runs a member of the given kind (program and arguments before flags). */
export function serverCommand(kind: MemberKind): [string, string[]] {
  if (kind === "etcd") return ["etcd", []];
  return [Deno.execPath(), ["run", "-A", ...SERVER_V8_FLAGS, `${REPO_ROOT}/server/main.ts`]];
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Options of {@link startMember}; every port defaults to a fresh free one. */
export interface StartMemberOptions {
  kind: MemberKind;
  /** `--name`; default "default" like etcd. */
  name?: string;
  /** Data directory; default a fresh `data` directory inside a new temp dir. */
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  /**
   * The peer URL this member advertises (and lists in `--initial-cluster`). Defaults to its listen
   * peer URL. Member and cluster IDs are hashed from it, so two members that must show the same IDs
   * advertise the same string; a single member never dials its own advertised URL.
   */
  advertisePeerUrl?: string;
  /**
   * `--initial-cluster`; default `<name>=<advertisePeerUrl>` (a cluster of one). Members of a
   * multi-member cluster pass the whole list (see tests/cluster_harness.ts).
   */
  initialCluster?: string;
  /** `--initial-cluster-state`; omitted (etcd's default "new") when absent. */
  initialClusterState?: "new" | "existing";
  /** `--initial-cluster-token`; omitted (etcd's default "etcd-cluster") when absent. */
  initialClusterToken?: string;
  /** More etcd flags, e.g. `["--max-txn-ops", "3"]`. */
  extraArgs?: string[];
  /** The peer URLs' scheme (default http; https needs the --peer-cert-file flags in extraArgs). */
  peerScheme?: "http" | "https";
  /** Bound on startup; default 30 s for etcd, 60 s for detcd. */
  readyTimeoutMs?: number;
  /** Extra environment for the server process. */
  env?: Record<string, string>;
  /** Restarts with new ports when a port we chose was taken before the bind (default 3). */
  portRetries?: number;
  /** Scheme of the client URL: `https` needs --cert-file/--key-file in extraArgs. */
  clientScheme?: "http" | "https";
}

/** A running (or killed, restartable) member and what a test needs to reach it. */
export interface Member {
  readonly kind: MemberKind;
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  /** `http://127.0.0.1:<clientPort>` (`https://` for a TLS member). */
  readonly clientUrl: string;
  /** `127.0.0.1:<clientPort>`, what etcdctl's `--endpoints` takes and prints. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** File that receives the server's stdout and stderr (all incarnations, appended). */
  readonly logPath: string;
  /** The full argument list the server was started with (for error messages). */
  readonly args: readonly string[];
  /** Process id of the current incarnation. */
  pid(): number;
  /** True while the current incarnation runs. */
  running(): boolean;
  /** Sends a signal (SIGKILL for crash tests) and waits for the process to exit. */
  kill(signal?: Deno.Signal): Promise<void>;
  /** Sends a signal without waiting for anything (SIGSTOP and SIGCONT pause and resume it). */
  signal(signal: Deno.Signal): void;
  /** Starts the member again on the same data dir and ports and waits until it serves. */
  restart(): Promise<void>;
  /** Terminates (SIGTERM, then SIGKILL after 5 s) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** The last `maxBytes` of the log, for error messages. */
  logTail(maxBytes?: number): string;
}

class ProcessMember implements Member {
  readonly clientUrl: string;
  readonly endpoint: string;
  readonly logPath: string;
  private child: Deno.ChildProcess | undefined;
  private exited: Promise<Deno.CommandStatus> | undefined;
  /** The exit status of the current incarnation once it has exited (crashed, killed or quit). */
  private exitStatus: Deno.CommandStatus | undefined;
  private pumps: Promise<void>[] = [];
  private tail = "";
  private logFile: Deno.FsFile;
  private stopped = false;

  constructor(
    readonly kind: MemberKind,
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    readonly args: readonly string[],
    private readonly tempDir: string,
    private readonly readyTimeoutMs: number,
    private readonly env: Record<string, string>,
    scheme: "http" | "https" = "http",
  ) {
    this.clientUrl = `${scheme}://127.0.0.1:${clientPort}`;
    this.endpoint = `127.0.0.1:${clientPort}`;
    this.logPath = `${tempDir}/${name}.log`;
    this.logFile = Deno.openSync(this.logPath, { create: true, append: true });
  }

  pid(): number {
    if (this.child === undefined) throw new Error("member not started");
    return this.child.pid;
  }

  running(): boolean {
    return this.child !== undefined && this.exitStatus === undefined;
  }

  logTail(maxBytes = 4000): string {
    return this.tail.length <= maxBytes ? this.tail : this.tail.slice(this.tail.length - maxBytes);
  }

  /** Spawns the process and waits for a readiness marker, an exit, or the timeout. */
  async spawn(): Promise<void> {
    if (this.child !== undefined) throw new Error("member already running");
    const [program, prefix] = serverCommand(this.kind);
    const child = new Deno.Command(program, {
      args: [...prefix, ...this.args],
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv(this.env),
    }).spawn();
    liveChildren.add(child);
    this.child = child;
    this.exitStatus = undefined;
    this.exited = child.status.then((status) => {
      if (this.child === child) this.exitStatus = status;
      return status;
    });
    let sawReady = false;
    let wake: () => void = () => {};
    let recent = "";
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        this.logFile.writeSync(chunk);
        const text = decoder.decode(chunk, { stream: true });
        this.tail += text;
        if (this.tail.length > 256 * 1024) this.tail = this.tail.slice(-128 * 1024);
        if (sawReady) continue;
        recent = (recent + text).slice(-64 * 1024);
        if (READY_MARKERS.some((marker) => recent.includes(marker))) {
          sawReady = true;
          wake();
        }
        recent = recent.slice(-200);
      }
    };
    this.pumps = [pump(child.stdout), pump(child.stderr)];

    const deadline = Date.now() + this.readyTimeoutMs;
    let exitStatus: Deno.CommandStatus | undefined;
    this.exited.then((status) => {
      exitStatus = status;
      wake();
    });
    while (!sawReady && exitStatus === undefined && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, Math.min(1000, Math.max(1, deadline - Date.now())));
      });
      if (!sawReady && exitStatus === undefined && (await this.healthProbe())) sawReady = true;
    }
    wake = () => {};
    if (sawReady) return;
    const why = exitStatus !== undefined
      ? `exited with code ${exitStatus.code}${exitStatus.signal ? ` (${exitStatus.signal})` : ""}`
      : `not ready after ${this.readyTimeoutMs} ms`;
    await this.kill("SIGKILL");
    throw new Error(
      `${this.kind} member ${this.name} ${why}\n` +
        `command: ${[program, ...prefix, ...this.args].join(" ")}\n` +
        `log (${this.logPath}), last lines:\n${this.logTail(3000)}`,
    );
  }

  /** A fallback readiness check for servers that do not print etcd's readiness line. */
  private async healthProbe(): Promise<boolean> {
    if (which("etcdctl") === undefined) return false;
    try {
      const result = await runCtl("etcdctl", [
        `--endpoints=${this.endpoint}`,
        "--dial-timeout=1s",
        "--command-timeout=2s",
        "endpoint",
        "health",
      ], { timeoutMs: 5000 });
      return result.code === 0;
    } catch {
      return false;
    }
  }

  signal(signal: Deno.Signal): void {
    this.child?.kill(signal);
  }

  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
    await this.reap(child);
  }

  private async reap(child: Deno.ChildProcess): Promise<void> {
    await this.exited;
    await Promise.all(this.pumps);
    liveChildren.delete(child);
    this.child = undefined;
    this.exited = undefined;
    this.exitStatus = undefined;
    this.pumps = [];
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error("member was stopped; its data dir is gone");
    if (this.child !== undefined) await this.kill("SIGTERM");
    await this.spawn();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const child = this.child;
    if (child !== undefined) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      const exited = this.exited;
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
      }, 5000);
      try {
        await exited;
      } finally {
        clearTimeout(timer);
      }
      await this.reap(child);
    }
    this.logFile.close();
    if (envFlag("DETCD_KEEP_TMP")) {
      console.warn(`kept ${this.tempDir} (DETCD_KEEP_TMP=1)`);
    } else if (this.tempDir !== "") {
      await Deno.remove(this.tempDir, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Starts one member with etcd's own flags (the same for etcd and detcd) and waits until it serves.
 * Its stdout and stderr go to a log file in its temp dir; on a failed start the error carries the
 * tail of that log.
 */
export async function startMember(options: StartMemberOptions): Promise<Member> {
  const name = options.name ?? "default";
  const tempDir = await Deno.makeTempDir({ prefix: `detcd-${options.kind}-` });
  const dataDir = options.dataDir ?? `${tempDir}/data`;
  const clientPort = options.clientPort ?? freePort();
  const peerPort = options.peerPort ?? freePort();
  const defaultScheme = TEST_TLS ? "https" : "http";
  const clientScheme = options.clientScheme ?? defaultScheme;
  const clientUrl = `${clientScheme}://127.0.0.1:${clientPort}`;
  const listenPeerUrl = `${options.peerScheme ?? defaultScheme}://127.0.0.1:${peerPort}`;
  const advertisePeerUrl = options.advertisePeerUrl ?? listenPeerUrl;
  const args = [
    "--name",
    name,
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    clientUrl,
    "--advertise-client-urls",
    clientUrl,
    "--listen-peer-urls",
    listenPeerUrl,
    "--initial-advertise-peer-urls",
    advertisePeerUrl,
    "--initial-cluster",
    options.initialCluster ?? `${name}=${advertisePeerUrl}`,
    ...(options.initialClusterState
      ? ["--initial-cluster-state", options.initialClusterState]
      : []),
    ...(options.initialClusterToken
      ? ["--initial-cluster-token", options.initialClusterToken]
      : []),
    ...(TEST_TLS ? testTlsArgs() : []),
    ...(options.extraArgs ?? []),
  ];
  const member = new ProcessMember(
    options.kind,
    name,
    clientPort,
    peerPort,
    dataDir,
    args,
    tempDir,
    options.readyTimeoutMs ?? (options.kind === "etcd" ? 30_000 : 60_000),
    options.env ?? {},
    clientScheme,
  );
  try {
    await member.spawn();
  } catch (error) {
    await member.stop();
    const portsOurs = options.clientPort === undefined && options.peerPort === undefined;
    if (portsOurs && (options.portRetries ?? 3) > 0 && /address already in use/i.test(`${error}`)) {
      // Another process took a port between freePort() and the member's bind: new ports.
      return startMember({ ...options, portRetries: (options.portRetries ?? 3) - 1 });
    }
    throw error;
  }
  return member;
}

// ---------------------------------------------------------------------------------------------
// CLI

/** What a CLI invocation printed and returned. `stdout` is text; see {@link CtlResult.stdoutBytes}. */
export interface CtlResult {
  /** stdout as UTF-8, or `<binary N bytes: hex>` when it is not valid UTF-8 (protobuf output). */
  stdout: string;
  stdoutBytes: Uint8Array;
  stderr: string;
  code: number;
  /** True when the harness killed the CLI at its timeout (it hung): never an expected outcome. */
  timedOut: boolean;
}

/** Options of {@link runCtl}. */
export interface RunCtlOptions {
  /** Bytes or text written to the CLI's stdin, then closed; stdin is empty when absent. */
  stdin?: string | Uint8Array;
  env?: Record<string, string>;
  /** The CLI is SIGKILLed after this long (default 30 s) and the result says so. */
  timeoutMs?: number;
  /** Working directory (default: the repository root), e.g. for relative file names. */
  cwd?: string;
}

export function ctlCommand(kind: CtlKind): [string, string[]] {
  if (kind === "etcdctl") return ["etcdctl", []];
  // The repo's deno.json named explicitly, so that detcdctl runs from any working directory.
  return [Deno.execPath(), [
    "run",
    "-A",
    `--config=${REPO_ROOT}/deno.json`,
    `${REPO_ROOT}/cli/main.ts`,
  ]];
}

/** Shows stdout as text when it is UTF-8, else as a hex dump that still compares byte for byte. */
function stdoutText(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `<binary ${bytes.length} bytes: ${hex}>`;
  }
}

/**
 * Runs etcdctl or detcdctl with the given arguments (no shell), with ETCDCTL_* removed from the
 * inherited environment so only what the test passes applies.
 */
export async function runCtl(
  kind: CtlKind,
  args: readonly string[],
  options: RunCtlOptions = {},
): Promise<CtlResult> {
  const [program, prefix] = ctlCommand(kind);
  const child = new Deno.Command(program, {
    args: [...prefix, ...args],
    cwd: options.cwd ?? REPO_ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(options.env),
  }).spawn();
  liveChildren.add(child);
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  }, timeoutMs);
  try {
    const writer = child.stdin.getWriter();
    const input = options.stdin;
    if (input !== undefined) {
      await writer.write(typeof input === "string" ? textEncoder.encode(input) : input).catch(
        () => {},
      );
    }
    await writer.close().catch(() => {});
    const output = await child.output();
    const stderr = textDecoder.decode(output.stderr) +
      (timedOut ? `\n<killed by harness after ${timeoutMs} ms>` : "");
    return {
      stdout: stdoutText(output.stdout),
      stdoutBytes: output.stdout,
      stderr,
      code: output.code,
      timedOut,
    };
  } finally {
    clearTimeout(timer);
    liveChildren.delete(child);
  }
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/** What a normaliser needs to know about one run: the ports of the member it talked to. */
export interface NormaliseContext {
  /** Port number → stable label, e.g. `{ 41235: "CLIENT_PORT" }`. */
  ports: Record<number, string>;
}

const GO_DURATION = String.raw`(?:\d+h)?(?:\d+m(?!s))?\d+(?:\.\d+)?(?:ns|µs|μs|us|ms|s)`;

/**
 * The few substitutions that make two correct runs byte-identical, and nothing else:
 *
 * - `"ts":...` of JSON log lines (both the ISO string and the float-seconds forms) → `<TS>`
 * - the random client id in etcdctl's warn lines (`endpoint://client-<uuid>/`) → `<UUID>`
 * - health-check durations: `took = <d>`, `"took":"<d>"`, `"Took" : <d>` and the TOOK cell of the
 *   `endpoint health -w table` output → `<TOOK>` (that table is reduced to its cells, because the
 *   column width follows the duration's length)
 * - the backend size in `endpoint status` (`"dbSize":N`, `"dbSizeInUse":N`, `"DBSize" : N`, the
 *   DB SIZE column of the table and the fourth field of the simple output) → `<DB_SIZE>`: etcd's
 *   own values change with bbolt's commit timing (the control test in harness_test.ts saw 20480
 *   and 24576 bytes, 16384 and 20480 in use, for two identical fresh members); in the table the
 *   cell becomes `<SIZE>` and keeps its width, so the table's alignment is still compared
 * - `:<port>` for exactly the ports in the context → `:<LABEL>`
 *
 * Member IDs, cluster IDs, revisions, raft terms and indexes are NOT normalised.
 */
export function normaliseOutput(text: string, context: NormaliseContext): string {
  let out = text;
  out = out.replace(/"ts":"[^"]*"/g, '"ts":"<TS>"');
  out = out.replace(/"ts":\d+(?:\.\d+)?(?:e[+-]?\d+)?/g, '"ts":<TS>');
  out = out.replace(
    /client-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
    "client-<UUID>",
  );
  out = out.replace(new RegExp(`took = ${GO_DURATION}`, "g"), "took = <TOOK>");
  out = out.replace(new RegExp(`"took":"${GO_DURATION}"`, "g"), '"took":"<TOOK>"');
  out = out.replace(new RegExp(`"Took" : ${GO_DURATION}`, "g"), '"Took" : <TOOK>');
  out = out.replace(/"dbSize":\d+/g, '"dbSize":<DB_SIZE>');
  out = out.replace(/"dbSizeInUse":\d+/g, '"dbSizeInUse":<DB_SIZE>');
  out = out.replace(/^"DBSize" : \d+$/gm, '"DBSize" : <DB_SIZE>');
  out = out.replace(
    new RegExp(`^([^\\s,]+, [0-9a-f]{1,16}, [^,\\s]+, )${HUMAN_BYTES}(, (?:true|false), )`, "gm"),
    "$1<DB_SIZE>$2",
  );
  out = normaliseStatusTable(out);
  out = normaliseHealthTable(out);
  for (const [port, label] of Object.entries(context.ports)) {
    out = out.replace(new RegExp(`:${port}(?!\\d)`, "g"), `:<${label}>`);
  }
  return out;
}

/**
 * Real etcd answers a request as soon as its entry is applied but advances its applied index a
 * moment later (etcdserver's apply loop triggers the waiting request, then calls
 * setAppliedIndex). An `endpoint status` right after a request, or after the Authenticate that
 * `--user` proposes, can therefore print a raft applied index one below the raft index. This
 * rewrites exactly that lag in etcd's simple and JSON `endpoint status` output so that a compared
 * script does not depend on it; apply it to etcd's side only, so a lagging detcd still shows.
 */
export function settleEtcdAppliedIndex(text: string): string {
  const lagging = (index: string, applied: string) => BigInt(applied) + 1n === BigInt(index);
  return text.replace(
    /^([^\s,]+, [0-9a-f]{1,16}, [^,\s]+, [^,]+, (?:true|false), (?:true|false), \d+, )(\d+), (\d+),/gm,
    (whole, head: string, index: string, applied: string) =>
      lagging(index, applied) ? `${head}${index}, ${index},` : whole,
  ).replace(
    /("raftIndex":(\d+),"raftTerm":\d+,"raftAppliedIndex":)(\d+)/g,
    (whole, head: string, index: string, applied: string) =>
      lagging(index, applied) ? `${head}${index}` : whole,
  );
}

/** go-humanize's `Bytes()` output, as etcdctl prints the backend size ("20 kB", "1.0 MB"). */
const HUMAN_BYTES = String.raw`\d+(?:\.\d+)? [kMGTPE]?B`;

/** Replaces the DB SIZE cells of an `endpoint status -w table`, keeping each cell's width. */
function normaliseStatusTable(text: string): string {
  const lines = text.split("\n");
  const header = lines.findIndex((line) => /^\|\s*ENDPOINT\s*\|.*\|\s*DB SIZE\s*\|/.test(line));
  if (header < 0) return text;
  const column = lines[header].split("|").findIndex((cell) => cell.trim() === "DB SIZE");
  const size = new RegExp(`^\\s*${HUMAN_BYTES} $`);
  return lines.map((line, index) => {
    if (index <= header || !line.startsWith("|")) return line;
    const cells = line.split("|");
    const cell = cells[column];
    if (cell === undefined || !size.test(cell)) return line;
    cells[column] = `${"<SIZE>".padStart(cell.length - 1)} `;
    return cells.join("|");
  }).join("\n");
}

/** Reduces an `endpoint health -w table` to trimmed cells with the TOOK cell replaced. */
function normaliseHealthTable(text: string): string {
  const lines = text.split("\n");
  const header = lines.findIndex((line) =>
    /^\|\s*ENDPOINT\s*\|\s*HEALTH\s*\|\s*TOOK\s*\|/.test(line)
  );
  if (header < 0) return text;
  const tookRegex = new RegExp(`^${GO_DURATION}$`);
  return lines.map((line, index) => {
    if (index < header - 1) return line;
    if (/^\+[-+]*\+$/.test(line)) return "+---+";
    if (!line.startsWith("|")) return line;
    const cells = line.split("|").slice(1, -1).map((cell) => cell.trim());
    if (index !== header && cells.length >= 3 && tookRegex.test(cells[2])) cells[2] = "<TOOK>";
    return `| ${cells.join(" | ")} |`;
  }).join("\n");
}

// ---------------------------------------------------------------------------------------------
// Scripts: the same etcdctl commands against two members, compared

/** One CLI invocation of a script; `--endpoints=<member>` is prepended by the runner. */
export interface ScriptStep {
  args: string[];
  stdin?: string;
}

/** What one step printed, raw and normalised. */
export interface StepOutcome {
  args: string[];
  raw: CtlResult;
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs every step in order against one member and normalises each result for that member. */
export async function runScript(
  ctl: CtlKind,
  member: Member,
  steps: readonly ScriptStep[],
): Promise<StepOutcome[]> {
  const context: NormaliseContext = {
    ports: { [member.clientPort]: "CLIENT_PORT", [member.peerPort]: "PEER_PORT" },
  };
  const outcomes: StepOutcome[] = [];
  for (const step of steps) {
    const raw = await runCtl(ctl, [`--endpoints=${member.endpoint}`, ...step.args], {
      stdin: step.stdin,
    });
    outcomes.push({
      args: step.args,
      raw,
      stdout: normaliseOutput(
        member.kind === "etcd" ? settleEtcdAppliedIndex(raw.stdout) : raw.stdout,
        context,
      ),
      stderr: normaliseOutput(raw.stderr, context),
      code: raw.code,
    });
  }
  return outcomes;
}

/** Quotes arguments for display so a reader can paste the command into a shell. */
export function shellQuote(args: readonly string[]): string {
  return args.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)
    .join(" ");
}

function showBlock(text: string): string {
  const shown = text.length > 3000 ? `${text.slice(0, 3000)}\n... (${text.length} chars)` : text;
  return shown.split("\n").map((line) => `    │${line}`).join("\n");
}

function firstDifferentLine(a: string, b: string): number {
  const la = a.split("\n");
  const lb = b.split("\n");
  for (let i = 0; i < Math.max(la.length, lb.length); i++) if (la[i] !== lb[i]) return i + 1;
  return 0;
}

/**
 * Compares two runs of the same script. Returns undefined when every step printed the same
 * (normalised) stdout and stderr and returned the same exit code; otherwise a report that shows the
 * first differing command with both outputs side by side, and lists the later differing steps.
 */
export function compareRuns(
  labels: [string, string],
  a: readonly StepOutcome[],
  b: readonly StepOutcome[],
): string | undefined {
  const differing: number[] = [];
  const hung = (outcome: StepOutcome) => outcome.raw.timedOut;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (
      a[i].stdout !== b[i].stdout || a[i].stderr !== b[i].stderr || a[i].code !== b[i].code ||
      hung(a[i]) || hung(b[i])
    ) {
      differing.push(i);
    }
  }
  if (differing.length === 0 && a.length === b.length) return undefined;
  if (differing.length === 0) return `runs have different lengths: ${a.length} vs ${b.length}`;
  const i = differing[0];
  const [la, lb] = labels;
  const parts = [
    `step ${i + 1} of ${a.length} differs: etcdctl ${shellQuote(a[i].args)}`,
  ];
  for (const stream of ["stdout", "stderr"] as const) {
    if (a[i][stream] === b[i][stream]) continue;
    parts.push(
      `  ${stream} differs at line ${firstDifferentLine(a[i][stream], b[i][stream])}:`,
      `  ${la}:`,
      showBlock(a[i][stream]),
      `  ${lb}:`,
      showBlock(b[i][stream]),
    );
  }
  if (a[i].code !== b[i].code) parts.push(`  exit code: ${la} ${a[i].code}, ${lb} ${b[i].code}`);
  for (const [label, outcome] of [[la, a[i]], [lb, b[i]]] as const) {
    if (hung(outcome)) parts.push(`  ${label} hung: killed by the harness at its timeout`);
  }
  if (differing.length > 1) {
    parts.push(`  later differing steps: ${differing.slice(1).map((d) => d + 1).join(", ")}`);
  }
  return parts.join("\n");
}

/**
 * The peer URL both members of a side-by-side comparison advertise. etcd hashes member and cluster
 * IDs from the advertised peer URLs and the cluster token, so advertising the same string (while
 * each listens on its own free peer port) makes equal IDs the expected outcome; a single member
 * never dials it.
 */
export const SHARED_PEER_URL = "http://127.0.0.1:2380";

/** The member name both sides of a comparison use (it shows in `member list`). */
export const SHARED_MEMBER_NAME = "etcd1";

/** A script for {@link compareScript}: CLI steps plus the server flags both members get. */
export interface Script {
  name: string;
  steps: ScriptStep[];
  /** Extra server flags for both members, e.g. `["--max-txn-ops", "3"]`. */
  serverArgs?: string[];
}

/** Result of {@link compareScript}: the report is undefined when both sides matched. */
export interface Comparison {
  report: string | undefined;
  outcomes: [StepOutcome[], StepOutcome[]];
}

/**
 * Starts a fresh member of each kind (own free ports, own data dir, same name and advertised peer
 * URL), runs the script's steps against both in lockstep, stops both, and compares.
 */
export async function compareScript(
  script: Script,
  kinds: [MemberKind, MemberKind],
  ctl: CtlKind = "etcdctl",
): Promise<Comparison> {
  const options = (kind: MemberKind): StartMemberOptions => ({
    kind,
    name: SHARED_MEMBER_NAME,
    advertisePeerUrl: SHARED_PEER_URL,
    extraArgs: script.serverArgs,
  });
  const started = await Promise.allSettled(kinds.map((kind) => startMember(options(kind))));
  const members = started.flatMap((result) => result.status === "fulfilled" ? [result.value] : []);
  try {
    for (const result of started) if (result.status === "rejected") throw result.reason;
    const [a, b] = members;
    const outcomes: [StepOutcome[], StepOutcome[]] = [[], []];
    for (const step of script.steps) {
      const [oa, ob] = await Promise.all([runScript(ctl, a, [step]), runScript(ctl, b, [step])]);
      outcomes[0].push(...oa);
      outcomes[1].push(...ob);
    }
    const labels: [string, string] = kinds[0] === kinds[1]
      ? [`${kinds[0]} #1`, `${kinds[1]} #2`]
      : [kinds[0], kinds[1]];
    let report = compareRuns(labels, outcomes[0], outcomes[1]);
    if (report !== undefined) {
      report += `\n  server logs: ${a.logPath} (${labels[0]}), ${b.logPath} (${labels[1]})` +
        (envFlag("DETCD_KEEP_TMP") ? "" : " (removed; set DETCD_KEEP_TMP=1 to keep them)");
      for (const [label, member] of [[labels[0], a], [labels[1], b]] as const) {
        report += `\n  last lines of the ${label} log:\n${showBlock(member.logTail(1500))}`;
      }
    }
    return { report, outcomes };
  } finally {
    await Promise.all(members.map((member) => member.stop()));
  }
}

// ---------------------------------------------------------------------------------------------
// A minimal gRPC client for load and verification (unary KV calls over node:http2)

/** gRPC status returned by a server, with etcd's message. */
export class GrpcStatusError extends Error {
  constructor(readonly code: number, message: string) {
    super(`grpc status ${code}: ${message}`);
    this.name = "GrpcStatusError";
  }
}

/**
 * Just enough of etcd's KV API over gRPC to drive concurrent load and read the result back, without
 * a process per request. One HTTP/2 connection, many concurrent streams. Test tooling only.
 */
export class KvClient {
  private session: http2.ClientHttp2Session;
  private closed = false;

  constructor(readonly endpoint: string) {
    this.session = TEST_TLS
      ? http2.connect(`https://${endpoint}`, { ca: Deno.readTextFileSync(testTlsFiles().ca) })
      : http2.connect(`http://${endpoint}`);
    this.session.on("error", () => {
      // surfaced per call
    });
  }

  /** Puts key=value; resolves with the response (header.revision is the write's revision). */
  put(key: string, value: string): Promise<PutResponse> {
    return this.unary("/etcdserverpb.KV/Put", PutRequestSchema, PutResponseSchema, {
      key: textEncoder.encode(key),
      value: textEncoder.encode(value),
    });
  }

  /** Ranges over [key, rangeEnd) (a single key when rangeEnd is absent), linearizable. */
  range(key: string, rangeEnd?: string): Promise<RangeResponse> {
    return this.unary("/etcdserverpb.KV/Range", RangeRequestSchema, RangeResponseSchema, {
      key: textEncoder.encode(key),
      rangeEnd: rangeEnd === undefined ? new Uint8Array() : textEncoder.encode(rangeEnd),
    });
  }

  /** Maintenance.Status of the member this client talks to. */
  status(): Promise<StatusResponse> {
    return this.call(
      "/etcdserverpb.Maintenance/Status",
      StatusRequestSchema,
      StatusResponseSchema,
      {},
    );
  }

  /** Cluster.MemberList, as the member this client talks to sees it. */
  memberList(): Promise<MemberListResponse> {
    return this.call(
      "/etcdserverpb.Cluster/MemberList",
      MemberListRequestSchema,
      MemberListResponseSchema,
      {},
    );
  }

  /** Closes the connection; in-flight calls fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.session.destroy();
  }

  private unary<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    init: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    return this.call(path, input, output, init);
  }

  /** Any unary etcd RPC by its gRPC path, e.g. "/etcdserverpb.Maintenance/Status". */
  call<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    init: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    const frame = encodeGrpcFrame(toBinary(input, create(input, init)));
    return new Promise((resolve, reject) => {
      let request: http2.ClientHttp2Stream;
      try {
        request = this.session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          "te": "trailers",
        });
      } catch (error) {
        reject(error);
        return;
      }
      const chunks: Uint8Array[] = [];
      let status: number | undefined;
      let message = "";
      const takeStatus = (headers: http2.IncomingHttpHeaders) => {
        const code = headers["grpc-status"];
        if (code === undefined) return;
        status = Number(code);
        const raw = headers["grpc-message"];
        message = decodeURIComponent(String(raw ?? ""));
      };
      request.on("response", takeStatus);
      request.on("trailers", takeStatus);
      request.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      request.on("error", reject);
      request.on("close", () => {
        if (status === undefined) {
          reject(new Error(`${path}: stream closed without a gRPC status`));
          return;
        }
        if (status !== 0) {
          reject(new GrpcStatusError(status, message));
          return;
        }
        const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
        const all = new Uint8Array(total);
        let offset = 0;
        for (const chunk of chunks) {
          all.set(chunk, offset);
          offset += chunk.length;
        }
        if (all.length < GRPC_PREFIX_BYTES) {
          reject(new Error(`${path}: OK status without a message`));
          return;
        }
        const length = grpcFrameLength(all);
        try {
          resolve(fromBinary(output, all.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + length)));
        } catch (error) {
          reject(error);
        }
      });
      request.end(frame);
    });
  }
}

/**
 * Starts a fresh etcd and a fresh detcd sharing name and advertised peer URL (so cluster and member
 * IDs, revisions and terms agree), runs `body` on both at once, stops both; returns [etcd, detcd].
 */
export async function sideBySide<T>(
  body: (member: Member, kind: MemberKind) => Promise<T>,
): Promise<T[]> {
  assertReference();
  const start = (kind: MemberKind) =>
    startMember({ kind, name: SHARED_MEMBER_NAME, advertisePeerUrl: SHARED_PEER_URL });
  const started = await Promise.allSettled([start("etcd"), start("detcd")]);
  const members = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  try {
    for (const r of started) if (r.status === "rejected") throw r.reason;
    return await Promise.all([body(members[0], "etcd"), body(members[1], "detcd")]);
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}
