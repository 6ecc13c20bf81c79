import * as http from "node:http";
import * as net from "node:net";
import { EtcdError, type GrpcCodeValue } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { MemberInfo, Transport } from "../core/node/mod.ts";
import { clusterVersion, idHex, serverVersion } from "../core/node/mod.ts";
import { decodeMessage, encodeMessage, type Message, MessageType } from "../core/raft/mod.ts";
import { hostPort } from "./listener.ts";

/**
 * Member-to-member traffic on the peer URLs. Each member opens one long-lived TCP connection to
 * every peer: an HTTP/1.1 request `POST /raft/stream` with the cluster ID and the sender's ID in
 * headers, upgraded (101) to a raw stream of length-prefixed frames (u32 big endian + the encoded
 * Raft message). A member of another cluster (412) or a removed member (410) is refused before the
 * upgrade. The same port answers plain HTTP/1.1: GET /members and /version (asked by a member that
 * joins with `--initial-cluster-state existing`) and POST /members/promote/<id> (a follower
 * forwarding a learner promotion to the leader).
 *
 * Why not HTTP/2 like etcd's peers: Deno's node:http2 aborted the whole process (an nghttp2
 * assertion in GOAWAY handling) when a peer was killed mid-stream; plain sockets are also cheaper.
 * detcd members talk to detcd members only, so the framing is ours to choose.
 */

/** What the peer server and transport need from the member. */
export interface PeerHandler {
  clusterId(): bigint;
  memberId(): bigint;
  members(): MemberInfo[];
  isRemoved(id: bigint): boolean;
  step(message: Message): void;
  reportUnreachable(id: bigint): void;
  reportSnapshot(id: bigint, ok: boolean): void;
  /** A connection to the peer was refused (its process is gone). */
  reportPeerDown(id: bigint): void;
  /** Promotes a learner on the leader (forwarded by followers). */
  promote(id: bigint): Promise<void>;
  /** Renews a lease on the leader (forwarded keep-alives); resolves to its TTL. */
  leaseRenew(id: bigint): Promise<bigint>;
  /** A lease's remaining and granted TTL and keys on the leader; null for an unknown lease. */
  leaseTimeToLive(
    id: bigint,
  ): Promise<{ ttl: bigint; grantedTtl: bigint; keys: Uint8Array[] } | null>;
  /** This member's own peer URLs (sent along so that peers can answer before they know it). */
  peerUrls(): string[];
  /**
   * A member sent messages before this member's log told about it (it was added after the point
   * this member's log reached): reach it at these URLs so that it can be answered (etcd's remote).
   */
  learnSender(id: bigint, peerUrls: string[]): void;
}

const streamPath = "/raft/stream";
const upgradeProtocol = "detcd-raft";
/** Above this many bytes queued on a connection, messages other than snapshots are dropped. */
const maxQueuedBytes = 64 * 1024 * 1024;
const maxFrameBytes = 512 * 1024 * 1024;
/** Request heads larger than this are refused. */
const maxHeadBytes = 16 * 1024;

/** Starts the peer listeners; returns a function that closes them. */
export async function listenPeers(
  urls: readonly string[],
  handler: () => PeerHandler | null,
  logger: Logger,
): Promise<{ close(): void }> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const plain = http.createServer((req, res) => servePlain(req, res, handler));
  plain.on("clientError", (_e, socket) => socket.destroy());
  for (const url of urls) {
    const { host, port } = hostPort(url);
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => socket.destroy());
      socket.setNoDelay(true);
      readHead(socket, (head, rest) => {
        if (head === null) {
          socket.destroy();
          return;
        }
        const request = parseHead(head);
        if (request && request.method === "POST" && request.path === streamPath) {
          serveStream(socket, request.headers, rest, handler, logger);
          return;
        }
        socket.unshift(Buffer.concat([Buffer.from(head), Buffer.from(rest)]));
        plain.emit("connection", socket);
        socket.resume();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    servers.push(server);
    logger.info("embed/etcd.go:587", "serving peer traffic", { address: `${host}:${port}` });
  }
  return {
    close() {
      for (const s of servers) s.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** Reads bytes until the end of an HTTP head ("\r\n\r\n"), bounded; null when there is none. */
function readHead(
  socket: net.Socket,
  done: (head: Uint8Array | null, rest: Uint8Array) => void,
): void {
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => finish(null), 10_000);
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf("\r\n\r\n");
    if (end >= 0) finish(end + 4);
    else if (buffered.length > maxHeadBytes) finish(null);
  };
  const onClose = () => finish(null);
  function finish(end: number | null) {
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("close", onClose);
    socket.pause();
    if (end === null) done(null, new Uint8Array(0));
    else done(buffered.subarray(0, end), buffered.subarray(end));
  }
  socket.on("data", onData);
  socket.on("close", onClose);
}

interface Head {
  method: string;
  path: string;
  status: number;
  headers: Map<string, string>;
}

/** Parses a request or response head; null when it is not HTTP/1.x. */
function parseHead(bytes: Uint8Array): Head | null {
  const lines = new TextDecoder().decode(bytes).split("\r\n");
  const first = lines[0].split(" ");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  if (first[0].startsWith("HTTP/1.")) {
    return { method: "", path: "", status: Number(first[1]), headers };
  }
  if (first.length < 3 || !first[2].startsWith("HTTP/1.")) return null;
  return { method: first[0], path: first[1], status: 0, headers };
}

function serveStream(
  socket: net.Socket,
  headers: Map<string, string>,
  rest: Uint8Array,
  handlerOf: () => PeerHandler | null,
  logger: Logger,
): void {
  const refuse = (status: string, message: string, extra = "") => {
    const body = JSON.stringify({ message });
    socket.end(
      `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
        `${extra}Connection: close\r\n\r\n${body}`,
    );
  };
  const handler = handlerOf();
  if (handler === null) return refuse("503 Service Unavailable", "member is starting");
  const clusterHeader = `X-Etcd-Cluster-ID: ${idHex(handler.clusterId())}\r\n`;
  const remoteCluster = headers.get("x-etcd-cluster-id") ?? "";
  if (remoteCluster !== idHex(handler.clusterId())) {
    logger.warn("rafthttp/http.go:500", "request cluster ID mismatch", {
      "local-member-id": idHex(handler.memberId()),
      "local-member-cluster-id": idHex(handler.clusterId()),
      "remote-peer-cluster-id": remoteCluster,
    });
    return refuse("412 Precondition Failed", "cluster ID mismatch", clusterHeader);
  }
  const from = parseId(headers.get("x-server-from") ?? "");
  if (from === null) return refuse("400 Bad Request", "bad sender");
  if (handler.isRemoved(from)) {
    return refuse("410 Gone", "the member has been permanently removed from the cluster");
  }
  const senderUrls = (headers.get("x-peerurls") ?? "").split(",").filter((u) => u !== "");
  if (senderUrls.length > 0) handler.learnSender(from, senderUrls);
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${upgradeProtocol}\r\nConnection: Upgrade\r\n` +
      `${clusterHeader}\r\n`,
  );
  const reader = new FrameReader((bytes) => {
    let message: Message;
    try {
      message = decodeMessage(bytes);
    } catch (e) {
      logger.warn("rafthttp/msgappv2_codec.go:230", "failed to decode raft message", {
        from: idHex(from),
        error: String(e),
      });
      return false;
    }
    if (message.from !== from) return true;
    handlerOf()?.step(message);
    return true;
  });
  if (rest.length > 0 && !reader.push(rest)) return void socket.destroy();
  socket.on("data", (chunk: Uint8Array) => {
    if (!reader.push(chunk)) socket.destroy();
  });
  socket.resume();
}

function servePlain(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  handlerOf: () => PeerHandler | null,
): void {
  const handler = handlerOf();
  const reply = (status: number, body: unknown) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (handler) headers["x-etcd-cluster-id"] = idHex(handler.clusterId());
    res.writeHead(status, headers);
    res.end(JSON.stringify(body));
  };
  if (handler === null) return reply(503, { message: "member is starting" });
  const path = (req.url ?? "").split("?")[0];
  if (path === "/members" && req.method === "GET") {
    return reply(200, handler.members().map(memberJson));
  }
  if (path === "/version" && req.method === "GET") {
    return reply(200, { etcdserver: serverVersion, etcdcluster: clusterVersion });
  }
  const promote = /^\/members\/promote\/([0-9a-f]{1,16})$/.exec(path);
  if (promote && req.method === "POST") {
    req.resume();
    handler.promote(BigInt(`0x${promote[1]}`)).then(
      () => reply(200, handler.members().map(memberJson)),
      (e) => {
        const message = e instanceof Error ? e.message : String(e);
        const code = e instanceof EtcdError ? e.code : 2;
        reply(412, { message, code });
      },
    );
    return;
  }
  const lease = /^\/leases\/(renew|timetolive)\/([0-9a-f]{1,16})$/.exec(path);
  if (lease && req.method === "POST") {
    req.resume();
    const id = BigInt.asIntN(64, BigInt(`0x${lease[2]}`));
    const failed = (e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      const code = e instanceof EtcdError ? e.code : 2;
      reply(412, { message, code });
    };
    if (lease[1] === "renew") {
      handler.leaseRenew(id).then((ttl) => reply(200, { ttl: String(ttl) }), failed);
    } else {
      handler.leaseTimeToLive(id).then((t) =>
        reply(
          200,
          t === null ? { ttl: "-1" } : {
            ttl: String(t.ttl),
            grantedTtl: String(t.grantedTtl),
            keys: t.keys.map(bytesHex),
          },
        ), failed);
    }
    return;
  }
  reply(404, { message: "not found" });
}

function bytesHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function hexBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** POSTs a lease request to the leader; a leader's EtcdError is thrown again here. */
async function leaseRequest(
  leaderPeerUrls: readonly string[],
  clusterId: bigint,
  path: string,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  let lastError: unknown = new Error("leader has no peer URLs");
  for (const url of leaderPeerUrls) {
    try {
      const { status, body } = await peerRequest(url, "POST", path, timeoutMs, {
        "x-etcd-cluster-id": idHex(clusterId),
      });
      const parsed = JSON.parse(body) as Record<string, unknown>;
      if (status === 200) return parsed;
      throw EtcdError.fromStatus(
        (typeof parsed.code === "number" ? parsed.code : 2) as GrpcCodeValue,
        typeof parsed.message === "string" ? parsed.message : `status ${status}`,
      );
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
): Promise<bigint> {
  const path = `/leases/renew/${BigInt.asUintN(64, id).toString(16)}`;
  const r = await leaseRequest(leaderPeerUrls, clusterId, path, timeoutMs);
  return BigInt(String(r.ttl));
}

/** A follower's LeaseTimeToLive, answered by the leader (etcd's POST /leases/internal). */
export async function forwardLeaseTimeToLive(
  leaderPeerUrls: readonly string[],
  clusterId: bigint,
  id: bigint,
  timeoutMs: number,
): Promise<{ ttl: bigint; grantedTtl: bigint; keys: Uint8Array[] }> {
  const path = `/leases/timetolive/${BigInt.asUintN(64, id).toString(16)}`;
  const r = await leaseRequest(leaderPeerUrls, clusterId, path, timeoutMs);
  return {
    ttl: BigInt(String(r.ttl)),
    grantedTtl: BigInt(String(r.grantedTtl ?? "0")),
    keys: Array.isArray(r.keys) ? r.keys.map((k) => hexBytes(String(k))) : [],
  };
}

function memberJson(m: MemberInfo) {
  return {
    id: idHex(m.id),
    name: m.name,
    peerURLs: m.peerUrls,
    clientURLs: m.clientUrls,
    isLearner: m.isLearner,
  };
}

/** Reassembles length-prefixed frames from a byte stream. */
class FrameReader {
  #buffer: Uint8Array = new Uint8Array(0);
  constructor(private readonly onFrame: (bytes: Uint8Array) => boolean) {}

  /** Returns false when the stream is broken (oversized or undecodable frame). */
  push(chunk: Uint8Array): boolean {
    let data = chunk;
    if (this.#buffer.length > 0) {
      data = new Uint8Array(this.#buffer.length + chunk.length);
      data.set(this.#buffer, 0);
      data.set(chunk, this.#buffer.length);
    }
    let offset = 0;
    while (data.length - offset >= 4) {
      const length = (data[offset] << 24 | data[offset + 1] << 16 | data[offset + 2] << 8 |
        data[offset + 3]) >>> 0;
      if (length > maxFrameBytes) return false;
      if (data.length - offset - 4 < length) break;
      const frame = data.subarray(offset + 4, offset + 4 + length);
      offset += 4 + length;
      if (!this.onFrame(frame)) return false;
    }
    this.#buffer = offset === data.length ? new Uint8Array(0) : data.slice(offset);
    return true;
  }
}

function parseId(hex: string): bigint | null {
  if (!/^[0-9a-f]{1,16}$/.test(hex)) return null;
  return BigInt(`0x${hex}`);
}

interface Peer {
  id: bigint;
  urls: string[];
  socket: net.Socket | null;
  activeSince: number | null;
  retryTimer: ReturnType<typeof setTimeout> | null;
  backoffMs: number;
  closed: boolean;
  /** Which of the peer's URLs to try next. */
  urlIndex: number;
}

/**
 * The client half: one outgoing connection per peer, reconnected with a bounded backoff. Messages
 * to a peer that is not connected are dropped and reported unreachable; Raft sends them again.
 */
export class PeerTransport implements Transport {
  #peers = new Map<bigint, Peer>();
  #handler: () => PeerHandler | null;
  #logger: Logger;
  #closed = false;

  constructor(handler: () => PeerHandler | null, logger: Logger) {
    this.#handler = handler;
    this.#logger = logger;
  }

  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    // One write per peer per call: the messages of one Ready travel together.
    const byPeer = new Map<bigint, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to);
      if (list) list.push(m);
      else byPeer.set(m.to, [m]);
    }
    for (const [to, list] of byPeer) {
      const peer = this.#peers.get(to);
      const socket = peer?.socket;
      const usable = socket && peer.activeSince !== null && !socket.destroyed &&
        socket.writableLength < maxQueuedBytes;
      if (!usable) {
        this.#unreachable(to, list);
        continue;
      }
      const frames = list.map(encodeMessage);
      let size = 0;
      for (const f of frames) size += 4 + f.length;
      const out = new Uint8Array(size);
      let o = 0;
      for (const f of frames) {
        const n = f.length;
        out[o] = n >>> 24;
        out[o + 1] = (n >>> 16) & 0xff;
        out[o + 2] = (n >>> 8) & 0xff;
        out[o + 3] = n & 0xff;
        out.set(f, o + 4);
        o += 4 + n;
      }
      const snapshots = list.filter((m) => m.type === MessageType.Snap).length;
      if (snapshots === 0) {
        socket.write(out);
      } else {
        socket.write(out, (error) => {
          for (let i = 0; i < snapshots; i++) this.#handler()?.reportSnapshot(to, !error);
        });
      }
    }
  }

  #unreachable(to: bigint, list: Message[]): void {
    const handler = this.#handler();
    if (!handler) return;
    handler.reportUnreachable(to);
    for (const m of list) if (m.type === MessageType.Snap) handler.reportSnapshot(to, false);
  }

  addPeer(id: bigint, peerUrls: readonly string[]): void {
    if (this.#closed) return;
    const existing = this.#peers.get(id);
    if (existing) {
      if (existing.urls.join(",") !== peerUrls.join(",")) this.updatePeer(id, peerUrls);
      return;
    }
    const peer: Peer = {
      id,
      urls: [...peerUrls],
      socket: null,
      activeSince: null,
      retryTimer: null,
      backoffMs: 50,
      closed: false,
      urlIndex: 0,
    };
    this.#peers.set(id, peer);
    this.#connect(peer);
  }

  /** Reaches a sender not (yet) in the membership; a known peer keeps its URLs. */
  addRemote(id: bigint, peerUrls: readonly string[]): void {
    if (!this.#peers.has(id)) this.addPeer(id, peerUrls);
  }

  updatePeer(id: bigint, peerUrls: readonly string[]): void {
    const peer = this.#peers.get(id);
    if (!peer) return this.addPeer(id, peerUrls);
    peer.urls = [...peerUrls];
    peer.urlIndex = 0;
    this.#disconnect(peer);
    peer.backoffMs = 50;
    this.#connect(peer);
  }

  removePeer(id: bigint): void {
    const peer = this.#peers.get(id);
    if (!peer) return;
    peer.closed = true;
    this.#disconnect(peer);
    this.#peers.delete(id);
  }

  activeSince(id: bigint): number | null {
    return this.#peers.get(id)?.activeSince ?? null;
  }

  /** Closes every connection (member shutdown). */
  close(): void {
    this.#closed = true;
    for (const peer of this.#peers.values()) {
      peer.closed = true;
      this.#disconnect(peer);
    }
    this.#peers.clear();
  }

  #disconnect(peer: Peer): void {
    if (peer.retryTimer !== null) clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    peer.activeSince = null;
    const socket = peer.socket;
    peer.socket = null;
    socket?.destroy();
  }

  #connect(peer: Peer): void {
    if (peer.closed || this.#closed) return;
    const handler = this.#handler();
    if (!handler) {
      this.#retry(peer);
      return;
    }
    const url = peer.urls[peer.urlIndex % peer.urls.length];
    peer.urlIndex++;
    let target: { host: string; port: number };
    try {
      target = hostPort(url);
    } catch {
      this.#retry(peer);
      return;
    }
    const socket = net.connect(target.port, target.host);
    peer.socket = socket;
    socket.setNoDelay(true);
    const fail = () => {
      if (peer.socket !== socket) return;
      const wasActive = peer.activeSince !== null;
      this.#disconnect(peer);
      if (wasActive) {
        this.#logger.warn(
          "rafthttp/peer_status.go:68",
          "peer became inactive (message send to peer failed)",
          { "peer-id": idHex(peer.id) },
        );
        this.#handler()?.reportUnreachable(peer.id);
      }
      this.#retry(peer);
    };
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED" && peer.socket === socket) {
        this.#handler()?.reportPeerDown(peer.id);
      }
      fail();
    });
    socket.on("close", fail);
    socket.on("connect", () => {
      socket.write(
        `POST ${streamPath} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n` +
          `Connection: Upgrade\r\nUpgrade: ${upgradeProtocol}\r\n` +
          `X-Etcd-Cluster-ID: ${idHex(handler.clusterId())}\r\n` +
          `X-Server-From: ${idHex(handler.memberId())}\r\n` +
          `X-PeerURLs: ${handler.peerUrls().join(",")}\r\n` +
          `X-Server-Version: ${serverVersion}\r\n\r\n`,
      );
      readHead(socket, (head) => {
        const response = head === null ? null : parseHead(head);
        if (response === null || response.status !== 101) {
          if (response?.status === 410) {
            this.#logger.error(
              "rafthttp/stream.go:571",
              "the member has been permanently removed from the cluster",
              { "peer-id": idHex(peer.id) },
            );
          } else if (response?.status === 412) {
            this.#logger.warn(
              "rafthttp/stream.go:580",
              "request sent was ignored due to cluster ID mismatch",
              {
                "remote-peer-id": idHex(peer.id),
                "remote-peer-cluster-id": response.headers.get("x-etcd-cluster-id") ?? "",
                "local-member-cluster-id": idHex(handler.clusterId()),
              },
            );
          }
          fail();
          return;
        }
        // Nothing comes back on this connection; keep reading so a close is noticed.
        socket.on("data", () => {});
        socket.resume();
        peer.activeSince = Date.now();
        peer.backoffMs = 50;
        this.#logger.info("rafthttp/peer_status.go:51", "peer became active", {
          "peer-id": idHex(peer.id),
        });
      });
    });
  }

  #retry(peer: Peer): void {
    if (peer.closed || this.#closed || peer.retryTimer !== null) return;
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = null;
      this.#connect(peer);
    }, peer.backoffMs);
    peer.backoffMs = Math.min(peer.backoffMs * 2, 1000);
  }
}

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
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const { host, port } = hostPort(url);
    const req = http.request({ host, port, method, path, headers, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => body += c);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** Asks a peer URL for the cluster's ID and members (etcd's GetClusterFromRemotePeers). */
export async function fetchRemoteCluster(
  url: string,
  timeoutMs: number,
): Promise<{ clusterId: bigint; members: RemoteMember[] }> {
  const { status, headers, body } = await peerRequest(url, "GET", "/members", timeoutMs);
  if (status !== 200) throw new Error(`GET /members: status ${status}`);
  const clusterId = parseId(String(headers["x-etcd-cluster-id"] ?? ""));
  if (clusterId === null) throw new Error("missing cluster ID");
  const list = JSON.parse(body) as {
    id: string;
    name: string;
    peerURLs: string[];
    clientURLs: string[];
    isLearner: boolean;
  }[];
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
      );
      if (status === 200) return;
      const parsed = JSON.parse(body) as { message?: string; code?: number };
      throw EtcdError.fromStatus(
        (parsed.code ?? 2) as GrpcCodeValue,
        parsed.message ?? `status ${status}`,
      );
    } catch (e) {
      if (e instanceof EtcdError) throw e;
      lastError = e;
    }
  }
  throw lastError;
}
