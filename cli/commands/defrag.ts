/**
 * `defrag` (ctlv3/command/defrag_command.go): Maintenance.Defragment on every endpoint in turn
 * (every member's client URLs with --cluster), "Finished defragmenting etcd member[ep]" on stdout
 * for each that succeeds, "Failed to defragment etcd member[ep] (err)" on stderr for each that
 * fails, exit 1 if any failed.
 *
 * A detcd member defragments while it serves (its revision log's garbage is rewritten away in the
 * background: docs/adr/0010-storage-that-scales.md). With --data-dir, etcdctl rewrites a stopped
 * member's bbolt file; a detcd data dir has nothing to rewrite offline (the revision log is rebuilt
 * at every start), so the command checks that the directory holds a member and succeeds quietly,
 * as etcdctl does.
 */

import { Command } from "../command.ts";
import { ExitCode, ExitSignal } from "../io.ts";
import { endpointsFromCluster } from "./endpoint.ts";
import { commandDeadline, errorText, mustClientFromCmd, type Session } from "./global.ts";

async function defrag(session: Session, cmd: Command): Promise<void> {
  const dataDir = cmd.flags().getString("data-dir");
  if (dataDir !== "") {
    const meta = `${dataDir}/member/meta`;
    try {
      await Deno.stat(meta);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? `open ${meta}: no such file or directory`
        : errorText(e);
      session.io.stderr.write(`Failed to defragment etcd data[${dataDir}] (${why})\n`);
      throw new ExitSignal(ExitCode.Error);
    }
    return;
  }
  const client = await mustClientFromCmd(session, cmd);
  let failures = 0;
  for (const ep of await endpointsFromCluster(session, cmd)) {
    try {
      await client.defragment(ep, { deadlineMs: commandDeadline(cmd) });
      session.io.stdout.write(`Finished defragmenting etcd member[${ep}]\n`);
    } catch (e) {
      if (e instanceof ExitSignal) throw e;
      session.io.stderr.write(`Failed to defragment etcd member[${ep}] (${errorText(e)})\n`);
      failures++;
    }
  }
  if (failures !== 0) throw new ExitSignal(ExitCode.Error);
}

/** The `defrag` command. */
export function defragCommand(session: Session): Command {
  const cmd = new Command({
    use: "defrag",
    short: "Defragments the storage of the etcd members with given endpoints",
    run: (c) => defrag(session, c),
  });
  cmd.persistentFlags().bool("cluster", false, "use all endpoints from the cluster member list");
  cmd.flags().string(
    "data-dir",
    "",
    "Optional. If present, defragments a data directory not in use by etcd.",
  );
  return cmd;
}
