/**
 * The `member` command group (ctlv3/command/member_command.go): add, remove, update, list and
 * promote. Argument errors exit 128 before any connection is made; the peer URLs of add and
 * update are checked like clientv3 does (after the client exists, exit 1); server refusals exit 1
 * with etcd's own message.
 */

import { Command } from "../command.ts";
import { GoNumError, goQuote, parseGoUint } from "../go_format.ts";
import { peerURLsError } from "../go_url.ts";
import { ExitCode } from "../io.ts";
import { SimplePrinter } from "../printers/mod.ts";
import { commandDeadline, mustClientFromCmd, orExit, type Session } from "./global.ts";

/** The member ID argument of remove, update and promote, parsed as etcdctl does (hex uint64). */
function memberIdArg(session: Session, args: string[]): bigint {
  if (args.length !== 1) session.exitWithError(ExitCode.BadArgs, "member ID is not provided");
  try {
    return parseGoUint(args[0], 16, 64);
  } catch (e) {
    if (!(e instanceof GoNumError)) throw e;
    session.exitWithError(
      ExitCode.BadArgs,
      `bad member ID arg (${e.message}), expecting ID in Hex`,
    );
  }
}

/**
 * --peer-urls of add and update: the flag as given and its URLs split on commas; an empty flag
 * exits 128 before any connection. The URLs are checked later (checkedPeerURLs), once the client
 * exists, as clientv3 does.
 */
function peerURLsFlag(session: Session, cmd: Command): { flag: string; urls: string[] } {
  const flag = cmd.flags().getString("peer-urls");
  if (flag.length === 0) session.exitWithError(ExitCode.BadArgs, "member peer urls not provided");
  return { flag, urls: flag.split(",") };
}

/** The URLs of --peer-urls, split on commas and validated like clientv3's types.NewURLs. */
function checkedPeerURLs(session: Session, urls: string[]): string[] {
  const problem = peerURLsError(urls);
  if (problem !== undefined) session.exitWithError(ExitCode.Error, problem);
  return urls;
}

async function memberAdd(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length < 1) session.exitWithError(ExitCode.BadArgs, "member name not provided");
  if (args.length > 1) {
    let ev = "too many arguments";
    for (const s of args) {
      if (s.toLowerCase().startsWith("http")) ev += `, did you mean --peer-urls=${s}`;
    }
    session.exitWithError(ExitCode.BadArgs, ev);
  }
  const newMemberName = args[0];
  const { flag: peerURLs, urls } = peerURLsFlag(session, cmd);
  const deadlineMs = commandDeadline(cmd);
  const client = await mustClientFromCmd(session, cmd);
  checkedPeerURLs(session, urls);
  const resp = await orExit(
    session,
    client.memberAdd(urls, cmd.flags().getBool("learner"), { deadlineMs }),
  );
  const newId = resp.member?.ID ?? 0n;
  session.display.memberAdd(resp);
  if (!(session.display instanceof SimplePrinter)) return;
  // What the new member needs to start with: the cluster in the server's member order, the
  // new member (still nameless on the server) under the name given here, others as they are
  // named (empty for members that have not started yet).
  const conf: string[] = [];
  for (const m of resp.members) {
    for (const u of m.peerURLs) conf.push(`${m.ID === newId ? newMemberName : m.name}=${u}`);
  }
  session.io.stdout.write(
    "\n" +
      `ETCD_NAME=${goQuote(newMemberName)}\n` +
      `ETCD_INITIAL_CLUSTER=${goQuote(conf.join(","))}\n` +
      `ETCD_INITIAL_ADVERTISE_PEER_URLS=${goQuote(peerURLs)}\n` +
      `ETCD_INITIAL_CLUSTER_STATE="existing"\n`,
  );
}

async function memberRemove(session: Session, cmd: Command, args: string[]): Promise<void> {
  const id = memberIdArg(session, args);
  const deadlineMs = commandDeadline(cmd);
  const client = await mustClientFromCmd(session, cmd);
  const resp = await orExit(session, client.memberRemove(id, { deadlineMs }));
  session.display.memberRemove(id, resp);
}

async function memberUpdate(session: Session, cmd: Command, args: string[]): Promise<void> {
  const id = memberIdArg(session, args);
  const { urls } = peerURLsFlag(session, cmd);
  const deadlineMs = commandDeadline(cmd);
  const client = await mustClientFromCmd(session, cmd);
  checkedPeerURLs(session, urls);
  const resp = await orExit(session, client.memberUpdate(id, urls, { deadlineMs }));
  session.display.memberUpdate(id, resp);
}

async function memberPromote(session: Session, cmd: Command, args: string[]): Promise<void> {
  const id = memberIdArg(session, args);
  const deadlineMs = commandDeadline(cmd);
  const client = await mustClientFromCmd(session, cmd);
  const resp = await orExit(session, client.memberPromote(id, { deadlineMs }));
  session.display.memberPromote(id, resp);
}

/** The `member` command group. */
export function memberCommand(session: Session): Command {
  const mc = new Command({ use: "member <subcommand>", short: "Membership related commands" });
  const add = new Command({
    use: "add <memberName> [options]",
    short: "Adds a member into the cluster",
    run: (cmd, args) => memberAdd(session, cmd, args),
  });
  add.flags().string("peer-urls", "", "comma separated peer URLs for the new member.");
  add.flags().bool("learner", false, "indicates if the new member is raft learner");
  const remove = new Command({
    use: "remove <memberID>",
    short: "Removes a member from the cluster",
    run: (cmd, args) => memberRemove(session, cmd, args),
  });
  const update = new Command({
    use: "update <memberID> [options]",
    short: "Updates a member in the cluster",
    run: (cmd, args) => memberUpdate(session, cmd, args),
  });
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
  const promote = new Command({
    use: "promote <memberID>",
    short: "Promotes a non-voting member in the cluster",
    long: `Promotes a non-voting learner member to a voting one in the cluster.
`,
    run: (cmd, args) => memberPromote(session, cmd, args),
  });
  mc.addCommand(add, remove, update, list, promote);
  return mc;
}
