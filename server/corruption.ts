/**
 * etcd 3.4's corruption checks (etcdserver/corrupt.go), between members over the peer port's
 * GET /members/hashkv:
 *
 * - `--experimental-initial-corrupt-check`: before a member that already has data serves anyone,
 *   it compares its key-space hash with each peer's hash at the same revision; a different hash
 *   at the same compact revision ends the start-up with "<id> found data inconsistency with
 *   peers".
 * - `--experimental-corrupt-check-time`: every interval the leader takes its hash, asks every
 *   peer for theirs at that revision, confirms its own (a linearizable read, then the hash again)
 *   and raises the CORRUPT alarm through the log (member ID 0, as etcd does) when a follower is
 *   ahead of it, has compacted further, or differs at the same compact revision. The alarm stops
 *   writes cluster-wide (`etcdserver: corrupt cluster`, core/node/apply/corruption_guard.ts).
 */

import { create } from "@bufbuild/protobuf";
import { Errors, EtcdError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { type EtcdNode, idHex } from "../core/node/mod.ts";
import {
  AlarmRequest_AlarmAction,
  AlarmRequestSchema,
  AlarmType,
  HashKVRequestSchema,
  RangeRequestSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { PeerHashKV } from "./peer/mod.ts";

/** Asks one peer URL for its hash at a revision (GET /members/hashkv). */
export type FetchHashKV = (url: string, revision: bigint) => Promise<PeerHashKV>;

/** The local hash at the current revision (etcd's HashByRev(0)). */
interface LocalHash {
  hash: number;
  revision: bigint;
  compactRevision: bigint;
}

async function localHash(node: EtcdNode): Promise<LocalHash> {
  const r = await node.hashKV(create(HashKVRequestSchema, { revision: 0n }));
  return { hash: r.hash, revision: r.header!.revision, compactRevision: r.compactRevision };
}

interface PeerAnswer {
  id: bigint;
  urls: string[];
  answer?: PeerHashKV;
  error?: unknown;
}

/** Each other member's hash at `revision`, trying its peer URLs in turn (getPeerHashKVs). */
async function peerHashes(
  node: EtcdNode,
  revision: bigint,
  fetch: FetchHashKV,
  logger: Logger,
): Promise<PeerAnswer[]> {
  const out: PeerAnswer[] = [];
  for (const member of node.memberInfos()) {
    if (member.id === node.memberId || member.peerUrls.length === 0) continue;
    const entry: PeerAnswer = { id: member.id, urls: member.peerUrls };
    for (const url of member.peerUrls) {
      try {
        entry.answer = await fetch(url, revision);
        break;
      } catch (e) {
        entry.error = e;
        logger.warn("etcdserver/corrupt.go:363", "failed hash kv request", {
          "local-member-id": idHex(node.memberId),
          "requested-revision": Number(revision),
          "remote-peer-endpoint": url,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
    out.push(entry);
  }
  return out;
}

/**
 * The start-up check: throws "<id> found data inconsistency with peers" when a peer at the same
 * compact revision has another hash; peers that cannot answer are logged and skipped, as in etcd.
 */
export async function checkInitialHashKV(
  node: EtcdNode,
  fetch: FetchHashKV,
  logger: Logger,
  timeoutMs: number,
): Promise<void> {
  const self = idHex(node.memberId);
  logger.info("etcdserver/corrupt.go:47", "starting initial corruption check", {
    "local-member-id": self,
    timeout: `${timeoutMs / 1000}s`,
  });
  const local = await localHash(node);
  let mismatch = 0;
  for (const peer of await peerHashes(node, local.revision, fetch, logger)) {
    const base = {
      "local-member-id": self,
      "local-member-revision": Number(local.revision),
      "local-member-compact-revision": Number(local.compactRevision),
      "local-member-hash": local.hash,
    };
    if (peer.answer !== undefined) {
      const a = peer.answer;
      if (a.hash === local.hash) continue;
      const fields = {
        ...base,
        "remote-peer-id": idHex(peer.id),
        "remote-peer-endpoints": peer.urls,
        "remote-peer-revision": Number(a.revision),
        "remote-peer-compact-revision": Number(a.compactRevision),
        "remote-peer-hash": a.hash,
      };
      if (a.compactRevision === local.compactRevision) {
        logger.warn(
          "etcdserver/corrupt.go:80",
          "found different hash values from remote peer",
          fields,
        );
        mismatch++;
      } else {
        logger.warn(
          "etcdserver/corrupt.go:87",
          "found different compact revision values from remote peer",
          fields,
        );
      }
      continue;
    }
    const error = peer.error;
    const known = error instanceof EtcdError &&
      (error.message === Errors.futureRev().message ||
        error.message === Errors.compacted().message);
    if (!known) continue;
    const fields = {
      ...base,
      "remote-peer-id": idHex(peer.id),
      "remote-peer-endpoints": peer.urls,
      error: error.message,
    };
    if (error.message === Errors.futureRev().message) {
      logger.warn("etcdserver/corrupt.go:101", "cannot fetch hash from slow remote peer", fields);
    } else {
      logger.warn(
        "etcdserver/corrupt.go:116",
        "cannot fetch hash from remote peer; local member is behind",
        fields,
      );
    }
  }
  if (mismatch > 0) throw new Error(`${self} found data inconsistency with peers`);
  logger.info("etcdserver/corrupt.go:137", "initial corruption checking passed; no corruption", {
    "local-member-id": self,
  });
}

/**
 * One pass of the leader's periodic check (etcd's checkHashKV); resolves to whether it raised the
 * CORRUPT alarm.
 */
export async function checkHashKV(
  node: EtcdNode,
  fetch: FetchHashKV,
  logger: Logger,
): Promise<boolean> {
  const first = await localHash(node);
  const peers = await peerHashes(node, first.revision, fetch, logger);
  // A linearizable read: everything committed before the peers answered is applied here.
  await node.range(
    create(RangeRequestSchema, { key: new Uint8Array([0]), keysOnly: true, limit: 1n }),
  );
  const second = await localHash(node);
  let alarmed = false;
  const mismatch = () => {
    if (alarmed) return;
    alarmed = true;
    node.alarm(create(AlarmRequestSchema, {
      memberID: 0n,
      action: AlarmRequest_AlarmAction.ACTIVATE,
      alarm: AlarmType.CORRUPT,
    })).catch(() => {});
  };
  if (
    second.hash !== first.hash && second.revision === first.revision &&
    second.compactRevision === first.compactRevision
  ) {
    logger.warn("etcdserver/corrupt.go:226", "found hash mismatch", {
      "revision-1": Number(first.revision),
      "compact-revision-1": Number(first.compactRevision),
      "hash-1": first.hash,
      "revision-2": Number(second.revision),
      "compact-revision-2": Number(second.compactRevision),
      "hash-2": second.hash,
    });
    mismatch();
  }
  let checked = 0;
  for (const peer of peers) {
    const a = peer.answer;
    if (a === undefined) continue;
    checked++;
    if (a.revision > second.revision) {
      logger.warn(
        "etcdserver/corrupt.go:251",
        "revision from follower must be less than or equal to leader's",
        {
          "leader-revision": Number(second.revision),
          "follower-revision": Number(a.revision),
          "follower-peer-id": idHex(peer.id),
        },
      );
      mismatch();
    }
    if (a.compactRevision > second.compactRevision) {
      logger.warn(
        "etcdserver/corrupt.go:270",
        "compact revision from follower must be less than or equal to leader's",
        {
          "leader-compact-revision": Number(second.compactRevision),
          "follower-compact-revision": Number(a.compactRevision),
          "follower-peer-id": idHex(peer.id),
        },
      );
      mismatch();
    }
    if (a.compactRevision === first.compactRevision && a.hash !== first.hash) {
      logger.warn("etcdserver/corrupt.go:290", "same compact revision then hashes must match", {
        "leader-compact-revision": Number(second.compactRevision),
        "leader-hash": first.hash,
        "follower-compact-revision": Number(a.compactRevision),
        "follower-hash": a.hash,
        "follower-peer-id": idHex(peer.id),
      });
      mismatch();
    }
  }
  logger.info("etcdserver/corrupt.go:311", "finished peer corruption check", {
    "number-of-peers-checked": checked,
  });
  return alarmed;
}

/** Runs checkHashKV every `intervalMs` while this member leads (monitorKVHash); returns a stop. */
export function startCorruptionMonitor(
  node: EtcdNode,
  intervalMs: number,
  fetch: FetchHashKV,
  logger: Logger,
): () => void {
  logger.info("etcdserver/corrupt.go:155", "enabled corruption checking", {
    "local-member-id": idHex(node.memberId),
    interval: `${intervalMs / 1000}s`,
  });
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const loop = () => {
    timer = setTimeout(async () => {
      if (stopped) return;
      if (node.leader === node.memberId) {
        try {
          await checkHashKV(node, fetch, logger);
        } catch (e) {
          logger.warn("etcdserver/corrupt.go:175", "failed to check hash KV", {
            error: e instanceof Error ? e.message : String(e),
          });
        }
      }
      if (!stopped) loop();
    }, intervalMs);
  };
  loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
