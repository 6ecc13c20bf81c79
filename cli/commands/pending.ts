/**
 * etcdctl commands detcdctl does not run yet. They are registered with etcdctl's exact names,
 * descriptions and flags so that help pages, flag parsing and prefix matching already behave
 * like etcdctl's; running one reports that it is not implemented. Each group moves to its own
 * module (like kv.ts) when implemented.
 */

import { Command } from "../command.ts";
import { ExitCode } from "../io.ts";
import type { Session } from "./global.ts";

/** Marks a command as registered-but-not-implemented (it runs, and fails clearly). */
export function pendingMarker(session: Session): (c: Command) => Command {
  return (c) => {
    c.run = (cmd) => {
      session.exitWithError(
        ExitCode.Error,
        `"${cmd.commandPath()}" is not implemented by detcdctl yet`,
      );
    };
    return c;
  };
}

/** Every not-yet-implemented top-level command group of etcdctl 3.4. */
export function pendingCommands(pending: (c: Command) => Command): Record<string, Command> {
  const c = (use: string, short: string, long = "") => pending(new Command({ use, short, long }));
  const group = (use: string, short: string, ...children: Command[]) => {
    const g = new Command({ use, short });
    g.addCommand(...children);
    return g;
  };

  const migrate = c("migrate", "Migrates keys in a v2 store to a mvcc store");
  migrate.flags().bool("no-ttl", false, "Do not convert TTL keys");
  migrate.flags().string("data-dir", "", "Path to the data directory");
  migrate.flags().string("wal-dir", "", "Path to the WAL directory");
  migrate.flags().string("transformer", "", "Path to the user-provided transformer program");

  const restore = c(
    "restore <filename> [options]",
    "Restores an etcd member snapshot to an etcd directory",
  );
  restore.flags().string("data-dir", "", "Path to the data directory");
  restore.flags().string("wal-dir", "", "Path to the WAL directory (use --data-dir if none given)");
  restore.flags().string(
    "initial-cluster",
    "default=http://localhost:2380",
    "Initial cluster configuration for restore bootstrap",
  );
  restore.flags().string(
    "initial-cluster-token",
    "etcd-cluster",
    "Initial cluster token for the etcd cluster during restore bootstrap",
  );
  restore.flags().string(
    "initial-advertise-peer-urls",
    "http://localhost:2380",
    "List of this member's peer URLs to advertise to the rest of the cluster",
  );
  restore.flags().string("name", "default", "Human-readable name for this member");
  restore.flags().bool(
    "skip-hash-check",
    false,
    "Ignore snapshot integrity hash value (required if copied from data directory)",
  );
  const snapshot = group(
    "snapshot <subcommand>",
    "Manages etcd node snapshots",
    c("save <filename>", "Stores an etcd node backend snapshot to a given file"),
    c(
      "status <filename>",
      "Gets backend snapshot status of a given file",
      `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
`,
    ),
    restore,
  );

  return {
    snapshot,
    migrate,
  };
}
