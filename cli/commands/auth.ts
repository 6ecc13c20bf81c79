/**
 * The `auth` command group (ctlv3/command/auth_command.go): `auth enable` (creating the root
 * role and granting it to root when the server says root lacks it, then trying again) and
 * `auth disable`, both bounded by --command-timeout.
 */

import { Command } from "../command.ts";
import { Errors } from "../../core/errors.ts";
import { EtcdClientError } from "../etcd_client.ts";
import { ExitCode } from "../io.ts";
import { commandDeadline, errorText, mustClientFromCmd, type Session } from "./global.ts";

async function authEnable(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 0) {
    session.exitWithError(ExitCode.BadArgs, "auth enable command does not accept any arguments");
  }
  const deadlineMs = commandDeadline(cmd);
  const client = await mustClientFromCmd(session, cmd);
  try {
    for (;;) {
      try {
        await client.authEnable({ deadlineMs });
        break;
      } catch (e) {
        if (!(e instanceof EtcdClientError) || !e.is(Errors.rootRoleNotExist)) throw e;
      }
      await client.roleAdd("root", { deadlineMs });
      await client.userGrantRole("root", "root", { deadlineMs });
    }
  } catch (e) {
    session.exitWithError(ExitCode.Error, errorText(e));
  }
  session.io.stdout.write("Authentication Enabled\n");
}

async function authDisable(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 0) {
    session.exitWithError(ExitCode.BadArgs, "auth disable command does not accept any arguments");
  }
  const deadlineMs = commandDeadline(cmd);
  const client = await mustClientFromCmd(session, cmd);
  try {
    await client.authDisable({ deadlineMs });
  } catch (e) {
    session.exitWithError(ExitCode.Error, errorText(e));
  }
  session.io.stdout.write("Authentication Disabled\n");
}

/** The `auth` command group. */
export function authCommand(session: Session): Command {
  const ac = new Command({
    use: "auth <enable or disable>",
    short: "Enable or disable authentication",
  });
  ac.addCommand(
    new Command({
      use: "enable",
      short: "Enables authentication",
      run: (cmd, args) => authEnable(session, cmd, args),
    }),
    new Command({
      use: "disable",
      short: "Disables authentication",
      run: (cmd, args) => authDisable(session, cmd, args),
    }),
  );
  return ac;
}
