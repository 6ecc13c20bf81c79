/**
 * `endpoint health` and `endpoint status` (with `--cluster`), as etcdctl 3.4 runs them: health
 * probes every endpoint with its own client and a read of key "health"; status asks each
 * endpoint for Maintenance.Status and reports failures per endpoint on stderr.
 */

import { create } from "@bufbuild/protobuf";
import { Command } from "../command.ts";
import { formatGoDuration } from "../go_format.ts";
import { ExitCode, ExitSignal } from "../io.ts";
import { RangeRequestSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
import type { EpHashKV, EpHealth, EpStatus } from "../printers/mod.ts";
import {
  authCfgFromCmd,
  buildClient,
  clientFromSettings,
  commandDeadline,
  endpointsFromCmd,
  errorText,
  initDisplayFromCmd,
  mustClientFromCmd,
  secureCfgFromCmd,
  Session,
  setPflagsFromEnv,
} from "./global.ts";
import { EtcdClientError } from "../etcd_client.ts";

/** endpointsFromCluster: --endpoints as given, or every member's client URLs with --cluster. */
export async function endpointsFromCluster(session: Session, cmd: Command): Promise<string[]> {
  if (!cmd.flags().getBool("cluster")) return cmd.flags().getStringSlice("endpoints");
  const secure = secureCfgFromCmd(session, cmd);
  const eps = endpointsFromCmd(session, cmd);
  const fs = cmd.flags();
  // Member listing needs no authentication, so no password is asked for here.
  const client = await clientFromSettings(session, {
    endpoints: eps,
    dialTimeoutNs: fs.getDuration("dial-timeout"),
    keepaliveTimeNs: fs.getDuration("keepalive-time"),
    keepaliveTimeoutNs: fs.getDuration("keepalive-timeout"),
    secure,
  });
  try {
    const resp = await client.memberList({ deadlineMs: commandDeadline(cmd) });
    return resp.members.flatMap((m) => m.clientURLs);
  } catch (e) {
    if (e instanceof ExitSignal) throw e;
    session.exitWithError(
      ExitCode.Error,
      `failed to fetch endpoints from etcd cluster member list: ${errorText(e)}`,
    );
  } finally {
    client.close();
  }
}

async function epHealth(session: Session, cmd: Command): Promise<void> {
  setPflagsFromEnv(session, "ETCDCTL", cmd.inheritedFlags());
  initDisplayFromCmd(session, cmd);
  const secure = secureCfgFromCmd(session, cmd);
  const fs = cmd.flags();
  const auth = await authCfgFromCmd(session, cmd);
  const endpoints = await endpointsFromCluster(session, cmd);
  const results: EpHealth[] = [];
  await Promise.all(endpoints.map(async (ep) => {
    const client = buildClient(session, {
      endpoints: [ep],
      dialTimeoutNs: fs.getDuration("dial-timeout"),
      keepaliveTimeNs: fs.getDuration("keepalive-time"),
      keepaliveTimeoutNs: fs.getDuration("keepalive-timeout"),
      secure,
      auth,
    });
    try {
      await client.authenticate();
    } catch (e) {
      if (e instanceof ExitSignal) throw e;
      results.push({ ep, health: false, took: "", error: errorText(e) });
      return;
    }
    const start = performance.now();
    let error = "";
    let health = false;
    try {
      await client.range(create(RangeRequestSchema, { key: new TextEncoder().encode("health") }), {
        deadlineMs: commandDeadline(cmd),
      });
      health = true;
    } catch (e) {
      if (e instanceof EtcdClientError && e.isPermissionDenied()) health = true;
      else error = errorText(e);
    }
    const took = formatGoDuration(BigInt(Math.round((performance.now() - start) * 1e6)));
    results.push({ ep, health, took, error });
  }));
  session.display.endpointHealth(results);
  if (results.some((h) => h.error !== "")) {
    session.exitWithError(ExitCode.Error, "unhealthy cluster");
  }
}

async function epStatus(session: Session, cmd: Command): Promise<void> {
  const client = await mustClientFromCmd(session, cmd);
  const list: EpStatus[] = [];
  let failed = false;
  for (const ep of await endpointsFromCluster(session, cmd)) {
    try {
      const resp = await client.status(ep, { deadlineMs: commandDeadline(cmd) });
      list.push({ ep, resp });
    } catch (e) {
      failed = true;
      session.io.stderr.write(`Failed to get the status of endpoint ${ep} (${errorText(e)})\n`);
    }
  }
  session.display.endpointStatus(list);
  if (failed) throw new ExitSignal(ExitCode.Error);
}

async function epHashKV(session: Session, cmd: Command): Promise<void> {
  const client = await mustClientFromCmd(session, cmd);
  const list: EpHashKV[] = [];
  let lastError: string | undefined;
  const rev = cmd.flags().getInt64("rev");
  for (const ep of await endpointsFromCluster(session, cmd)) {
    try {
      const resp = await client.hashKV(ep, rev, { deadlineMs: commandDeadline(cmd) });
      list.push({ ep, resp });
    } catch (e) {
      lastError = errorText(e);
      session.io.stderr.write(`Failed to get the hash of endpoint ${ep} (${lastError})\n`);
    }
  }
  session.display.endpointHashKV(list);
  if (lastError !== undefined) session.exitWithError(ExitCode.Error, lastError);
}

/** The `endpoint` command group. */
export function endpointCommand(session: Session): Command {
  const ec = new Command({ use: "endpoint <subcommand>", short: "Endpoint related commands" });
  ec.persistentFlags().bool("cluster", false, "use all endpoints from the cluster member list");
  ec.addCommand(
    new Command({
      use: "health",
      short: "Checks the healthiness of endpoints specified in `--endpoints` flag",
      run: (cmd) => epHealth(session, cmd),
    }),
    new Command({
      use: "status",
      short: "Prints out the status of endpoints specified in `--endpoints` flag",
      long:
        `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
`,
      run: (cmd) => epStatus(session, cmd),
    }),
  );
  const hashkv = new Command({
    use: "hashkv",
    short: "Prints the KV history hash for each endpoint in --endpoints",
    run: (cmd) => epHashKV(session, cmd),
  });
  hashkv.persistentFlags().int64("rev", 0n, "maximum revision to hash (default: all revisions)");
  ec.addCommand(hashkv);
  return ec;
}
