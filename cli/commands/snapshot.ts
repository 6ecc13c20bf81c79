/**
 * `snapshot save|status|restore` as etcdctl 3.4.23 runs them (ctlv3/command/snapshot_command.go,
 * clientv3/snapshot/v3_snapshot.go). A snapshot is etcd's backend database, a bbolt file, followed
 * by the SHA-256 of the database (the server sends it last; a file whose size is 32 bytes past a
 * multiple of 512 has it). `status` reads any such file, detcd's or etcd's; `restore` builds a
 * detcd data dir from either (see core/node/restore.ts), which is how a cluster moves from etcd to
 * detcd (and real etcdctl restores detcd's snapshots for etcd, the other way).
 *
 * The zap log lines go to stderr like etcdctl's: its snapshot manager logs with zap's production
 * encoder (epoch-seconds timestamps, durations in seconds), the client's maintenance API with
 * ISO-8601 timestamps.
 */

import { createHash } from "node:crypto";
import { Command } from "../command.ts";
import { GrpcError } from "../grpc_client.ts";
import { goErrnoText, humanizeBytes } from "../go_format.ts";
import { ExitCode } from "../io.ts";
import { zapJsonString, zapLine } from "../log.ts";
import { type DbStatus } from "../printers/printer.ts";
import {
  clientConfigFromCmd,
  clientFromSettings,
  commandDeadline,
  errorText,
  initDisplayFromCmd,
  type Session,
} from "./global.ts";
import { BoltFormatError, boltInfo, decodeBolt } from "../../core/storage/mod.ts";
import { dbStatus, EtcdDbError, fromEtcdBuckets } from "../../core/snapshot/mod.ts";
import { idHex, planRestore, restoreMember } from "../../core/node/mod.ts";
import { DenoDisk } from "../../platform/mod.ts";

const SHA256_BYTES = 32;

/** hasChecksum: the file carries the SHA-256 trailer when its size is 32 past a multiple of 512. */
function hasChecksum(size: number): boolean {
  return size % 512 === SHA256_BYTES;
}

/** Go's fmt %v of a []byte: "[1 2 3]". */
function goBytes(b: Uint8Array): string {
  return `[${[...b].join(" ")}]`;
}

/** zap.NewProduction's JSON line: epoch seconds as a float, then the fields in order. */
function productionLine(
  now: number,
  level: "info" | "warn",
  caller: string,
  msg: string,
  fields: [string, string | number | string[]][],
): string {
  let line = `{"level":${zapJsonString(level)},"ts":${now / 1000},"caller":${
    zapJsonString(caller)
  },"msg":${zapJsonString(msg)}`;
  for (const [k, v] of fields) {
    const value = typeof v === "string"
      ? zapJsonString(v)
      : Array.isArray(v)
      ? `[${v.map(zapJsonString).join(",")}]`
      : String(v);
    line += `,${zapJsonString(k)}:${value}`;
  }
  return line + "}\n";
}

/** A duration as zap's production encoder writes it: seconds, from whole nanoseconds. */
function zapSeconds(ms: number): number {
  return Math.round(ms * 1e6) / 1e9;
}

function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

async function save(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 1) {
    session.exitWithError(ExitCode.BadArgs, "snapshot save expects one argument");
  }
  const settings = await clientConfigFromCmd(session, cmd);
  const log = (caller: string, msg: string, fields: [string, string | number][] = []) =>
    session.io.stderr.write(productionLine(epochMs(), "info", caller, msg, fields));
  // clientv3's maintenance API logs with its own logger: ISO-8601 timestamps.
  const clientLog = (
    level: "info" | "warn",
    line: number,
    msg: string,
    fields: [string, string][] = [],
  ) =>
    session.io.stderr.write(
      zapLine(session.io.now(), level, `clientv3/maintenance.go:${line}`, msg, fields),
    );
  if (settings.endpoints.length !== 1) {
    session.exitWithError(
      ExitCode.Interrupted,
      `snapshot must be requested to one selected node, not multiple [${
        settings.endpoints.join(" ")
      }]`,
    );
  }
  // Without an explicit --command-timeout, etcdctl gives the snapshot all the time it needs.
  const deadlineMs = cmd.flags().changed("command-timeout") ? commandDeadline(cmd) : undefined;
  const path = args[0];
  const partPath = `${path}.part`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(partPath, { write: true, create: true, truncate: true, mode: 0o600 });
  } catch (e) {
    session.exitWithError(
      ExitCode.Interrupted,
      `could not open ${partPath} (open ${partPath}: ${goErrnoText(e)})`,
    );
  }
  let renamed = false;
  try {
    log("snapshot/v3_snapshot.go:119", "created temporary db file", [["path", partPath]]);
    const started = performance.now();
    const client = await clientFromSettings(session, settings);
    let size = 0;
    try {
      const stream = await client.snapshotStream({ deadlineMs });
      clientLog("info", 200, "opened snapshot stream; downloading");
      log("snapshot/v3_snapshot.go:127", "fetching snapshot", [[
        "endpoint",
        settings.endpoints[0],
      ]]);
      try {
        for (;;) {
          const resp = await stream.receive();
          if (resp === undefined) break;
          await writeAll(file, resp.blob);
          size += resp.blob.length;
        }
        clientLog("info", 208, "completed snapshot read; closing");
      } catch (e) {
        const err = client.streamError(e);
        // clientv3 logs the stream's own gRPC status error, before any translation.
        clientLog("warn", 210, "failed to receive from snapshot stream; closing", [
          ["error", e instanceof GrpcError ? e.toGoString() : err.message],
        ]);
        throw err;
      }
    } catch (e) {
      session.exitWithError(ExitCode.Interrupted, errorText(client.streamError(e)));
    } finally {
      client.close();
    }
    if (!hasChecksum(size)) {
      session.exitWithError(ExitCode.Interrupted, `sha256 checksum not found [bytes: ${size}]`);
    }
    await file.sync();
    file.close();
    log("snapshot/v3_snapshot.go:142", "fetched snapshot", [
      ["endpoint", settings.endpoints[0]],
      ["size", humanizeBytes(size)],
      ["took", zapSeconds(performance.now() - started)],
    ]);
    try {
      await Deno.rename(partPath, path);
      renamed = true;
    } catch (e) {
      session.exitWithError(
        ExitCode.Interrupted,
        `could not rename ${partPath} to ${path} (rename ${partPath} ${path}: ${goErrnoText(e)})`,
      );
    }
    log("snapshot/v3_snapshot.go:152", "saved", [["path", path]]);
    session.io.stdout.write(`Snapshot saved at ${path}\n`);
  } finally {
    try {
      file.close();
    } catch {
      // already closed
    }
    if (!renamed) await Deno.remove(partPath).catch(() => {});
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await file.write(data.subarray(at));
}

/**
 * Reads a snapshot file as etcdctl's status does: hash, revision and key count from the buckets,
 * size from the database's pages. A damaged file is an error with a reason, never a crash (real
 * etcdctl 3.4.23 dies with SIGBUS on a truncated file).
 */
async function readDb(session: Session, path: string): Promise<Uint8Array> {
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      return session.exitWithError(ExitCode.Error, `read ${path}: is a directory`);
    }
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      session.exitWithError(ExitCode.Error, `stat ${path}: no such file or directory`);
    }
    throw e;
  }
}

function describeDbError(e: unknown): string {
  // bbolt's own word when neither meta page is valid; our other reasons are more precise than
  // what etcdctl 3.4.23 does there (it dies with SIGBUS on most damaged files).
  if (e instanceof BoltFormatError && e.message.includes("no valid meta page")) {
    return "invalid database";
  }
  if (e instanceof BoltFormatError || e instanceof EtcdDbError) return e.message;
  throw e;
}

async function status(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 1) {
    session.exitWithError(ExitCode.BadArgs, "snapshot status requires exactly one argument");
  }
  initDisplayFromCmd(session, cmd);
  const bytes = await readDb(session, args[0]);
  if (bytes.length < 2 * 4096) session.exitWithError(ExitCode.Error, "file size too small");
  let result: DbStatus;
  try {
    const info = boltInfo(bytes);
    const s = dbStatus(decodeBolt(bytes));
    result = { ...s, totalSize: info.highWaterMark * info.pageSize };
  } catch (e) {
    session.exitWithError(ExitCode.Error, describeDbError(e));
  }
  session.display.dbStatus(result);
}

async function restore(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 1) {
    session.exitWithError(ExitCode.BadArgs, "snapshot restore requires exactly one argument");
  }
  const flags = cmd.flags();
  const name = flags.getString("name");
  const dataDir = flags.getString("data-dir") || `${name}.etcd`;
  const walDir = flags.getString("wal-dir");
  const initialCluster = flags.getString("initial-cluster");
  const token = flags.getString("initial-cluster-token");
  const peerUrls = flags.getString("initial-advertise-peer-urls").split(",");
  const skipHashCheck = flags.getBool("skip-hash-check");
  const log = (caller: string, msg: string, fields: [string, string | number | string[]][]) =>
    session.io.stderr.write(productionLine(epochMs(), "info", caller, msg, fields));
  const fail = (message: string): never => session.exitWithError(ExitCode.Error, message);

  try {
    planRestore({
      name,
      dataDir,
      initialCluster,
      initialClusterToken: token,
      initialAdvertisePeerUrls: peerUrls,
    });
  } catch (e) {
    fail((e as Error).message);
  }
  for (const [flag, dir] of [["data-dir", dataDir], ["wal-dir", walDir]]) {
    if (dir === "") continue;
    try {
      await Deno.lstat(dir);
      fail(`${flag} "${dir}" exists`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const snapDir = `${dataDir}/member/snap`;
  const where: [string, string][] = [
    ["path", args[0]],
    ["wal-dir", walDir || `${dataDir}/member/wal`],
    ["data-dir", dataDir],
    ["snap-dir", snapDir],
  ];
  log("snapshot/v3_snapshot.go:296", "restoring snapshot", where);
  let file: Uint8Array;
  try {
    file = await Deno.readFile(args[0]);
  } catch (e) {
    return fail(`open ${args[0]}: ${goErrnoText(e)}`);
  }

  let db = file;
  if (hasChecksum(file.length)) {
    db = file.subarray(0, file.length - SHA256_BYTES);
    if (!skipHashCheck) {
      const expected = file.subarray(file.length - SHA256_BYTES);
      const actual = new Uint8Array(createHash("sha256").update(db).digest());
      if (expected.some((b, i) => b !== actual[i])) {
        fail(`expected sha256 ${goBytes(expected)}, got ${goBytes(actual)}`);
      }
    }
  } else if (!skipHashCheck) {
    fail("snapshot missing hash but --skip-hash-check=false");
  }
  let content;
  try {
    content = fromEtcdBuckets(decodeBolt(db));
  } catch (e) {
    return fail(describeDbError(e));
  }
  const options = {
    name,
    dataDir,
    walDir: walDir || undefined,
    initialCluster,
    initialClusterToken: token,
    initialAdvertisePeerUrls: peerUrls,
  };
  let result;
  try {
    result = await restoreMember(new DenoDisk(), options, content);
  } catch (e) {
    // Nothing of a member may stay behind: neither dir existed before we started.
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    if (walDir !== "") await Deno.remove(walDir, { recursive: true }).catch(() => {});
    return fail((e as Error).message);
  }
  for (const m of result.members) {
    log("membership/cluster.go:392", "added member", [
      ["cluster-id", idHex(result.clusterId)],
      ["local-member-id", "0"],
      ["added-peer-id", idHex(m.id)],
      ["added-peer-peer-urls", m.peerUrls],
    ]);
  }
  log("snapshot/v3_snapshot.go:309", "restored snapshot", where);
}

/** The `snapshot` command group. */
export function snapshotCommand(session: Session): Command {
  const saveCmd = new Command({
    use: "save <filename>",
    short: "Stores an etcd node backend snapshot to a given file",
    run: (cmd, args) => save(session, cmd, args),
  });
  const statusCmd = new Command({
    use: "status <filename>",
    short: "Gets backend snapshot status of a given file",
    long:
      `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
`,
    run: (cmd, args) => status(session, cmd, args),
  });
  const restoreCmd = new Command({
    use: "restore <filename> [options]",
    short: "Restores an etcd member snapshot to an etcd directory",
    run: (cmd, args) => restore(session, cmd, args),
  });
  const f = restoreCmd.flags();
  f.string("data-dir", "", "Path to the data directory");
  f.string("wal-dir", "", "Path to the WAL directory (use --data-dir if none given)");
  f.string(
    "initial-cluster",
    "default=http://localhost:2380",
    "Initial cluster configuration for restore bootstrap",
  );
  f.string(
    "initial-cluster-token",
    "etcd-cluster",
    "Initial cluster token for the etcd cluster during restore bootstrap",
  );
  f.string(
    "initial-advertise-peer-urls",
    "http://localhost:2380",
    "List of this member's peer URLs to advertise to the rest of the cluster",
  );
  f.string("name", "default", "Human-readable name for this member");
  f.bool(
    "skip-hash-check",
    false,
    "Ignore snapshot integrity hash value (required if copied from data directory)",
  );
  const group = new Command({ use: "snapshot <subcommand>", short: "Manages etcd node snapshots" });
  group.addCommand(saveCmd, statusCmd, restoreCmd);
  return group;
}
