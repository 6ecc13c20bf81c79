/**
 * One-shot HTTP/1.1 calls to a peer's plain endpoints: a joining member asks for the cluster's
 * members, and a follower forwards what only the leader may do (learner promotion, lease renewal,
 * lease TimeToLive). A leader's EtcdError comes back as JSON and is thrown again here with the
 * same code and message, so that the client sees the leader's answer unchanged.
 */

import * as http from "node:http";
import * as https from "node:https";
import { Errors, EtcdError } from "../../core/errors.ts";
import { idHex } from "../../core/node/mod.ts";
import { hostPort } from "../listener.ts";
import { errorFromJson, type LeaseTtl, type MemberJson, parseId, parseLeaseTtl } from "./_wire.ts";
import type { PeerTls } from "./tls.ts";

/** A member as GET /members on a peer port describes it. */
export interface RemoteMember {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** One HTTP/1.1 request to a peer URL; resolves with status, headers and body. */
function peerRequest(
  url: string,
  method: string,
  path: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
  peerTls: PeerTls | null = null,
  body?: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const { host, port } = hostPort(url);
    const options = { host, port, method, path, headers, timeout: timeoutMs };
    const secure = url.startsWith("https://");
    if (secure && peerTls === null) {
      reject(new Error(`no peer TLS configuration for ${url}`));
      return;
    }
    const send = secure
      ? (cb: (res: http.IncomingMessage) => void) =>
        https.request({ ...options, ...peerTls!.client, agent: false }, cb)
      : (cb: (res: http.IncomingMessage) => void) => http.request(options, cb);
    const req = send((res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => body += c);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

/** Asks a peer URL for the cluster's ID and members (etcd's GetClusterFromRemotePeers). */
export async function fetchRemoteCluster(
  url: string,
  timeoutMs: number,
  peerTls: PeerTls | null = null,
): Promise<{ clusterId: bigint; members: RemoteMember[] }> {
  const { status, headers, body } = await peerRequest(
    url,
    "GET",
    "/members",
    timeoutMs,
    {},
    peerTls,
  );
  if (status !== 200) throw new Error(`GET /members: status ${status}`);
  const clusterId = parseId(String(headers["x-etcd-cluster-id"] ?? ""));
  if (clusterId === null) throw new Error("missing cluster ID");
  const list = JSON.parse(body) as MemberJson[];
  return {
    clusterId,
    members: list.map((m) => ({
      id: BigInt(`0x${m.id}`),
      name: m.name,
      peerUrls: m.peerURLs,
      clientUrls: m.clientURLs,
      isLearner: m.isLearner,
    })),
  };
}

/**
 * A follower's forwarded promotion: POST /members/promote/<id> to the leader's peer URL. The
 * leader's EtcdError comes back as JSON and is thrown again here with the same code and message.
 */
export async function forwardPromote(
  leaderPeerUrls: readonly string[],
  clusterId: bigint,
  id: bigint,
  timeoutMs: number,
  peerTls: PeerTls | null = null,
): Promise<void> {
  let lastError: unknown = new Error("leader has no peer URLs");
  for (const url of leaderPeerUrls) {
    try {
      const { status, body } = await peerRequest(
        url,
        "POST",
        `/members/promote/${idHex(id)}`,
        timeoutMs,
        { "x-etcd-cluster-id": idHex(clusterId) },
        peerTls,
      );
      if (status === 200) return;
      throw errorFromJson(JSON.parse(body), `status ${status}`);
    } catch (e) {
      if (e instanceof EtcdError) throw e;
      lastError = e;
    }
  }
  throw lastError;
}

/** POSTs a lease request to the leader; a leader's EtcdError is thrown again here. */
async function leaseRequest(
  leaderPeerUrls: readonly string[],
  clusterId: bigint,
  path: string,
  timeoutMs: number,
  peerTls: PeerTls | null,
): Promise<Record<string, unknown>> {
  let lastError: unknown = new Error("leader has no peer URLs");
  for (const url of leaderPeerUrls) {
    try {
      const { status, body } = await peerRequest(url, "POST", path, timeoutMs, {
        "x-etcd-cluster-id": idHex(clusterId),
      }, peerTls);
      const parsed = JSON.parse(body) as Record<string, unknown>;
      if (status === 200) return parsed;
      throw errorFromJson(parsed, `status ${status}`);
    } catch (e) {
      if (e instanceof EtcdError) throw e;
      lastError = e;
    }
  }
  throw lastError;
}

/** A follower's keep-alive, renewed by the leader (etcd's POST /leases over the peer port). */
export async function forwardLeaseRenew(
  leaderPeerUrls: readonly string[],
  clusterId: bigint,
  id: bigint,
  timeoutMs: number,
  peerTls: PeerTls | null = null,
): Promise<bigint> {
  const path = `/leases/renew/${BigInt.asUintN(64, id).toString(16)}`;
  const r = await leaseRequest(leaderPeerUrls, clusterId, path, timeoutMs, peerTls);
  return BigInt(String(r.ttl));
}

/** A follower's LeaseTimeToLive, answered by the leader (etcd's POST /leases/internal). */
export async function forwardLeaseTimeToLive(
  leaderPeerUrls: readonly string[],
  clusterId: bigint,
  id: bigint,
  timeoutMs: number,
  peerTls: PeerTls | null = null,
): Promise<LeaseTtl> {
  const path = `/leases/timetolive/${BigInt.asUintN(64, id).toString(16)}`;
  return parseLeaseTtl(await leaseRequest(leaderPeerUrls, clusterId, path, timeoutMs, peerTls));
}

/** What a peer's GET /members/hashkv answered. */
export interface PeerHashKV {
  hash: number;
  revision: bigint;
  compactRevision: bigint;
}

/**
 * Asks a peer URL for its key-space hash at `revision` (etcd's getPeerHashKVHTTP); a compacted or
 * future revision throws the matching EtcdError, anything else a plain Error.
 */
export async function fetchPeerHashKV(
  url: string,
  revision: bigint,
  timeoutMs: number,
  peerTls: PeerTls | null = null,
): Promise<PeerHashKV> {
  const request = JSON.stringify({ revision: Number(revision) });
  const { status, body } = await peerRequest(
    url,
    "GET",
    "/members/hashkv",
    timeoutMs,
    // With its length given: a GET with a chunked body is not read by the peer's HTTP server.
    {
      "content-type": "application/json",
      "content-length": String(new TextEncoder().encode(request).length),
    },
    peerTls,
    request,
  );
  if (status === 400) {
    if (body.includes("required revision has been compacted")) throw Errors.compacted();
    if (body.includes("required revision is a future revision")) throw Errors.futureRev();
  }
  if (status !== 200) throw new Error(`unknown error: ${body}`);
  const parsed = JSON.parse(body) as {
    header?: { revision?: number };
    hash?: number;
    compact_revision?: number;
  };
  return {
    hash: parsed.hash ?? 0,
    revision: BigInt(parsed.header?.revision ?? 0),
    compactRevision: BigInt(parsed.compact_revision ?? 0),
  };
}

/** A peer's GET /version answer: its etcd server version (etcd's getVersion). */
export async function fetchPeerVersion(
  url: string,
  timeoutMs: number,
  peerTls: PeerTls | null = null,
): Promise<string> {
  const { status, body } = await peerRequest(url, "GET", "/version", timeoutMs, {}, peerTls);
  if (status !== 200) throw new Error(`unexpected status ${status}`);
  return (JSON.parse(body) as { etcdserver?: string }).etcdserver ?? "";
}
