/**
 * What every etcdctl command shares (ctlv3/command/global.go): the global flags, reading them
 * back (with `ETCDCTL_*` environment variables filling flags not given on the command line),
 * `--debug` dumps, the output printer, the client, command timeouts, and ExitWithError.
 */

import type { Command } from "../command.ts";
import { EtcdClient, type EtcdClientError } from "../etcd_client.ts";
import type { TlsOptions } from "../grpc_client.ts";
import { caBundle, keyPairError } from "../tls_files.ts";
import type { FlagSet } from "../flags.ts";
import { type CliIo, ExitCode, ExitSignal } from "../io.ts";
import { goErrnoText } from "../go_format.ts";
import { capnsLine } from "../log.ts";
import { newPrinter, type Printer, type PrinterOutput, SimplePrinter } from "../printers/mod.ts";
import { type AuthPrinter, newAuthPrinter } from "../printers/auth.ts";

const SECOND = 1_000_000_000n;

/** Registers etcdctl's global (persistent) flags on the root command. */
export function registerGlobalFlags(root: Command): void {
  const fs = root.persistentFlags();
  fs.stringSlice("endpoints", ["127.0.0.1:2379"], "gRPC endpoints");
  fs.bool("debug", false, "enable client-side debug logging");
  fs.string(
    "write-out",
    "simple",
    "set the output format (fields, json, protobuf, simple, table)",
    "w",
  );
  fs.bool("hex", false, "print byte strings as hex encoded strings");
  fs.duration("dial-timeout", 2n * SECOND, "dial timeout for client connections");
  fs.duration(
    "command-timeout",
    5n * SECOND,
    "timeout for short running command (excluding dial timeout)",
  );
  fs.duration("keepalive-time", 2n * SECOND, "keepalive time for client connections");
  fs.duration("keepalive-timeout", 6n * SECOND, "keepalive timeout for client connections");
  fs.bool("insecure-transport", true, "disable transport security for client connections");
  fs.bool("insecure-discovery", true, "accept insecure SRV records describing cluster endpoints");
  fs.bool(
    "insecure-skip-tls-verify",
    false,
    "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
  );
  fs.string("cert", "", "identify secure client using this TLS certificate file");
  fs.string("key", "", "identify secure client using this TLS key file");
  fs.string("cacert", "", "verify certificates of TLS-enabled secure servers using this CA bundle");
  fs.string(
    "user",
    "",
    "username[:password] for authentication (prompt if password is not supplied)",
  );
  fs.string(
    "password",
    "",
    "password for authentication (if this option is used, --user option shouldn't include password)",
  );
  fs.string(
    "discovery-srv",
    "",
    "domain name to query for SRV records describing cluster endpoints",
    "d",
  );
  fs.string("discovery-srv-name", "", "service name to query when using DNS discovery");
}

/** A flag value that accepts anything and keeps nothing (etcdctl's discardValue). */
const discardValue = {
  set(_s: string): void {},
  string(): string {
    return "";
  },
  type(): string {
    return "";
  },
};

/** Settings for a client, read from the flags (clientConfig in global.go). */
export interface ClientSettings {
  endpoints: string[];
  dialTimeoutNs: bigint;
  keepaliveTimeNs: bigint;
  keepaliveTimeoutNs: bigint;
  secure: SecureSettings;
  auth?: { username: string; password: string };
}

/** TLS settings (secureCfg). */
export interface SecureSettings {
  cert: string;
  key: string;
  cacert: string;
  serverName: string;
  insecureTransport: boolean;
  insecureSkipVerify: boolean;
}

/** One run of detcdctl: its streams, the chosen printer and the clients it opened. */
export class Session {
  /** etcdctl's package-level `display`: simple until a command initialises it. */
  display: Printer;
  /** The same format's printer of user and role results (set together with `display`). */
  authDisplay: AuthPrinter;
  readonly out: PrinterOutput;
  /** The command line after the program name, as Go's os.Args[1:] (watch reads it raw). */
  osArgs: string[] = [];
  readonly #clients: EtcdClient[] = [];

  constructor(readonly io: CliIo) {
    this.out = {
      stdout: (d) => io.stdout.write(d),
      stderr: (d) => io.stderr.write(d),
      fail: (code, message) => this.exitWithError(code, message),
    };
    this.display = new SimplePrinter(this.out, false);
    this.authDisplay = newAuthPrinter("simple", this.out);
  }

  /** etcdctl's ExitWithError: "Error: <message>" on stderr, then exit with `code`. */
  exitWithError(code: number, message: string): never {
    this.io.stderr.write(`Error: ${message}\n`);
    throw new ExitSignal(code);
  }

  /** An environment variable ("" when unset, like os.Getenv). */
  getenv(key: string): string {
    for (const [k, v] of this.io.env) if (k === key) return v;
    return "";
  }

  /** Remembers a client so it is closed when the run ends. */
  track(client: EtcdClient): EtcdClient {
    this.#clients.push(client);
    return client;
  }

  /** Closes every client opened during the run. */
  close(): void {
    for (const c of this.#clients) c.close();
  }
}

/** pkg/flags.FlagToEnv: "dial-timeout" becomes "ETCDCTL_DIAL_TIMEOUT". */
export function flagToEnv(prefix: string, name: string): string {
  return `${prefix}_${name.replaceAll("-", "_").toUpperCase()}`;
}

/**
 * pkg/flags.SetPflagsFromEnv: fills flags not set on the command line from ETCDCTL_*
 * variables, warns about unknown ETCDCTL_* variables and dies when a variable is shadowed by
 * a command-line flag.
 */
export function setPflagsFromEnv(session: Session, prefix: string, fs: FlagSet): void {
  const alreadySet = new Set<string>();
  const used = new Set<string>();
  fs.visitAll((f) => {
    const key = flagToEnv(prefix, f.name);
    if (f.changed) alreadySet.add(key);
    if (!alreadySet.has(key)) {
      const val = session.getenv(key);
      if (val !== "") {
        used.add(key);
        try {
          fs.set(f.name, val);
        } catch {
          // etcdctl ignores the error SetPflagsFromEnv returns; the flag keeps its default.
        }
      }
    }
  });
  for (const [k, v] of session.io.env) {
    if (used.has(k)) continue;
    if (alreadySet.has(k)) {
      session.io.stderr.write(
        capnsLine(
          session.io.now(),
          "C",
          "pkg/flags",
          `conflicting environment variable "${k}" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`,
        ),
      );
      throw new ExitSignal(ExitCode.Error);
    }
    if (`${k}=${v}`.startsWith(prefix + "_")) {
      session.io.stderr.write(
        capnsLine(
          session.io.now(),
          "W",
          "pkg/flags",
          `unrecognized environment variable ${k}=${v}`,
        ),
      );
    }
  }
}

/** initDisplayFromCmd: picks the printer from --write-out and --hex. */
export function initDisplayFromCmd(session: Session, cmd: Command): void {
  const isHex = cmd.flags().getBool("hex");
  const format = cmd.flags().getString("write-out");
  const p = newPrinter(format, isHex, session.out);
  if (!p) session.exitWithError(ExitCode.BadFeature, "unsupported output format");
  session.display = p;
  session.authDisplay = newAuthPrinter(format, session.out);
}

/** The endpoints from --endpoints, trimmed (DNS discovery is not supported yet). */
export function endpointsFromCmd(session: Session, cmd: Command): string[] {
  const domain = cmd.flags().getString("discovery-srv");
  if (domain !== "") {
    session.exitWithError(
      ExitCode.Error,
      "DNS discovery (--discovery-srv) is not supported by detcdctl yet",
    );
  }
  return cmd.flags().getStringSlice("endpoints").map((e) => e.trim());
}

/** secureCfgFromCmd, including etcdctl's checks on empty TLS file flags. */
export function secureCfgFromCmd(session: Session, cmd: Command): SecureSettings {
  const fs = cmd.flags();
  const files: Record<string, string> = {};
  for (const name of ["cert", "key", "cacert"]) {
    const v = fs.getString(name);
    if (v === "" && fs.changed(name)) {
      session.exitWithError(ExitCode.BadArgs, `empty string is passed to --${name} option`);
    }
    files[name] = v;
  }
  const insecureDiscovery = fs.getBool("insecure-discovery");
  return {
    cert: files.cert,
    key: files.key,
    cacert: files.cacert,
    serverName: insecureDiscovery ? "" : fs.getString("discovery-srv"),
    insecureTransport: fs.getBool("insecure-transport"),
    insecureSkipVerify: fs.getBool("insecure-skip-tls-verify"),
  };
}

/**
 * authCfgFromCmd: --user name[:password] and --password; prompts when no password is given.
 * With --password the whole --user value is the name, colon included, as in etcdctl.
 */
export async function authCfgFromCmd(
  session: Session,
  cmd: Command,
): Promise<{ username: string; password: string } | undefined> {
  const user = cmd.flags().getString("user");
  const password = cmd.flags().getString("password");
  if (user === "") return undefined;
  if (password !== "") return { username: user, password };
  const i = user.indexOf(":");
  if (i >= 0) return { username: user.slice(0, i), password: user.slice(i + 1) };
  return { username: user, password: await askPassword(session, "Password: ") };
}

/** Go's unicode.IsSpace, which strings.TrimSpace and fmt's scanning use. */
export function isGoSpace(c: string): boolean {
  return /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/.test(c);
}

/** Go's strings.TrimSpace. */
export function goTrimSpace(s: string): string {
  const chars = [...s];
  let start = 0;
  let end = chars.length;
  while (start < end && isGoSpace(chars[start])) start++;
  while (end > start && isGoSpace(chars[end - 1])) end--;
  return chars.slice(start, end).join("");
}

/**
 * fmt.Scanf("%s") on stdin, as `--interactive=false` reads a password: the first
 * space-separated word of the next line, or nothing when the line is empty (Scanf stops at the
 * newline with an error that etcdctl ignores).
 */
export async function scanPassword(session: Session): Promise<string> {
  const { line } = await session.io.stdin.readLine();
  const text = new TextDecoder().decode(line);
  const chars = [...text];
  let i = 0;
  for (; i < chars.length; i++) {
    const c = chars[i];
    if (c === "\r" && chars[i + 1] === "\n") continue;
    if (c === "\n") return "";
    if (!isGoSpace(c)) break;
  }
  let word = "";
  for (; i < chars.length && !isGoSpace(chars[i]); i++) word += chars[i];
  return word;
}

/** Runs stty on the terminal that is stdin, as speakeasy does to hide what is typed. */
async function stty(setting: "echo" | "-echo"): Promise<void> {
  try {
    await new Deno.Command("stty", {
      args: [setting],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
  } catch {
    // no stty: the password is read with echo, like a terminal without echo control
  }
}

/**
 * speakeasy.Ask: the prompt on stdout, terminal echo off while a line is read (on a terminal;
 * elsewhere stty's complaint goes to stderr as it does for etcdctl), then a newline. The line
 * is trimmed of surrounding white space. Ctrl-C turns echo back on and exits with status 255.
 */
export async function askPassword(session: Session, prompt: string): Promise<string> {
  const tty = session.io.stdinIsTerminal?.() ?? false;
  session.io.stdout.write(prompt);
  const sttyComplaint = "stty: 'standard input': Inappropriate ioctl for device\n";
  let onInterrupt: (() => void) | undefined;
  if (tty) {
    onInterrupt = () => {
      stty("echo").finally(() => Deno.exit(255));
    };
    Deno.addSignalListener("SIGINT", onInterrupt);
    await stty("-echo");
  } else {
    session.io.stderr.write(sttyComplaint);
  }
  try {
    const { line } = await session.io.stdin.readLine();
    const text = new TextDecoder().decode(line).replace(/\n$/, "").replace(/\r$/, "");
    return goTrimSpace(text);
  } finally {
    if (tty) {
      await stty("echo");
      Deno.removeSignalListener("SIGINT", onInterrupt!);
    } else {
      session.io.stderr.write(sttyComplaint);
    }
    session.io.stdout.write("\n");
  }
}

/**
 * readPasswordInteractive of `user add` and `user passwd`: asks twice; an empty or a
 * mismatched answer ends the run (exit 128) before any connection is made.
 */
export async function readPasswordInteractive(session: Session, name: string): Promise<string> {
  const first = await askPassword(session, `Password of ${name}: `);
  if (first.length === 0) session.exitWithError(ExitCode.BadArgs, "empty password");
  const second = await askPassword(
    session,
    `Type password of ${name} again for confirmation: `,
  );
  if (first !== second) session.exitWithError(ExitCode.BadArgs, "given passwords are different");
  return first;
}

/** clientConfigFromCmd: environment, --debug dump, endpoints, timeouts, TLS, auth, printer. */
export async function clientConfigFromCmd(session: Session, cmd: Command): Promise<ClientSettings> {
  const fs = cmd.inheritedFlags();
  if (cmd.use.startsWith("watch")) {
    // etcdctl silences warnings about the watch command's own environment variables.
    // etcdctl's discardValue: the variable is accepted, and prints empty in --debug dumps.
    for (const name of ["watch-key", "watch-range-end"]) {
      fs.addFlag({
        name,
        shorthand: "",
        usage: "",
        value: discardValue,
        defValue: "",
        noOptDefVal: "",
        changed: false,
      });
    }
  }
  setPflagsFromEnv(session, "ETCDCTL", fs);
  if (cmd.flags().getBool("debug")) {
    fs.visitAll((f) =>
      session.io.stderr.write(`${flagToEnv("ETCDCTL", f.name)}=${f.value.string()}\n`)
    );
  }
  const endpoints = endpointsFromCmd(session, cmd);
  const settings: ClientSettings = {
    endpoints,
    dialTimeoutNs: cmd.flags().getDuration("dial-timeout"),
    keepaliveTimeNs: cmd.flags().getDuration("keepalive-time"),
    keepaliveTimeoutNs: cmd.flags().getDuration("keepalive-timeout"),
    secure: secureCfgFromCmd(session, cmd),
    auth: await authCfgFromCmd(session, cmd),
  };
  initDisplayFromCmd(session, cmd);
  return settings;
}

function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}

function readFileOrExit(session: Session, path: string): string {
  try {
    return new TextDecoder().decode(Deno.readFileSync(path));
  } catch (e) {
    session.exitWithError(ExitCode.BadArgs, `open ${path}: ${goErrnoText(e)}`);
  }
}

/**
 * newClientCfg: validates the TLS settings like transport.TLSInfo does and builds an
 * unconnected client; exits on errors. Any TLS setting gives the client a TLS configuration
 * (which endpoints use it follows clientv3's scheme rule, see etcd_client.ts processCreds).
 */
export function buildClient(session: Session, s: ClientSettings): EtcdClient {
  const sec = s.secure;
  let tls: TlsOptions | undefined;
  if (sec.cert !== "" || sec.key !== "") {
    if (sec.cert === "" || sec.key === "") {
      session.exitWithError(
        ExitCode.BadArgs,
        `KeyFile and CertFile must both be present[key: ${sec.key}, cert: ${sec.cert}]`,
      );
    }
    const cert = readFileOrExit(session, sec.cert);
    const key = readFileOrExit(session, sec.key);
    const problem = keyPairError(cert, key);
    if (problem !== undefined) session.exitWithError(ExitCode.BadArgs, problem);
    tls = { cert, key };
  }
  if (sec.cacert !== "") {
    const bundle = caBundle(readFileOrExit(session, sec.cacert));
    if ("error" in bundle) session.exitWithError(ExitCode.BadArgs, bundle.error);
    tls = { ...tls, ca: bundle.certs };
  }
  if (sec.serverName !== "") tls = { ...tls, serverName: sec.serverName };
  // An empty tls.Config when --insecure-transport=false asks for TLS without any file.
  if (tls === undefined && !sec.insecureTransport) tls = {};
  // --insecure-skip-tls-verify only counts when TLS is configured at all.
  if (tls !== undefined && sec.insecureSkipVerify) tls.insecureSkipVerify = true;
  if (s.endpoints.length < 1) {
    session.exitWithError(
      ExitCode.BadConnection,
      "at least one Endpoint must is required in client config",
    );
  }
  return session.track(
    new EtcdClient({
      endpoints: s.endpoints,
      tls,
      dialTimeoutMs: nsToMs(s.dialTimeoutNs),
      keepaliveTimeMs: nsToMs(s.keepaliveTimeNs),
      keepaliveTimeoutMs: nsToMs(s.keepaliveTimeoutNs),
      username: s.auth?.username,
      password: s.auth?.password,
      log: (line) => session.io.stderr.write(line),
      now: () => session.io.now(),
    }),
  );
}

/** clientv3.New as etcdctl calls it: build, authenticate; failures exit with code 2. */
export async function clientFromSettings(session: Session, s: ClientSettings): Promise<EtcdClient> {
  const client = buildClient(session, s);
  try {
    await client.authenticate();
  } catch (e) {
    if (e instanceof ExitSignal) throw e;
    session.exitWithError(ExitCode.BadConnection, (e as Error).message);
  }
  return client;
}

/** mustClientFromCmd. */
export async function mustClientFromCmd(session: Session, cmd: Command): Promise<EtcdClient> {
  const settings = await clientConfigFromCmd(session, cmd);
  return clientFromSettings(session, settings);
}

/** commandCtx: the absolute deadline of a short command (--command-timeout from now). */
export function commandDeadline(cmd: Command): number {
  return Date.now() + nsToMs(cmd.flags().getDuration("command-timeout"));
}

/** The message etcdctl prints for a failed client call. */
export function errorText(e: unknown): string {
  if (e instanceof ExitSignal) throw e;
  return (e as EtcdClientError).message;
}

/** Runs a client call, turning a failure into ExitWithError(ExitError, err). */
export async function orExit<T>(
  session: Session,
  p: Promise<T>,
  code: number = ExitCode.Error,
): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ExitSignal) throw e;
    session.exitWithError(code, errorText(e));
  }
}
