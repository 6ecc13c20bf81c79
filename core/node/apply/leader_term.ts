/**
 * The leader-term guard: a request only the leader of one term may make (the revoke of an expired
 * lease, lease checkpoints) applies only when the entry was appended in that same term, i.e. by
 * that leader. A deposed leader's request that reached a newer leader's log (forwarded after it
 * stepped down) is void on every member, so a stale leader cannot revoke a lease the current
 * leader keeps alive (etcd #15247). Runs first: nothing else should see a void request.
 */
import { Errors } from "../../errors.ts";
import type { ApplyLayer } from "./chain.ts";

/** Refuses (with `etcdserver: not leader`) leader-only requests from another term. */
export const leaderTermGuard: ApplyLayer = {
  name: "leader-term",
  apply(operation, meta, next) {
    if (meta.leaderTerm !== 0n && meta.leaderTerm !== BigInt(meta.entryTerm)) {
      throw Errors.notLeader();
    }
    return next(operation, meta);
  },
};
