/** The `alarm` command group: `alarm list` and `alarm disarm`, as etcdctl 3.4 runs them. */

import { Command } from "../command.ts";
import { ExitCode } from "../io.ts";
import { commandDeadline, mustClientFromCmd, orExit, type Session } from "./global.ts";

/** The `alarm` command group. */
export function alarmCommand(session: Session): Command {
  const ac = new Command({ use: "alarm <subcommand>", short: "Alarm related commands" });
  const disarm = new Command({
    use: "disarm",
    short: "Disarms all alarms",
    run: async (cmd, args) => {
      if (args.length !== 0) {
        session.exitWithError(ExitCode.BadArgs, "alarm disarm command accepts no arguments");
      }
      const deadlineMs = commandDeadline(cmd);
      const client = await mustClientFromCmd(session, cmd);
      session.display.alarm(await orExit(session, client.alarmDisarmAll({ deadlineMs })));
    },
  });
  const list = new Command({
    use: "list",
    short: "Lists all alarms",
    run: async (cmd, args) => {
      if (args.length !== 0) {
        session.exitWithError(ExitCode.BadArgs, "alarm list command accepts no arguments");
      }
      const deadlineMs = commandDeadline(cmd);
      const client = await mustClientFromCmd(session, cmd);
      session.display.alarm(await orExit(session, client.alarmList({ deadlineMs })));
    },
  });
  ac.addCommand(disarm, list);
  return ac;
}
