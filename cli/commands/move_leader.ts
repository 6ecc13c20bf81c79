/**
 * `move-leader <transferee-member-id>` (ctlv3/command/move_leader_command.go): asks each endpoint
 * in --endpoints order for its status until one says it is the leader, then sends MoveLeader to
 * that member. A failed status call ends the run; no leader among the endpoints is a usage error
 * (exit 128), as in etcdctl.
 */

import { Command } from "../command.ts";
import type { EtcdClient } from "../etcd_client.ts";
import { GoNumError, goSliceString, parseGoUint } from "../go_format.ts";
import { ExitCode } from "../io.ts";
import {
  clientConfigFromCmd,
  clientFromSettings,
  commandDeadline,
  orExit,
  type Session,
} from "./global.ts";

async function moveLeader(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 1) {
    session.exitWithError(ExitCode.BadArgs, "move-leader command needs 1 argument");
  }
  let target: bigint;
  try {
    target = parseGoUint(args[0], 16, 64);
  } catch (e) {
    if (!(e instanceof GoNumError)) throw e;
    session.exitWithError(ExitCode.BadArgs, e.message);
  }
  const settings = await clientConfigFromCmd(session, cmd);
  const first = await clientFromSettings(session, settings);
  const eps = first.endpoints();
  first.close();

  const deadlineMs = commandDeadline(cmd);
  let leaderClient: EtcdClient | undefined;
  let leaderId = 0n;
  for (const ep of eps) {
    const client = await clientFromSettings(session, { ...settings, endpoints: [ep] });
    const resp = await orExit(session, client.status(ep, { deadlineMs }));
    const memberId = resp.header?.memberId ?? 0n;
    if (memberId === resp.leader) {
      leaderClient = client;
      leaderId = resp.leader;
      break;
    }
    client.close();
  }
  if (leaderClient === undefined) {
    session.exitWithError(ExitCode.BadArgs, `no leader endpoint given at ${goSliceString(eps)}`);
  }
  const resp = await orExit(session, leaderClient.moveLeader(target, { deadlineMs }));
  session.display.moveLeader(leaderId, target, resp);
}

/** The `move-leader` command. */
export function moveLeaderCommand(session: Session): Command {
  return new Command({
    use: "move-leader <transferee-member-id>",
    short: "Transfers leadership to another etcd cluster member.",
    run: (cmd, args) => moveLeader(session, cmd, args),
  });
}
