/**
 * `make-mirror` as etcdctl 3.4.23 runs it (make_mirror_command.go with clientv3/mirror's syncer):
 * every key under `--prefix` at the current revision is put into the destination (pages of
 * 1000), then the source is watched from the next revision and each revision's events are
 * applied there in one transaction. The first occurrence of the prefix in a key becomes
 * `--dest-prefix` (the prefix itself by default, nothing with `--no-dest-prefix`). The number of
 * keys mirrored so far is printed every 30 seconds. It runs until interrupted or failed.
 */

import { create } from "@bufbuild/protobuf";
import { Command } from "../command.ts";
import type { EtcdClient } from "../etcd_client.ts";
import { ExitCode, ExitSignal } from "../io.ts";
import {
  PutRequestSchema,
  RangeRequestSchema,
  type RequestOp,
  RequestOpSchema,
  TxnRequestSchema,
  WatchRequestSchema,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType } from "../../gen/mvccpb/kv_pb.ts";
import { concatBytes, prefixRangeEnd } from "../../core/bytes.ts";
import { clientFromSettings, errorText, mustClientFromCmd, type Session } from "./global.ts";

/** clientv3/mirror's batchLimit. */
const BATCH_LIMIT = 1000n;
const encoder = new TextEncoder();

/** strings.Replace(key, old, new, 1) on bytes (an empty `old` puts `new` in front). */
function replaceFirst(key: Uint8Array, old: Uint8Array, by: Uint8Array): Uint8Array {
  outer: for (let i = 0; i + old.length <= key.length; i++) {
    for (let j = 0; j < old.length; j++) if (key[i + j] !== old[j]) continue outer;
    return concatBytes(key.subarray(0, i), by, key.subarray(i + old.length));
  }
  return key;
}

/** The `make-mirror` command. */
export function makeMirrorCommand(session: Session): Command {
  const cmd = new Command({
    use: "make-mirror [options] <destination>",
    short: "Makes a mirror at the destination etcd cluster",
    run: async (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(ExitCode.BadArgs, "make-mirror takes one destination argument");
      }
      const fs = cmd.flags();
      // The destination first, as etcdctl dials it: no auth, its own TLS flags.
      const dest = await clientFromSettings(session, {
        endpoints: [args[0]],
        dialTimeoutNs: fs.getDuration("dial-timeout"),
        keepaliveTimeNs: fs.getDuration("keepalive-time"),
        keepaliveTimeoutNs: fs.getDuration("keepalive-timeout"),
        secure: {
          cert: fs.getString("dest-cert"),
          key: fs.getString("dest-key"),
          cacert: fs.getString("dest-cacert"),
          serverName: "",
          insecureTransport: fs.getBool("dest-insecure-transport"),
          insecureSkipVerify: false,
        },
      });
      const source = await mustClientFromCmd(session, cmd);
      let total = 0;
      const ticker = setInterval(() => session.io.stdout.write(`${total}\n`), 30_000);
      try {
        const err = await mirror(session, cmd, source, dest, () => total++);
        session.exitWithError(ExitCode.Error, err);
      } finally {
        clearInterval(ticker);
      }
    },
  });
  const f = cmd.flags();
  f.string("prefix", "", "Key-value prefix to mirror");
  f.string(
    "dest-prefix",
    "",
    "destination prefix to mirror a prefix to a different prefix in the destination cluster",
  );
  f.bool("no-dest-prefix", false, "mirror key-values to the root of the destination cluster");
  f.string(
    "dest-cert",
    "",
    "Identify secure client using this TLS certificate file for the destination cluster",
  );
  f.string("dest-key", "", "Identify secure client using this TLS key file");
  f.string(
    "dest-cacert",
    "",
    "Verify certificates of TLS enabled secure servers using this CA bundle",
  );
  f.bool("dest-insecure-transport", true, "Disable transport security for client connections");
  return cmd;
}

/** makeMirror: returns the error text it ended with. */
async function mirror(
  session: Session,
  cmd: Command,
  source: EtcdClient,
  dest: EtcdClient,
  count: () => void,
): Promise<string> {
  const fs = cmd.flags();
  const prefixText = fs.getString("prefix");
  const prefix = encoder.encode(prefixText);
  try {
    // SyncBase: the revision to mirror at, from a read of "foo" as clientv3's syncer does.
    const probe = await source.range(create(RangeRequestSchema, { key: encoder.encode("foo") }));
    const revision = probe.header!.revision;
    const noDestPrefix = fs.getBool("no-dest-prefix");
    let destPrefixText = fs.getString("dest-prefix");
    if (noDestPrefix && destPrefixText.length > 0) {
      session.exitWithError(
        ExitCode.BadArgs,
        "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
      );
    }
    if (!noDestPrefix && destPrefixText.length === 0) destPrefixText = prefixText;
    const destPrefix = encoder.encode(destPrefixText);
    const rename = (key: Uint8Array) => replaceFirst(key, prefix, destPrefix);

    let key: Uint8Array = prefix.length === 0 ? new Uint8Array([0]) : prefix;
    const rangeEnd = prefix.length === 0 ? new Uint8Array([0]) : prefixRangeEnd(prefix);
    for (;;) {
      const page = await source.range(create(RangeRequestSchema, {
        key,
        rangeEnd,
        limit: BATCH_LIMIT,
        revision,
      }));
      for (const kv of page.kvs) {
        await dest.put(create(PutRequestSchema, { key: rename(kv.key), value: kv.value }));
        count();
      }
      if (!page.more) break;
      key = concatBytes(page.kvs[page.kvs.length - 1].key, new Uint8Array([0]));
    }

    // SyncUpdates: every change after that revision, one transaction per revision.
    let next = revision + 1n;
    for (;;) {
      const stream = await source.watchStream(false);
      stream.send(create(WatchRequestSchema, {
        requestUnion: {
          case: "createRequest",
          value: {
            key: prefix.length === 0 ? new Uint8Array([0]) : prefix,
            rangeEnd,
            startRevision: next,
          },
        },
      }));
      try {
        for (;;) {
          const res: WatchResponse | undefined = await stream.receive();
          if (res === undefined) break;
          if (res.compactRevision !== 0n) {
            return "etcdserver: mvcc: required revision has been compacted";
          }
          if (res.canceled) return res.cancelReason || "watch canceled";
          let ops: RequestOp[] = [];
          let lastRev = 0n;
          const flush = async () => {
            await dest.txn(create(TxnRequestSchema, { success: ops }));
            ops = [];
          };
          for (const ev of res.events) {
            const kv = ev.kv!;
            if (lastRev !== 0n && kv.modRevision > lastRev) await flush();
            lastRev = kv.modRevision;
            ops.push(create(RequestOpSchema, {
              request: ev.type === Event_EventType.DELETE
                ? { case: "requestDeleteRange", value: { key: rename(kv.key) } }
                : { case: "requestPut", value: { key: rename(kv.key), value: kv.value } },
            }));
            count();
            next = kv.modRevision + 1n;
          }
          if (ops.length > 0) await flush();
        }
      } catch (e) {
        if (e instanceof ExitSignal) throw e;
        // The stream broke: clientv3 resumes the watch where it was.
      } finally {
        stream.cancel();
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (e) {
    if (e instanceof ExitSignal) throw e;
    return errorText(e);
  }
}
