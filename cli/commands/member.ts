/** The `member` command group: `member list` now; add, remove, update and promote pending. */

import { Command } from "../command.ts";
import { commandDeadline, mustClientFromCmd, orExit, type Session } from "./global.ts";

/** The `member` command group. */
export function memberCommand(session: Session, pending: (c: Command) => Command): Command {
  const mc = new Command({ use: "member <subcommand>", short: "Membership related commands" });
  const add = pending(
    new Command({ use: "add <memberName> [options]", short: "Adds a member into the cluster" }),
  );
  add.flags().string("peer-urls", "", "comma separated peer URLs for the new member.");
  add.flags().bool("learner", false, "indicates if the new member is raft learner");
  const remove = pending(
    new Command({ use: "remove <memberID>", short: "Removes a member from the cluster" }),
  );
  const update = pending(
    new Command({ use: "update <memberID> [options]", short: "Updates a member in the cluster" }),
  );
  update.flags().string("peer-urls", "", "comma separated peer URLs for the updated member.");
  const list = new Command({
    use: "list",
    short: "Lists all members in the cluster",
    long:
      `When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
`,
    run: async (cmd) => {
      const deadlineMs = commandDeadline(cmd);
      const client = await mustClientFromCmd(session, cmd);
      const resp = await orExit(session, client.memberList({ deadlineMs }));
      session.display.memberList(resp);
    },
  });
  const promote = pending(
    new Command({
      use: "promote <memberID>",
      short: "Promotes a non-voting member in the cluster",
      long: `Promotes a non-voting learner member to a voting one in the cluster.
`,
    }),
  );
  mc.addCommand(add, remove, update, list, promote);
  return mc;
}
