/**
 * The `user` command group (ctlv3/command/user_command.go): add, delete, get, list, passwd,
 * grant-role and revoke-role. Argument errors and password prompts come before any connection
 * (exit 128); server refusals exit 1 with etcd's message. The calls have no deadline, as
 * etcdctl makes them with context.TODO().
 */

import { Command } from "../command.ts";
import { ExitCode } from "../io.ts";
import {
  mustClientFromCmd,
  orExit,
  readPasswordInteractive,
  scanPassword,
  type Session,
} from "./global.ts";

/** The name and password `user add` works with, from its argument and flags. */
export interface NewUser {
  name: string;
  password: string;
  noPassword: boolean;
}

/**
 * userAddCommandFunc's choice of password: --no-password, then --new-user-password, then
 * "name:password", then stdin (--interactive=false) or the two prompts.
 */
export async function newUserFromArgs(
  session: Session,
  cmd: Command,
  arg: string,
): Promise<NewUser> {
  const flags = cmd.flags();
  if (flags.getBool("no-password")) return { name: arg, password: "", noPassword: true };
  const fromFlag = flags.getString("new-user-password");
  if (fromFlag !== "") return { name: arg, password: fromFlag, noPassword: false };
  const colon = arg.indexOf(":");
  if (colon < 0) {
    const password = flags.getBool("interactive")
      ? await readPasswordInteractive(session, arg)
      : await scanPassword(session);
    return { name: arg, password, noPassword: false };
  }
  const name = arg.slice(0, colon);
  if (name.length === 0) session.exitWithError(ExitCode.BadArgs, "empty user name is not allowed");
  return { name, password: arg.slice(colon + 1), noPassword: false };
}

async function userAdd(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 1) {
    session.exitWithError(ExitCode.BadArgs, "user add command requires user name as its argument");
  }
  const user = await newUserFromArgs(session, cmd, args[0]);
  const client = await mustClientFromCmd(session, cmd);
  const resp = await orExit(session, client.userAdd(user.name, user.password, user.noPassword));
  session.authDisplay.userAdd(user.name, resp);
}

async function userGet(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 1) {
    session.exitWithError(ExitCode.BadArgs, "user get command requires user name as its argument");
  }
  const name = args[0];
  const client = await mustClientFromCmd(session, cmd);
  const resp = await orExit(session, client.userGet(name));
  if (!cmd.flags().getBool("detail")) {
    session.authDisplay.userGet(name, resp);
    return;
  }
  // etcdctl writes this line itself, whatever the output format, then each role as `role get`.
  session.io.stdout.write(`User: ${name}\n`);
  for (const role of resp.roles) {
    session.io.stdout.write("\n");
    const roleResp = await orExit(session, client.roleGet(role));
    session.authDisplay.roleGet(role, roleResp);
  }
}

async function userPasswd(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 1) {
    session.exitWithError(
      ExitCode.BadArgs,
      "user passwd command requires user name as its argument",
    );
  }
  const password = cmd.flags().getBool("interactive")
    ? await readPasswordInteractive(session, args[0])
    : await scanPassword(session);
  const client = await mustClientFromCmd(session, cmd);
  const resp = await orExit(session, client.userChangePassword(args[0], password));
  session.authDisplay.userChangePassword(resp);
}

/** The `user` command group. */
export function userCommand(session: Session): Command {
  const uc = new Command({ use: "user <subcommand>", short: "User related commands" });
  const add = new Command({
    use: "add <user name or user:password> [options]",
    short: "Adds a new user",
    run: (cmd, args) => userAdd(session, cmd, args),
  });
  add.flags().bool(
    "interactive",
    true,
    "Read password from stdin instead of interactive terminal",
  );
  add.flags().string("new-user-password", "", "Supply password from the command line flag");
  add.flags().bool("no-password", false, "Create a user without password (CN based auth only)");
  const del = new Command({
    use: "delete <user name>",
    short: "Deletes a user",
    run: async (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(
          ExitCode.BadArgs,
          "user delete command requires user name as its argument",
        );
      }
      const client = await mustClientFromCmd(session, cmd);
      const resp = await orExit(session, client.userDelete(args[0]));
      session.authDisplay.userDelete(args[0], resp);
    },
  });
  const get = new Command({
    use: "get <user name> [options]",
    short: "Gets detailed information of a user",
    run: (cmd, args) => userGet(session, cmd, args),
  });
  get.flags().bool("detail", false, "Show permissions of roles granted to the user");
  const list = new Command({
    use: "list",
    short: "Lists all users",
    run: async (cmd, args) => {
      if (args.length !== 0) {
        session.exitWithError(ExitCode.BadArgs, "user list command requires no arguments");
      }
      const client = await mustClientFromCmd(session, cmd);
      session.authDisplay.userList(await orExit(session, client.userList()));
    },
  });
  const passwd = new Command({
    use: "passwd <user name> [options]",
    short: "Changes password of user",
    run: (cmd, args) => userPasswd(session, cmd, args),
  });
  passwd.flags().bool(
    "interactive",
    true,
    "If true, read password from stdin instead of interactive terminal",
  );
  const grantRole = new Command({
    use: "grant-role <user name> <role name>",
    short: "Grants a role to a user",
    run: async (cmd, args) => {
      if (args.length !== 2) {
        session.exitWithError(
          ExitCode.BadArgs,
          "user grant command requires user name and role name as its argument",
        );
      }
      const client = await mustClientFromCmd(session, cmd);
      const resp = await orExit(session, client.userGrantRole(args[0], args[1]));
      session.authDisplay.userGrantRole(args[0], args[1], resp);
    },
  });
  const revokeRole = new Command({
    use: "revoke-role <user name> <role name>",
    short: "Revokes a role from a user",
    run: async (cmd, args) => {
      if (args.length !== 2) {
        session.exitWithError(
          ExitCode.BadArgs,
          "user revoke-role requires user name and role name as its argument",
        );
      }
      const client = await mustClientFromCmd(session, cmd);
      const resp = await orExit(session, client.userRevokeRole(args[0], args[1]));
      session.authDisplay.userRevokeRole(args[0], args[1], resp);
    },
  });
  uc.addCommand(add, del, get, list, passwd, grantRole, revokeRole);
  return uc;
}
