/**
 * The `role` command group (ctlv3/command/role_command.go): add, delete, get, list,
 * grant-permission and revoke-permission, with etcdctl's key range rules (a key, [key, end),
 * --prefix, --from-key, and the empty key meaning the whole key space). Argument errors exit 128
 * before any connection; server refusals exit 1 with etcd's message.
 */

import { Command } from "../command.ts";
import { Permission_Type } from "../../gen/authpb/auth_pb.ts";
import { ExitCode } from "../io.ts";
import { prefixRangeEnd } from "../printers/auth.ts";
import { mustClientFromCmd, orExit, type Session } from "./global.ts";

const encoder = new TextEncoder();

/** A usage mistake in a permission's key range, with etcdctl's message (exit 128). */
export class PermRangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PermRangeError";
  }
}

/** clientv3.StrToPermissionType: read, write or readwrite, in any letter case. */
export function permissionTypeFromString(s: string): Permission_Type {
  switch (s.toUpperCase()) {
    case "READ":
      return Permission_Type.READ;
    case "WRITE":
      return Permission_Type.WRITE;
    case "READWRITE":
      return Permission_Type.READWRITE;
  }
  throw new PermRangeError(`invalid permission type: ${s}`);
}

/**
 * permRange: the key and range end sent for `args` (key [endkey]). The empty key stands for
 * "\x00", and with --prefix or --from-key for the whole key space ["\x00", "\x00").
 */
export function permRange(
  args: readonly string[],
  prefix: boolean,
  fromKey: boolean,
): { key: Uint8Array; rangeEnd: Uint8Array } {
  const key = encoder.encode(args[0]);
  if (key.length === 0) {
    if (prefix && fromKey) {
      throw new PermRangeError("--from-key and --prefix flags are mutually exclusive");
    }
    return {
      key: new Uint8Array([0]),
      rangeEnd: prefix || fromKey ? new Uint8Array([0]) : new Uint8Array(0),
    };
  }
  if (args.length === 1) {
    if (prefix) {
      if (fromKey) throw new PermRangeError("--from-key and --prefix flags are mutually exclusive");
      return { key, rangeEnd: prefixRangeEnd(key) };
    }
    if (fromKey) return { key, rangeEnd: new Uint8Array([0]) };
    return { key, rangeEnd: new Uint8Array(0) };
  }
  if (prefix) throw new PermRangeError("unexpected endkey argument with --prefix flag");
  if (fromKey) throw new PermRangeError("unexpected endkey argument with --from-key flag");
  return { key, rangeEnd: encoder.encode(args[1]) };
}

function rangeOrExit(
  session: Session,
  cmd: Command,
  args: readonly string[],
): { key: Uint8Array; rangeEnd: Uint8Array } {
  try {
    return permRange(args, cmd.flags().getBool("prefix"), cmd.flags().getBool("from-key"));
  } catch (e) {
    if (!(e instanceof PermRangeError)) throw e;
    session.exitWithError(ExitCode.BadArgs, e.message);
  }
}

async function grantPermission(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length < 3) {
    session.exitWithError(
      ExitCode.BadArgs,
      "role grant command requires role name, permission type, and key [endkey] as its argument",
    );
  }
  let permType: Permission_Type;
  try {
    permType = permissionTypeFromString(args[1]);
  } catch (e) {
    if (!(e instanceof PermRangeError)) throw e;
    session.exitWithError(ExitCode.BadArgs, e.message);
  }
  const { key, rangeEnd } = rangeOrExit(session, cmd, args.slice(2));
  const client = await mustClientFromCmd(session, cmd);
  const resp = await orExit(
    session,
    client.roleGrantPermission(args[0], key, rangeEnd, permType),
  );
  session.authDisplay.roleGrantPermission(args[0], resp);
}

async function revokePermission(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length < 2) {
    session.exitWithError(
      ExitCode.BadArgs,
      "role revoke-permission command requires role name and key [endkey] as its argument",
    );
  }
  const { key, rangeEnd } = rangeOrExit(session, cmd, args.slice(1));
  const client = await mustClientFromCmd(session, cmd);
  const resp = await orExit(session, client.roleRevokePermission(args[0], key, rangeEnd));
  // etcdctl names the key as typed (not the "\x00" it sent for an empty one).
  session.authDisplay.roleRevokePermission(args[0], encoder.encode(args[1]), rangeEnd, resp);
}

/** A subcommand taking exactly one role name. */
function oneRoleCommand(
  session: Session,
  use: string,
  short: string,
  verb: string,
  call: (session: Session, cmd: Command, role: string) => Promise<void>,
): Command {
  return new Command({
    use,
    short,
    run: (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(
          ExitCode.BadArgs,
          `role ${verb} command requires role name as its argument`,
        );
      }
      return call(session, cmd, args[0]);
    },
  });
}

/** The `role` command group. */
export function roleCommand(session: Session): Command {
  const rc = new Command({ use: "role <subcommand>", short: "Role related commands" });
  const add = oneRoleCommand(
    session,
    "add <role name>",
    "Adds a new role",
    "add",
    async (s, c, r) => {
      const client = await mustClientFromCmd(s, c);
      s.authDisplay.roleAdd(r, await orExit(s, client.roleAdd(r)));
    },
  );
  const del = oneRoleCommand(
    session,
    "delete <role name>",
    "Deletes a role",
    "delete",
    async (s, c, r) => {
      const client = await mustClientFromCmd(s, c);
      s.authDisplay.roleDelete(r, await orExit(s, client.roleDelete(r)));
    },
  );
  const get = oneRoleCommand(
    session,
    "get <role name>",
    "Gets detailed information of a role",
    "get",
    async (s, c, r) => {
      const client = await mustClientFromCmd(s, c);
      s.authDisplay.roleGet(r, await orExit(s, client.roleGet(r)));
    },
  );
  const list = new Command({
    use: "list",
    short: "Lists all roles",
    run: async (cmd, args) => {
      if (args.length !== 0) {
        session.exitWithError(ExitCode.BadArgs, "role list command requires no arguments");
      }
      const client = await mustClientFromCmd(session, cmd);
      session.authDisplay.roleList(await orExit(session, client.roleList()));
    },
  });
  const grant = new Command({
    use: "grant-permission [options] <role name> <permission type> <key> [endkey]",
    short: "Grants a key to a role",
    run: (cmd, args) => grantPermission(session, cmd, args),
  });
  grant.flags().bool("prefix", false, "grant a prefix permission");
  grant.flags().bool(
    "from-key",
    false,
    "grant a permission of keys that are greater than or equal to the given key using byte compare",
  );
  const revoke = new Command({
    use: "revoke-permission <role name> <key> [endkey]",
    short: "Revokes a key from a role",
    run: (cmd, args) => revokePermission(session, cmd, args),
  });
  revoke.flags().bool("prefix", false, "revoke a prefix permission");
  revoke.flags().bool(
    "from-key",
    false,
    "revoke a permission of keys that are greater than or equal to the given key using byte compare",
  );
  rc.addCommand(add, del, get, list, grant, revoke);
  return rc;
}
