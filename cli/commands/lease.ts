/**
 * `lease grant|revoke|timetolive|list|keep-alive` as etcdctl 3.4.23 runs them (lease_command.go),
 * with clientv3's keep-alive machinery (lease.go): one LeaseKeepAlive stream, a renewal sent
 * every 500 ms tick once a third of the TTL has passed, the stream reopened after errors, and the
 * keep-alive ending when the server answers TTL <= 0 or stays silent past the deadline.
 */

import { create } from "@bufbuild/protobuf";
import { Command } from "../command.ts";
import type { EtcdClient } from "../etcd_client.ts";
import { parseGoInt } from "../go_format.ts";
import { ExitCode, ExitSignal } from "../io.ts";
import {
  type LeaseKeepAliveRequest,
  LeaseKeepAliveRequestSchema,
  type LeaseKeepAliveResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { type BidiStream, Code } from "../grpc_client.ts";
import { SimplePrinter } from "../printers/mod.ts";
import { goHexInt64Zero16 } from "../printers/printer.ts";
import { commandDeadline, errorText, mustClientFromCmd, orExit, type Session } from "./global.ts";

/** clientv3's retryConnWait: the keep-alive send tick and the stream retry delay. */
const RETRY_CONN_WAIT_MS = 500;

/** leaseFromArgs: a lease ID in hex, as an int64. */
export function leaseFromArgs(session: Session, arg: string): bigint {
  try {
    return parseGoInt(arg, 16, 64);
  } catch (e) {
    session.exitWithError(
      ExitCode.BadArgs,
      `bad lease ID arg (${(e as Error).message}), expecting ID in Hex`,
    );
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * clientv3's KeepAliveOnce: one request on a fresh stream, retried on errors that are not
 * final; a TTL <= 0 answer is "requested lease not found".
 */
async function keepAliveOnce(client: EtcdClient, id: bigint): Promise<LeaseKeepAliveResponse> {
  for (;;) {
    let stream: BidiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse> | undefined;
    try {
      stream = await client.leaseKeepAliveStream();
      stream.send(create(LeaseKeepAliveRequestSchema, { ID: id }));
      const resp = await stream.receive();
      if (resp === undefined) throw client.streamError(new Error("EOF"));
      if (resp.TTL <= 0n) {
        throw client.streamError(new Error("etcdserver: requested lease not found"));
      }
      return resp;
    } catch (e) {
      const err = client.streamError(e);
      // isHaltErr: anything but Unavailable ends the attempt for good.
      if (err.grpc === undefined || err.grpc.code !== Code.Unavailable) throw err;
      await sleep(RETRY_CONN_WAIT_MS);
    } finally {
      stream?.cancel();
    }
  }
}

/**
 * clientv3's KeepAlive channel for one lease, each answer handed to `onResponse` (printed by
 * default); resolves when the channel closes (lease expired or revoked, no answer within the
 * deadline, or `stop` aborted).
 */
export async function keepAliveLoop(
  session: Session,
  client: EtcdClient,
  id: bigint,
  onResponse: (resp: LeaseKeepAliveResponse) => void = (resp) => session.display.keepAlive(resp),
  stop?: AbortSignal,
): Promise<void> {
  const firstTimeoutMs = client.dialTimeoutMs() + 1000 === 1000
    ? 5000
    : client.dialTimeoutMs() + 1000;
  let deadline = Date.now() + firstTimeoutMs;
  let nextKeepAlive = Date.now();
  let stream: BidiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse> | undefined;
  let finished = false;
  let fatal: ExitSignal | undefined;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => finish = resolve);
  const end = () => {
    if (finished) return;
    finished = true;
    finish();
  };
  const sendDue = () => {
    if (stream && nextKeepAlive <= Date.now()) {
      stream.send(create(LeaseKeepAliveRequestSchema, { ID: id }));
    }
  };
  stop?.addEventListener("abort", () => end(), { once: true });
  if (stop?.aborted) end();
  const tick = setInterval(() => {
    if (Date.now() > deadline) end();
    else sendDue();
  }, RETRY_CONN_WAIT_MS);

  const recvLoop = async () => {
    while (!finished) {
      try {
        stream = await client.leaseKeepAliveStream();
      } catch {
        stream = undefined;
        await sleep(RETRY_CONN_WAIT_MS);
        continue;
      }
      sendDue();
      try {
        for (;;) {
          const resp = await stream.receive();
          if (resp === undefined || finished) break;
          if (resp.ID !== id) continue;
          if (resp.TTL <= 0n) {
            end();
            break;
          }
          const ttlMs = Number(resp.TTL) * 1000;
          nextKeepAlive = Date.now() + ttlMs / 3;
          deadline = Date.now() + ttlMs;
          onResponse(resp);
        }
      } catch (e) {
        if (e instanceof ExitSignal) {
          // the printer ended the run (an unsupported output format)
          fatal = e;
          end();
          return;
        }
        // the stream broke: reopen it after the retry delay
      }
      stream?.cancel();
      stream = undefined;
      if (!finished) await sleep(RETRY_CONN_WAIT_MS);
    }
  };
  const loop = recvLoop();
  await done;
  clearInterval(tick);
  stream?.cancel();
  await Promise.race([loop, sleep(0)]);
  if (fatal) throw fatal;
}

/** The `lease` command group. */
export function leaseCommand(session: Session): Command {
  const grant = new Command({
    use: "grant <ttl>",
    short: "Creates leases",
    run: async (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(ExitCode.BadArgs, "lease grant command needs TTL argument");
      }
      let ttl: bigint;
      try {
        ttl = parseGoInt(args[0], 10, 64);
      } catch (e) {
        session.exitWithError(ExitCode.BadArgs, `bad TTL (${(e as Error).message})`);
      }
      const deadlineMs = commandDeadline(cmd);
      const client = await mustClientFromCmd(session, cmd);
      let resp;
      try {
        resp = await client.leaseGrant(ttl, { deadlineMs });
      } catch (e) {
        session.exitWithError(ExitCode.Error, `failed to grant lease (${errorText(e)})`);
      }
      session.display.grant(resp);
    },
  });

  const revoke = new Command({
    use: "revoke <leaseID>",
    short: "Revokes leases",
    run: async (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(ExitCode.BadArgs, "lease revoke command needs 1 argument");
      }
      const id = leaseFromArgs(session, args[0]);
      const deadlineMs = commandDeadline(cmd);
      const client = await mustClientFromCmd(session, cmd);
      let resp;
      try {
        resp = await client.leaseRevoke(id, { deadlineMs });
      } catch (e) {
        session.exitWithError(ExitCode.Error, `failed to revoke lease (${errorText(e)})`);
      }
      session.display.revoke(id, resp);
    },
  });

  const timetolive = new Command({
    use: "timetolive <leaseID> [options]",
    short: "Get lease information",
    run: async (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(
          ExitCode.BadArgs,
          "lease timetolive command needs lease ID as argument",
        );
      }
      const keys = cmd.flags().getBool("keys");
      // Go evaluates the client first, then the lease ID argument.
      const client = await mustClientFromCmd(session, cmd);
      const id = leaseFromArgs(session, args[0]);
      const resp = await orExit(session, client.leaseTimeToLive(id, keys), ExitCode.BadConnection);
      session.display.timeToLive(resp, keys);
    },
  });
  timetolive.flags().bool("keys", false, "Get keys attached to this lease");

  const list = new Command({
    use: "list",
    short: "List all active leases",
    run: async (cmd) => {
      const client = await mustClientFromCmd(session, cmd);
      const resp = await orExit(session, client.leaseLeases(), ExitCode.BadConnection);
      session.display.leases(resp);
    },
  });

  const keepAlive = new Command({
    use: "keep-alive [options] <leaseID>",
    short: "Keeps leases alive (renew)",
    run: async (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(
          ExitCode.BadArgs,
          "lease keep-alive command needs lease ID as argument",
        );
      }
      const id = leaseFromArgs(session, args[0]);
      const client = await mustClientFromCmd(session, cmd);
      if (cmd.flags().getBool("once")) {
        const resp = await orExit(session, keepAliveOnce(client, id), ExitCode.BadConnection);
        session.display.keepAlive(resp);
        return;
      }
      await keepAliveLoop(session, client, id);
      if (session.display instanceof SimplePrinter) {
        session.io.stdout.write(`lease ${goHexInt64Zero16(id)} expired or revoked.\n`);
      }
    },
  });
  keepAlive.flags().bool(
    "once",
    false,
    "Resets the keep-alive time to its original value and exits immediately",
  );

  const lease = new Command({ use: "lease <subcommand>", short: "Lease related commands" });
  lease.addCommand(grant, revoke, timetolive, list, keepAlive);
  return lease;
}
