/**
 * The etcdctl command tree (ctlv3/ctl.go): the root with its global flags and every command
 * group, wired to etcdctl's help layout. Adding a command group means adding its module here.
 */

import { Command } from "../command.ts";
import { apiVersion, etcdctlUsage, etcdctlVersion } from "../help.ts";
import { electCommand, lockCommand } from "./concurrency.ts";
import { defragCommand } from "./defrag.ts";
import { endpointCommand } from "./endpoint.ts";
import { registerGlobalFlags, type Session } from "./global.ts";
import { kvCommands } from "./kv.ts";
import { leaseCommand } from "./lease.ts";
import { watchCommand } from "./watch.ts";
import { alarmCommand } from "./alarm.ts";
import { authCommand } from "./auth.ts";
import { memberCommand } from "./member.ts";
import { makeMirrorCommand } from "./mirror.ts";
import { moveLeaderCommand } from "./move_leader.ts";
import { pendingCommands, pendingMarker } from "./pending.ts";
import { checkCommand } from "./check.ts";
import { roleCommand } from "./role.ts";
import { snapshotCommand } from "./snapshot.ts";
import { userCommand } from "./user.ts";

/** `version`. */
function versionCommand(session: Session): Command {
  return new Command({
    use: "version",
    short: "Prints the version of etcdctl",
    run: () => {
      session.io.stdout.write(`etcdctl version: ${etcdctlVersion}\nAPI version: ${apiVersion}\n`);
    },
  });
}

/** Builds etcdctl's root command for one run. */
export function newRootCommand(session: Session): Command {
  const root = new Command({
    use: "etcdctl",
    short: "A simple command line client for etcd3.",
    suggestFor: ["etcdctl"],
  });
  root.output = {
    stdout: (d) => session.io.stdout.write(d),
    stderr: (d) => session.io.stderr.write(d),
  };
  root.usageFn = (cmd, write) => write(etcdctlUsage(cmd));
  registerGlobalFlags(root);
  const pending = pendingMarker(session);
  const p = pendingCommands(pending);
  const [get, put, del, txn, compaction] = kvCommands(session);
  // etcdctl's registration order: it decides the order of "Did you mean this?" suggestions.
  root.addCommand(
    get,
    put,
    del,
    txn,
    compaction,
    alarmCommand(session),
    defragCommand(session),
    endpointCommand(session),
    moveLeaderCommand(session),
    watchCommand(session),
    versionCommand(session),
    leaseCommand(session),
    memberCommand(session),
    snapshotCommand(session),
    makeMirrorCommand(session),
    p.migrate,
    lockCommand(session),
    electCommand(session),
    authCommand(session),
    userCommand(session),
    roleCommand(session),
    checkCommand(session),
  );
  return root;
}
