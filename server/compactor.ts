/**
 * Auto-compaction (`--auto-compaction-mode periodic|revision`, `--auto-compaction-retention`), as
 * etcd 3.4's v3compactor runs it on the leader:
 *
 * - periodic, retention P (hours when a bare number, else a Go duration): every P/10 (at most
 *   6 minutes) the current revision is recorded; once P has passed since the last compaction
 *   (then every min(P, 1h)) the revision recorded P ago is compacted.
 * - revision, retention N: every 5 minutes, revision - N is compacted when positive and new.
 *
 * Only the leader compacts (etcd pauses its compactor on followers); compactions go through Raft
 * like a client's Compact. The log lines are etcd's.
 */
import { create } from "@bufbuild/protobuf";
import { CompactionRequestSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdNode } from "../core/node/mod.ts";
import type { Logger } from "../core/log.ts";
import { Errors, isEtcdError } from "../core/errors.ts";
import { formatGoDuration, parseGoDuration } from "../cli/go_format.ts";

/** The modes etcd accepts. */
export type CompactionMode = "periodic" | "revision";

const NS_PER_MS = 1_000_000n;
const HOUR_NS = 3_600_000_000_000n;

/** etcd's revision-mode interval (v3compactor revInterval). */
export const REVISION_INTERVAL_MS = 5 * 60 * 1000;

/**
 * embed.parseCompactionRetention: a non-negative integer is hours (periodic) or revisions
 * (revision); anything else is a Go duration (in revision mode too, as etcd reads it: in
 * nanoseconds, taken as a revision count). Returns nanoseconds or revisions.
 */
export function parseCompactionRetention(mode: CompactionMode, retention: string): bigint {
  if (/^[+-]?\d+$/.test(retention) && BigInt(retention) >= 0n && retention.length < 19) {
    const n = BigInt(retention);
    return mode === "revision" ? n : n * HOUR_NS;
  }
  try {
    return parseGoDuration(retention);
  } catch (e) {
    throw new Error(`error parsing CompactionRetention: ${(e as Error).message}`);
  }
}

/** A running compactor. */
export interface Compactor {
  stop(): void;
}

/** Starts the compactor `mode` asks for; none when the retention is 0. */
export function startCompactor(
  node: EtcdNode,
  mode: CompactionMode,
  retention: bigint,
  logger: Logger,
  options: { revisionIntervalMs?: number } = {},
): Compactor | null {
  // A negative duration would make etcd's loop spin without pause; detcd does not start one.
  if (retention <= 0n) return null;
  return mode === "periodic"
    ? periodic(node, retention, logger)
    : revisionMode(node, retention, logger, options.revisionIntervalMs ?? REVISION_INTERVAL_MS);
}

async function compact(node: EtcdNode, revision: bigint): Promise<unknown> {
  try {
    await node.compact(create(CompactionRequestSchema, { revision }));
    return null;
  } catch (e) {
    // Already compacted there: as good as done (etcd treats mvcc.ErrCompacted alike).
    return isEtcdError(e, Errors.compacted) ? null : e;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function periodic(node: EtcdNode, period: bigint, logger: Logger): Compactor {
  const compactInterval = period > HOUR_NS ? HOUR_NS : period;
  const retryInterval = compactInterval / 10n;
  const retentions = Number(period / (retryInterval === 0n ? 1n : retryInterval)) + 1;
  const retryMs = Math.max(1, Number(retryInterval / NS_PER_MS));
  const revs: bigint[] = [];
  let lastSuccess = Date.now();
  let baseInterval = period;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const step = async () => {
    if (stopped) return;
    if (node.isLeader && BigInt(Date.now() - lastSuccess) * NS_PER_MS >= baseInterval) {
      if (baseInterval === period) baseInterval = compactInterval;
      const revision = revs[0];
      logger.info("v3compactor/periodic.go:134", "starting auto periodic compaction", {
        revision: Number(revision),
        "compact-period": formatGoDuration(period),
      });
      const err = await compact(node, revision);
      if (err === null) {
        logger.info("v3compactor/periodic.go:143", "completed auto periodic compaction", {
          revision: Number(revision),
          "compact-period": formatGoDuration(period),
          took: formatGoDuration(BigInt(Date.now() - lastSuccess) * NS_PER_MS),
        });
        lastSuccess = Date.now();
      } else {
        logger.warn("v3compactor/periodic.go:152", "failed auto periodic compaction", {
          revision: Number(revision),
          "compact-period": formatGoDuration(period),
          "retry-interval": formatGoDuration(retryInterval),
          error: errorText(err),
        });
      }
    }
    record();
  };
  const record = () => {
    if (stopped) return;
    revs.push(BigInt(node.revision));
    if (revs.length > retentions) revs.shift(); // revs[0] is the revision of one period ago
    timer = setTimeout(() => void step(), retryMs);
  };
  record();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function revisionMode(
  node: EtcdNode,
  retention: bigint,
  logger: Logger,
  intervalMs: number,
): Compactor {
  let prev = 0n;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const step = async () => {
    if (stopped) return;
    const revision = BigInt(node.revision) - retention;
    if (node.isLeader && revision > 0n && revision !== prev) {
      const started = Date.now();
      logger.info("v3compactor/revision.go:83", "starting auto revision compaction", {
        revision: Number(revision),
        "revision-compaction-retention": Number(retention),
      });
      const err = await compact(node, revision);
      if (err === null) {
        prev = revision;
        logger.info("v3compactor/revision.go:92", "completed auto revision compaction", {
          revision: Number(revision),
          "revision-compaction-retention": Number(retention),
          took: formatGoDuration(BigInt(Date.now() - started) * NS_PER_MS),
        });
      } else {
        logger.warn("v3compactor/revision.go:101", "failed auto revision compaction", {
          revision: Number(revision),
          "revision-compaction-retention": Number(retention),
          "retry-interval": formatGoDuration(BigInt(intervalMs) * NS_PER_MS),
          error: errorText(err),
        });
      }
    }
    if (!stopped) timer = setTimeout(() => void step(), intervalMs);
  };
  timer = setTimeout(() => void step(), intervalMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
