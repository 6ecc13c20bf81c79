import type { PeerTlsFlags } from "./peer/tls.ts";
import { parse as parseYaml } from "yaml";
import type { NodeConfig } from "../core/node/mod.ts";

/**
 * etcd 3.4's server configuration surface: the same flag names and defaults, Go `flag` package
 * parsing rules (`-f v`, `--f=v`, booleans only as `--f` or `--f=false`, parsing stops at the
 * first non-flag argument), `ETCD_*` environment variables for flags not given on the command
 * line, and `--config-file` (YAML, same keys), which makes etcd ignore flags and environment.
 */

type FlagKind = "string" | "bool" | "int";

/** Every flag etcd 3.4.23 accepts: name, kind, default. */
export const etcdFlags: ReadonlyArray<readonly [string, FlagKind, string]> = [
  ["name", "string", "default"],
  ["data-dir", "string", ""],
  ["wal-dir", "string", ""],
  ["snapshot-count", "int", "100000"],
  ["heartbeat-interval", "int", "100"],
  ["election-timeout", "int", "1000"],
  ["initial-election-tick-advance", "bool", "true"],
  ["listen-peer-urls", "string", "http://localhost:2380"],
  ["listen-client-urls", "string", "http://localhost:2379"],
  ["max-snapshots", "int", "5"],
  ["max-wals", "int", "5"],
  ["quota-backend-bytes", "int", "0"],
  ["backend-batch-interval", "string", ""],
  ["backend-batch-limit", "int", "0"],
  ["max-txn-ops", "int", "128"],
  ["max-request-bytes", "int", "1572864"],
  ["max-concurrent-streams", "int", "4294967295"],
  ["grpc-keepalive-min-time", "string", "5s"],
  ["grpc-keepalive-interval", "string", "2h"],
  ["grpc-keepalive-timeout", "string", "20s"],
  ["initial-advertise-peer-urls", "string", "http://localhost:2380"],
  ["initial-cluster", "string", "default=http://localhost:2380"],
  ["initial-cluster-state", "string", "new"],
  ["initial-cluster-token", "string", "etcd-cluster"],
  ["advertise-client-urls", "string", "http://localhost:2379"],
  ["discovery", "string", ""],
  ["discovery-fallback", "string", "proxy"],
  ["discovery-proxy", "string", ""],
  ["discovery-srv", "string", ""],
  ["discovery-srv-name", "string", ""],
  ["strict-reconfig-check", "bool", "true"],
  ["pre-vote", "bool", "false"],
  ["auto-compaction-retention", "string", "0"],
  ["auto-compaction-mode", "string", "periodic"],
  ["enable-v2", "bool", "false"],
  ["cert-file", "string", ""],
  ["key-file", "string", ""],
  ["client-cert-auth", "bool", "false"],
  ["client-crl-file", "string", ""],
  ["client-cert-allowed-hostname", "string", ""],
  ["trusted-ca-file", "string", ""],
  ["auto-tls", "bool", "false"],
  ["peer-cert-file", "string", ""],
  ["peer-key-file", "string", ""],
  ["peer-client-cert-auth", "bool", "false"],
  ["peer-trusted-ca-file", "string", ""],
  ["peer-cert-allowed-cn", "string", ""],
  ["peer-cert-allowed-hostname", "string", ""],
  ["peer-auto-tls", "bool", "false"],
  ["peer-crl-file", "string", ""],
  ["cipher-suites", "string", ""],
  ["cors", "string", "*"],
  ["host-whitelist", "string", "*"],
  ["auth-token", "string", "simple"],
  ["bcrypt-cost", "int", "10"],
  ["auth-token-ttl", "int", "300"],
  ["enable-pprof", "bool", "false"],
  ["metrics", "string", "basic"],
  ["listen-metrics-urls", "string", ""],
  ["logger", "string", "zap"],
  ["log-outputs", "string", "default"],
  ["log-level", "string", "info"],
  ["proxy", "string", "off"],
  ["proxy-failure-wait", "int", "5000"],
  ["proxy-refresh-interval", "int", "30000"],
  ["proxy-dial-timeout", "int", "1000"],
  ["proxy-write-timeout", "int", "5000"],
  ["proxy-read-timeout", "int", "0"],
  ["experimental-initial-corrupt-check", "bool", "false"],
  ["experimental-corrupt-check-time", "string", "0s"],
  ["experimental-enable-v2v3", "string", ""],
  ["experimental-backend-bbolt-freelist-type", "string", "array"],
  ["experimental-enable-lease-checkpoint", "bool", "false"],
  ["experimental-compaction-batch-limit", "int", "1000"],
  ["experimental-peer-skip-client-san-verification", "bool", "false"],
  ["experimental-watch-progress-notify-interval", "string", "10m"],
  ["experimental-warning-apply-duration", "string", "100ms"],
  ["force-new-cluster", "bool", "false"],
  ["debug", "bool", "false"],
  ["log-package-levels", "string", ""],
  ["config-file", "string", ""],
  // detcd's own: the web console under /ui/ on every client URL (docs/adr/0011-web-console.md).
  ["web-console", "bool", "true"],
];

/** A configuration problem; `exitCode` is what etcd exits with for it. */
export class ConfigError extends Error {
  constructor(message: string, readonly exitCode = 1, readonly showUsage = false) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The outcome of reading flags, env and config file. */
export interface ParsedConfig {
  /** Final value of every known flag, as strings (like a Go flag's String()). */
  values: Map<string, string>;
  /** Where each explicitly set value came from, for the start-up log. */
  envUsed: string[];
  envUnknown: string[];
  /** `--help` or `--version` asked for. */
  action: "run" | "help" | "version";
}

const kinds = new Map(etcdFlags.map(([name, kind]) => [name, kind]));

function checkValue(name: string, kind: FlagKind, value: string): string {
  if (kind === "int" && !/^-?\d+$/.test(value)) {
    throw new ConfigError(`invalid value "${value}" for flag -${name}: parse error`, 2, true);
  }
  if (kind === "bool") {
    const v = value.toLowerCase();
    if (["1", "t", "true"].includes(v)) return "true";
    if (["0", "f", "false"].includes(v)) return "false";
    throw new ConfigError(`invalid boolean value "${value}" for -${name}: parse error`, 2, true);
  }
  return value;
}

/** Parses a command line with Go's flag rules; returns explicitly set flags. */
export function parseArgs(
  args: string[],
): { set: Map<string, string>; action: ParsedConfig["action"] } {
  const set = new Map<string, string>();
  let action: ParsedConfig["action"] = "run";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      if (i + 1 < args.length) {
        throw new ConfigError(`'${args[i + 1]}' is not a valid flag`, 1);
      }
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      throw new ConfigError(`'${arg}' is not a valid flag`, 1);
    }
    const body = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
    if (body === "" || body.startsWith("-") || body.startsWith("=")) {
      throw new ConfigError(`bad flag syntax: ${arg}`, 2, true);
    }
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (name === "h" || name === "help") {
      action = "help";
      continue;
    }
    if (name === "version") {
      action = "version";
      continue;
    }
    const kind = kinds.get(name);
    if (!kind) throw new ConfigError(`flag provided but not defined: -${name}`, 2, true);
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else if (kind === "bool") value = "true";
    else {
      if (i + 1 >= args.length) throw new ConfigError(`flag needs an argument: -${name}`, 2, true);
      value = args[++i];
    }
    set.set(name, checkValue(name, kind, value));
  }
  return { set, action };
}

function envName(flag: string): string {
  return "ETCD_" + flag.toUpperCase().replaceAll("-", "_");
}

/** Converts a YAML config file's value to the flag's string form. */
function yamlValue(name: string, kind: FlagKind, v: unknown): string {
  if (Array.isArray(v)) return v.join(",");
  if (v === null || v === undefined) return "";
  return checkValue(name, kind, String(v));
}

/**
 * Resolves the configuration exactly as etcd does: a config file wins over everything; otherwise
 * flags, then `ETCD_*` variables for what flags left unset, then defaults.
 */
export async function resolveConfig(
  args: string[],
  env: Record<string, string>,
  readFile: (path: string) => Promise<string> = (p) => Deno.readTextFile(p),
): Promise<ParsedConfig> {
  const { set, action } = parseArgs(args);
  const values = new Map(etcdFlags.map(([name, , def]) => [name, def]));
  const envUsed: string[] = [];
  const envUnknown: string[] = [];
  const configFile = set.get("config-file") ?? env["ETCD_CONFIG_FILE"];
  if (configFile) {
    let doc: unknown;
    try {
      doc = parseYaml(await readFile(configFile));
    } catch (e) {
      throw new ConfigError(`error verifying flags, ${e instanceof Error ? e.message : e}`);
    }
    if (doc !== null && typeof doc === "object") {
      for (const [key, v] of Object.entries(doc as Record<string, unknown>)) {
        const kind = kinds.get(key);
        if (kind) values.set(key, yamlValue(key, kind, v));
      }
    }
    values.set("config-file", configFile);
    return { values, envUsed, envUnknown, action };
  }
  const known = new Set(etcdFlags.map(([name]) => envName(name)));
  for (const [key, value] of Object.entries(env).sort()) {
    if (!key.startsWith("ETCD_")) continue;
    if (!known.has(key)) {
      if (key !== "ETCD_UNSUPPORTED_ARCH") envUnknown.push(`${key}=${value}`);
      continue;
    }
    const flag = key.slice(5).toLowerCase().replaceAll("_", "-");
    if (set.has(flag)) continue;
    values.set(flag, checkValue(flag, kinds.get(flag)!, value));
    envUsed.push(`${key}=${value}`);
  }
  for (const [k, v] of set) values.set(k, v);
  return { values, envUsed, envUnknown, action };
}

/** Splits a comma-separated URL list and checks each, like etcd's URLsValue. */
export function parseUrls(flag: string, value: string): string[] {
  const urls = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new ConfigError(`invalid value "${value}" for flag -${flag}: parse ${u}: invalid URL`);
    }
    if (!["http:", "https:", "unix:", "unixs:"].includes(parsed.protocol)) {
      throw new ConfigError(
        `invalid value "${value}" for flag -${flag}: URL scheme must be http, https, unix, or unixs: ${u}`,
      );
    }
    if (parsed.pathname !== "/" && parsed.pathname !== "") {
      throw new ConfigError(
        `invalid value "${value}" for flag -${flag}: URL must not contain a path: ${u}`,
      );
    }
  }
  return urls;
}

/** The settings detcd acts on, typed: the member's own (NodeConfig) plus the server's. */
export interface ServerConfig extends NodeConfig {
  listenClientUrls: string[];
  listenPeerUrls: string[];
  logLevel: "debug" | "info" | "warn" | "error" | "panic" | "fatal";
  logger: "zap" | "capnslog";
  /** --experimental-watch-progress-notify-interval, in milliseconds. */
  watchProgressNotifyIntervalMs?: number;
  /** --auth-token: `simple`, `jwt,pub-key=…,priv-key=…,sign-method=…`, or "" for none. */
  authToken: string;
  /** --bcrypt-cost (etcd's 10 by default). */
  bcryptCost: number;
  /** --auth-token-ttl in seconds (simple tokens). */
  authTokenTtlSeconds: number;
  /** --peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth, --peer-cert-allowed-cn. */
  peerTls: PeerTlsFlags;
  /** The client port's TLS flags (etcd's ClientTLSInfo), paths as given. */
  clientTls?: ClientTlsFlags;
  /** --cipher-suites, Go names, comma-separated ("" for Go's defaults). */
  cipherSuites?: string;
  /** --auto-compaction-mode. */
  autoCompactionMode?: "periodic" | "revision";
  /** --auto-compaction-retention as given ("0": off); parsed at start as etcd does. */
  autoCompactionRetention?: string;
  /** --listen-metrics-urls: extra listeners for /metrics and /health only. */
  listenMetricsUrls?: string[];
  /** --metrics: "extensive" adds the gRPC handling-time histograms. */
  metrics?: "basic" | "extensive";
  /** --experimental-initial-corrupt-check. */
  initialCorruptCheck?: boolean;
  /** --experimental-corrupt-check-time in milliseconds (0: no periodic check). */
  corruptCheckTimeMs?: number;
  /** --web-console: serve the web console under /ui/ (default true). */
  webConsole?: boolean;
}

/** --cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --client-crl-file, --auto-tls. */
export interface ClientTlsFlags {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  clientCertAuth: boolean;
  crlFile: string;
  autoTls: boolean;
}

/** A Go duration flag ("10m", "1h30m", "500ms", "2s") in milliseconds; "0" is 0. */
export function durationMs(flag: string, value: string): number {
  const units: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    "\u00b5s": 1e-3,
    ms: 1,
    s: 1000,
    m: 60000,
    h: 3600000,
  };
  if (value === "0") return 0;
  const re = /([0-9]*\.?[0-9]+)(ns|us|\u00b5s|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m) throw new ConfigError(`invalid duration "${value}" for --${flag}`);
    total += Number(m[1]) * units[m[2]];
    at = re.lastIndex;
  }
  if (value.length === 0) throw new ConfigError(`invalid duration "" for --${flag}`);
  return total;
}

/** Typed view over resolved values, with etcd's derived defaults and validation. */
export function toServerConfig(values: Map<string, string>): ServerConfig {
  const get = (k: string) => values.get(k) ?? "";
  const int = (k: string) => Number(get(k));
  const name = get("name");
  let initialCluster = get("initial-cluster");
  const initialAdvertisePeerUrls = parseUrls(
    "initial-advertise-peer-urls",
    get("initial-advertise-peer-urls"),
  );
  if (initialCluster === "default=http://localhost:2380" && name !== "default") {
    // etcd builds the initial cluster from --name and the advertised peer URLs when it is unset.
    initialCluster = initialAdvertisePeerUrls.map((u) => `${name}=${u}`).join(",");
  }
  const state = get("initial-cluster-state");
  if (state !== "new" && state !== "existing") {
    throw new ConfigError(
      `invalid value "${state}" for flag -initial-cluster-state: valid values are "new", "existing"`,
      2,
    );
  }
  const level = get("log-level");
  if (!["debug", "info", "warn", "error", "panic", "fatal"].includes(level)) {
    throw new ConfigError(`unknown log level "${level}"`);
  }
  const logger = get("logger");
  if (logger !== "zap" && logger !== "capnslog") {
    throw new ConfigError(`unknown logger option "${logger}"`);
  }
  const heartbeatIntervalMs = int("heartbeat-interval");
  const electionTimeoutMs = int("election-timeout");
  if (5 * heartbeatIntervalMs > electionTimeoutMs) {
    throw new ConfigError(
      `--election-timeout[${electionTimeoutMs}ms] should be at least as 5 times as ` +
        `--heartbeat-interval[${heartbeatIntervalMs}ms]`,
    );
  }
  // TLS options detcd does not implement yet are refused rather than silently ignored: a
  // revocation list, host name rule or cipher restriction that is not enforced would be a false
  // sense of security.
  for (
    const flag of [
      "peer-cert-allowed-hostname",
      "client-cert-allowed-hostname",
      // Deno's node:tls ignores its `ciphers` option (measured with openssl s_client).
      "cipher-suites",
    ]
  ) {
    if (get(flag) !== "") throw new ConfigError(`--${flag} is not supported by detcd yet`);
  }
  const compactionMode = get("auto-compaction-mode");
  if (compactionMode !== "periodic" && compactionMode !== "revision") {
    throw new ConfigError(`unknown auto-compaction-mode "${compactionMode}"`);
  }
  const maxRequestBytes = int("max-request-bytes");
  if (maxRequestBytes <= 0) throw new ConfigError("--max-request-bytes must be positive");
  return {
    name,
    dataDir: get("data-dir") || `${name}.etcd`,
    walDir: get("wal-dir") || undefined,
    listenClientUrls: parseUrls("listen-client-urls", get("listen-client-urls")),
    advertiseClientUrls: parseUrls("advertise-client-urls", get("advertise-client-urls")),
    listenPeerUrls: parseUrls("listen-peer-urls", get("listen-peer-urls")),
    initialAdvertisePeerUrls,
    initialCluster,
    initialClusterToken: get("initial-cluster-token"),
    initialClusterState: state,
    snapshotCount: int("snapshot-count"),
    maxTxnOps: int("max-txn-ops"),
    quotaBackendBytes: int("quota-backend-bytes"),
    maxRequestBytes,
    heartbeatIntervalMs,
    electionTimeoutMs,
    strictReconfigCheck: get("strict-reconfig-check") !== "false",
    watchProgressNotifyIntervalMs: durationMs(
      "experimental-watch-progress-notify-interval",
      get("experimental-watch-progress-notify-interval"),
    ),
    leaseCheckpoint: get("experimental-enable-lease-checkpoint") === "true",
    logLevel: level as ServerConfig["logLevel"],
    logger,
    autoCompactionMode: compactionMode,
    autoCompactionRetention: get("auto-compaction-retention") || "0",
    initialCorruptCheck: get("experimental-initial-corrupt-check") === "true",
    listenMetricsUrls: parseUrls("listen-metrics-urls", get("listen-metrics-urls")),
    metrics: get("metrics") === "extensive" ? "extensive" : "basic",
    corruptCheckTimeMs: durationMs(
      "experimental-corrupt-check-time",
      get("experimental-corrupt-check-time"),
    ),
    webConsole: get("web-console") !== "false",
    authToken: get("auth-token"),
    bcryptCost: int("bcrypt-cost"),
    authTokenTtlSeconds: int("auth-token-ttl"),
    peerTls: {
      certFile: get("peer-cert-file"),
      keyFile: get("peer-key-file"),
      trustedCaFile: get("peer-trusted-ca-file"),
      clientCertAuth: get("peer-client-cert-auth") === "true",
      allowedCn: get("peer-cert-allowed-cn"),
      autoTls: get("peer-auto-tls") === "true",
      crlFile: get("peer-crl-file"),
    },
    clientTls: {
      certFile: get("cert-file"),
      keyFile: get("key-file"),
      trustedCaFile: get("trusted-ca-file"),
      clientCertAuth: get("client-cert-auth") === "true",
      crlFile: get("client-crl-file"),
      autoTls: get("auto-tls") === "true",
    },
    cipherSuites: get("cipher-suites"),
  };
}
