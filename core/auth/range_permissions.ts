/**
 * The per-user permission index: every READ and WRITE range a user's roles grant, merged into
 * sorted, disjoint intervals, so that a request's check is one binary search instead of a walk
 * over every role and permission. It answers exactly what etcd 3.4.23's interval tree answers
 * (auth/range_perm_cache.go over pkg/adt): a key is permitted when some granted range holds it;
 * a range [key, end) when the union of granted ranges covers all of it. For a request whose end
 * lies at or before its key (it matches no key) etcd's answer depends on its tree's shape; those
 * rare requests go to a replica of that tree (_etcd_interval_tree.ts).
 *
 * Byte order is etcd's "affine" order: an empty byte string sorts after every other one, so an
 * empty begin means "+infinity" (nothing is granted from there) and an empty end means "to the end
 * of the key space". A permission's range end `\0` means "from the key on" (from-key), an empty
 * range end means the single key. Empty and inverted ranges (end <= key) grant nothing, as in etcd.
 */

import { compareBytes } from "../bytes.ts";
import { Permission_Type } from "../../gen/authpb/auth_pb.ts";
import type { Permission } from "../../gen/authpb/auth_pb.ts";
import { EtcdIntervalTree } from "./_etcd_interval_tree.ts";

/** A half-open interval [begin, end); `end === null` is +infinity (open ended). */
export interface KeyInterval {
  begin: Uint8Array;
  end: Uint8Array | null;
}

/** Bytewise order (Go's bytes.Compare; one copy, in core/bytes.ts). */
export { compareBytes };

/** `end` vs `key` where a null end is +infinity. */
function compareEnd(end: Uint8Array | null, key: Uint8Array): number {
  return end === null ? 1 : compareBytes(end, key);
}

function isFromKeyEnd(end: Uint8Array): boolean {
  return end.length === 1 && end[0] === 0;
}

/**
 * The interval a granted permission covers, or null when it covers nothing (empty key, which etcd
 * orders after everything, or an end at or before the key).
 */
export function permissionInterval(key: Uint8Array, rangeEnd: Uint8Array): KeyInterval | null {
  if (key.length === 0) return null;
  let end: Uint8Array | null;
  if (rangeEnd.length === 0) {
    end = new Uint8Array(key.length + 1);
    end.set(key);
  } else if (isFromKeyEnd(rangeEnd)) {
    end = null;
  } else {
    end = rangeEnd;
  }
  if (end !== null && compareBytes(key, end) >= 0) return null;
  return { begin: key, end };
}

/** Sorts and merges intervals; touching intervals ([a, b) and [b, c)) merge, as etcd's cover does. */
export function mergeIntervals(intervals: readonly KeyInterval[]): KeyInterval[] {
  const sorted = [...intervals].sort((x, y) => compareBytes(x.begin, y.begin));
  const out: KeyInterval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && compareEnd(last.end, iv.begin) >= 0) {
      if (last.end !== null && (iv.end === null || compareBytes(iv.end, last.end) > 0)) {
        last.end = iv.end;
      }
      continue;
    }
    out.push({ begin: iv.begin, end: iv.end });
  }
  return out;
}

/**
 * Whether sorted, disjoint `merged` intervals permit [key, rangeEnd) with etcd's request
 * semantics: an empty rangeEnd checks the single key, `\0` checks from the key to the end of the
 * key space, and an end at or before the key checks the key alone (etcd's tree answers that way).
 * An empty key is never permitted (etcd orders it after every granted range).
 */
export function intervalsPermit(
  merged: readonly KeyInterval[],
  key: Uint8Array,
  rangeEnd: Uint8Array,
): boolean {
  if (key.length === 0) return false;
  // The last interval whose begin <= key.
  let lo = 0;
  let hi = merged.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareBytes(merged[mid].begin, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return false;
  const holder = merged[lo - 1];
  if (compareEnd(holder.end, key) <= 0) return false;
  if (rangeEnd.length === 0) return true;
  if (isFromKeyEnd(rangeEnd)) return holder.end === null;
  if (compareBytes(rangeEnd, key) <= 0) return true;
  return compareEnd(holder.end, rangeEnd) >= 0;
}

/** Whether a request's range end lies at or before its key (not empty, not from-key). */
function isInvertedRequest(key: Uint8Array, rangeEnd: Uint8Array): boolean {
  return rangeEnd.length > 0 && !isFromKeyEnd(rangeEnd) && compareBytes(rangeEnd, key) <= 0;
}

/**
 * A user's merged READ and WRITE intervals. Requests whose range end lies at or before their key
 * (they match no key) are answered by a replica of etcd's own interval tree, built on first need,
 * because etcd's answer to them depends on that tree's shape.
 */
export class UserRangePermissions {
  readonly read: readonly KeyInterval[];
  readonly write: readonly KeyInterval[];
  #permissions: Permission[];
  #trees: { read: EtcdIntervalTree; write: EtcdIntervalTree } | null = null;

  /**
   * Builds the index from every permission of every role the user holds, in etcd's order (the
   * user's roles in order, each role's permissions in stored order).
   */
  constructor(permissions: Iterable<Permission>) {
    this.#permissions = [...permissions];
    const read: KeyInterval[] = [];
    const write: KeyInterval[] = [];
    for (const perm of this.#permissions) {
      const iv = permissionInterval(perm.key, perm.rangeEnd);
      if (iv === null) continue;
      switch (perm.permType) {
        case Permission_Type.READWRITE:
          read.push(iv);
          write.push(iv);
          break;
        case Permission_Type.READ:
          read.push(iv);
          break;
        case Permission_Type.WRITE:
          write.push(iv);
          break;
          // Unknown types grant nothing (etcd's switch has no default either).
      }
    }
    this.read = mergeIntervals(read);
    this.write = mergeIntervals(write);
  }

  /** Whether the user may read [key, rangeEnd) (empty rangeEnd: the key alone). */
  canRead(key: Uint8Array, rangeEnd: Uint8Array): boolean {
    if (isInvertedRequest(key, rangeEnd)) return this.#etcdTrees().read.contains(key, rangeEnd);
    return intervalsPermit(this.read, key, rangeEnd);
  }

  /** Whether the user may write [key, rangeEnd) (empty rangeEnd: the key alone). */
  canWrite(key: Uint8Array, rangeEnd: Uint8Array): boolean {
    if (isInvertedRequest(key, rangeEnd)) return this.#etcdTrees().write.contains(key, rangeEnd);
    return intervalsPermit(this.write, key, rangeEnd);
  }

  /** etcd's getMergedPerms: every permission inserted into its trees, in order. */
  #etcdTrees(): { read: EtcdIntervalTree; write: EtcdIntervalTree } {
    if (this.#trees !== null) return this.#trees;
    const read = new EtcdIntervalTree();
    const write = new EtcdIntervalTree();
    for (const perm of this.#permissions) {
      const begin = perm.key;
      let end: Uint8Array;
      if (perm.rangeEnd.length === 0) {
        end = new Uint8Array(perm.key.length + 1);
        end.set(perm.key);
      } else {
        end = isFromKeyEnd(perm.rangeEnd) ? new Uint8Array(0) : perm.rangeEnd;
      }
      if (perm.permType === Permission_Type.READWRITE || perm.permType === Permission_Type.READ) {
        read.insert(begin, end);
      }
      if (perm.permType === Permission_Type.READWRITE || perm.permType === Permission_Type.WRITE) {
        write.insert(begin, end);
      }
    }
    this.#trees = { read, write };
    return this.#trees;
  }
}
