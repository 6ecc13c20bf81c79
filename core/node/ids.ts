import { createHash } from "node:crypto";

/**
 * Member and cluster IDs derived exactly as etcd derives them, so that a detcd member started with
 * the same flags as an etcd member has the same IDs (and tools comparing them see no difference).
 */

/**
 * A member's ID: the first 8 bytes (big endian) of SHA-1 over its sorted peer URLs joined without a
 * separator, the cluster token, and for members added at runtime the Unix time in seconds.
 */
export function memberId(
  peerUrls: readonly string[],
  clusterToken: string,
  unixSeconds?: number,
): bigint {
  const h = createHash("sha1");
  h.update([...peerUrls].sort().join(""));
  h.update(clusterToken);
  if (unixSeconds !== undefined) h.update(String(unixSeconds));
  return h.digest().readBigUInt64BE(0);
}

/** A cluster's ID: SHA-1 over the sorted member IDs, each as 8 big-endian bytes. */
export function clusterId(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => buf.writeBigUInt64BE(id, 8 * i));
  return createHash("sha1").update(buf).digest().readBigUInt64BE(0);
}

/** One `name=url` group of --initial-cluster, URLs merged per name as etcd does. */
export interface InitialMember {
  name: string;
  peerUrls: string[];
}

/** Parses `--initial-cluster` ("a=http://x:2380,b=http://y:2380,a=http://x2:2380"). */
export function parseInitialCluster(value: string): InitialMember[] {
  const byName = new Map<string, string[]>();
  for (const part of value.split(",")) {
    const trimmed = part.trim();
    if (trimmed === "") continue;
    const eq = trimmed.indexOf("=");
    if (eq <= 0) throw new Error(`invalid value "${trimmed}" for --initial-cluster`);
    const name = trimmed.slice(0, eq);
    const url = trimmed.slice(eq + 1);
    const urls = byName.get(name) ?? [];
    urls.push(url);
    byName.set(name, urls);
  }
  return [...byName].map(([name, peerUrls]) => ({ name, peerUrls }));
}

/** Lowercase hex without padding, as etcd prints IDs in logs and etcdctl in tables. */
export function idHex(id: bigint): string {
  return id.toString(16);
}
