/**
 * `lock` and `elect` as etcdctl 3.4.23 runs them (lock_command.go, elect_command.go): a
 * clientv3/concurrency session (a lease kept alive in the background) and the mutex or election
 * recipe of core/concurrency over detcdctl's client. SIGINT and SIGTERM release the lock or
 * resign and end the run with status 0, as etcdctl's signal handlers do.
 */

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Command } from "../command.ts";
import type { EtcdClient } from "../etcd_client.ts";
import { ExitCode, ExitSignal, flushStdout } from "../io.ts";
import {
  DeleteRangeRequestSchema,
  type DeleteRangeResponse,
  RangeRequestSchema,
  type RangeResponse,
  RangeResponseSchema,
  TxnRequestSchema,
  type TxnResponse,
  WatchRequestSchema,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import {
  campaign,
  lockMutex,
  observeElection,
  type RecipeClient,
  resign,
} from "../../core/concurrency/recipes.ts";
import { runCommand } from "./exec.ts";
import { keepAliveLoop } from "./lease.ts";
import { mustClientFromCmd, orExit, type Session } from "./global.ts";

const encoder = new TextEncoder();

/** Go's context.Canceled, as the recipes report a call given up. */
class Canceled extends Error {
  constructor() {
    super("context canceled");
  }
}

/** The recipes' client over detcdctl's, bound to `signal` (etcdctl's cancellable context). */
function recipeClient(client: EtcdClient, signal?: AbortSignal): RecipeClient {
  const opts = { signal };
  const guard = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (e) {
      if (signal?.aborted) throw new Canceled();
      throw e;
    }
  };
  return {
    range: (init: MessageInitShape<typeof RangeRequestSchema>): Promise<RangeResponse> =>
      guard(client.range(create(RangeRequestSchema, init), opts)),
    txn: (init: MessageInitShape<typeof TxnRequestSchema>): Promise<TxnResponse> =>
      guard(client.txn(create(TxnRequestSchema, init), opts)),
    deleteKey: (key: Uint8Array): Promise<DeleteRangeResponse> =>
      guard(client.deleteRange(create(DeleteRangeRequestSchema, { key }), opts)),
    async watch(key, rangeEnd, startRevision, onEvents): Promise<void> {
      if (signal?.aborted) throw new Canceled();
      const stream = await guard(client.watchStream(false, opts));
      const onAbort = () => stream.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        stream.send(create(WatchRequestSchema, {
          requestUnion: { case: "createRequest", value: { key, rangeEnd, startRevision } },
        }));
        for (;;) {
          let res: WatchResponse | undefined;
          try {
            res = await stream.receive();
          } catch (e) {
            if (signal?.aborted) throw new Canceled();
            throw client.streamError(e);
          }
          if (signal?.aborted) throw new Canceled();
          if (res === undefined) throw new Error("lost watcher waiting for delete");
          if (res.canceled) throw new Error(res.cancelReason || "watch canceled");
          if (res.events.length > 0 && await onEvents(res)) return;
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        stream.cancel();
      }
    },
  };
}

/** concurrency.NewSession: a lease of `ttl` seconds kept alive until `close`. */
async function newSession(session: Session, client: EtcdClient, ttl: bigint) {
  const grant = await orExit(session, client.leaseGrant(ttl));
  const stop = new AbortController();
  const done = keepAliveLoop(session, client, grant.ID, () => {}, stop.signal);
  return {
    lease: grant.ID,
    /** Resolves when the lease could no longer be kept alive (etcdctl's s.Done()). */
    done,
    close: async () => {
      stop.abort();
      await done;
    },
  };
}

/** etcdctl's SIGINT/SIGTERM handler: aborts `controller`; `remove` uninstalls it. */
function onInterrupt(controller: AbortController): { remove: () => void } {
  const handler = () => controller.abort();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, handler);
  return { remove: () => signals.forEach((s) => Deno.removeSignalListener(s, handler)) };
}

/** Waits for the signal or the session's end; true when it was the signal. */
function signalledOrExpired(interrupted: AbortSignal, expired: Promise<void>): Promise<boolean> {
  return new Promise((resolve) => {
    if (interrupted.aborted) return resolve(true);
    interrupted.addEventListener("abort", () => resolve(true), { once: true });
    expired.then(() => resolve(false));
  });
}

/** `lock <lockname> [exec-command arg1 arg2 ...]`. */
export function lockCommand(session: Session): Command {
  const cmd = new Command({
    use: "lock <lockname> [exec-command arg1 arg2 ...]",
    short: "Acquires a named lock",
    run: async (cmd, args) => {
      if (args.length === 0) {
        session.exitWithError(
          ExitCode.BadArgs,
          "lock takes a lock name argument and an optional command to execute",
        );
      }
      const ttl = cmd.flags().getInt64("ttl");
      const client = await mustClientFromCmd(session, cmd);
      const s = await newSession(session, client, ttl);
      const interrupt = new AbortController();
      const handler = onInterrupt(interrupt);
      try {
        const held = await orExit(
          session,
          lockMutex(
            recipeClient(client, interrupt.signal),
            recipeClient(client),
            encoder.encode(args[0]),
            s.lease,
            false,
          ),
        );
        const unlock = () => orExit(session, recipeClient(client).deleteKey(held.key));
        const execArgs = args.slice(1);
        if (execArgs.length > 0) {
          flushStdout(session.io);
          const env: Record<string, string> = {
            ETCD_LOCK_KEY: new TextDecoder().decode(held.key),
            ETCD_LOCK_REV: String(held.header.revision),
            ...Object.fromEntries(session.io.env),
          };
          const err = await runCommand(execArgs, env);
          await unlock();
          if (err !== undefined) session.exitWithError(ExitCode.Error, err);
          return;
        }
        const k = await orExit(
          session,
          recipeClient(client, interrupt.signal).range({ key: held.key }),
        );
        if (k.kvs.length === 0) session.exitWithError(ExitCode.Error, "lock lost on init");
        session.display.get(k);
        flushStdout(session.io);
        if (await signalledOrExpired(interrupt.signal, s.done)) {
          await unlock();
          return;
        }
        session.exitWithError(ExitCode.Error, "session expired");
      } finally {
        handler.remove();
        await s.close();
        client.close();
      }
    },
  });
  cmd.flags().int("ttl", 10n, "timeout for session");
  return cmd;
}

/** `elect <election-name> [proposal]`. */
export function electCommand(session: Session): Command {
  const cmd = new Command({
    use: "elect <election-name> [proposal]",
    short: "Observes and participates in leader election",
    run: async (cmd, args) => {
      if (args.length !== 1 && args.length !== 2) {
        session.exitWithError(
          ExitCode.BadArgs,
          "elect takes one election name argument and an optional proposal argument",
        );
      }
      const listen = cmd.flags().getBool("listen");
      if (args.length === 1 && !listen) {
        session.exitWithError(ExitCode.BadArgs, "no proposal argument but -l not set");
      }
      if (args.length === 2 && listen) {
        session.exitWithError(ExitCode.BadArgs, "proposal given but -l is set");
      }
      const client = await mustClientFromCmd(session, cmd);
      // concurrency.NewSession's default TTL; observers open a session too, as etcdctl's do.
      const s = await newSession(session, client, 60n);
      const interrupt = new AbortController();
      const handler = onInterrupt(interrupt);
      const name = encoder.encode(args[0]);
      try {
        if (args.length === 1) {
          try {
            await observeElection(
              recipeClient(client, interrupt.signal),
              name,
              (header, kv, range) => {
                session.display.get(create(RangeResponseSchema, {
                  header,
                  kvs: [kv],
                  count: range?.count ?? 0n,
                  more: range?.more ?? false,
                }));
                flushStdout(session.io);
                return Promise.resolve();
              },
              () => interrupt.signal.aborted,
            );
          } catch (e) {
            if (e instanceof ExitSignal) throw e;
          }
          if (!interrupt.signal.aborted) {
            session.exitWithError(ExitCode.Error, "elect: observer lost");
          }
          return;
        }
        const { leader } = await orExit(
          session,
          campaign(
            recipeClient(client, interrupt.signal),
            recipeClient(client),
            name,
            encoder.encode(args[1]),
            s.lease,
            () => interrupt.signal.aborted,
          ),
        );
        const resp = await orExit(
          session,
          recipeClient(client, interrupt.signal).range({ key: leader.key }),
        );
        session.display.get(resp);
        flushStdout(session.io);
        if (!await signalledOrExpired(interrupt.signal, s.done)) {
          session.exitWithError(ExitCode.Error, "elect: session expired");
        }
        await orExit(session, resign(recipeClient(client), leader));
      } finally {
        handler.remove();
        await s.close();
        client.close();
      }
    },
  });
  cmd.flags().bool("listen", false, "observation mode", "l");
  return cmd;
}
