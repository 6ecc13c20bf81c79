import * as http2 from "node:http2";
import type { Logger } from "../core/log.ts";
import type { MemberInfo, Transport } from "../core/node/mod.ts";
import { clusterVersion, idHex, serverVersion } from "../core/node/mod.ts";
import { decodeMessage, encodeMessage, type Message, MessageType } from "../core/raft/mod.ts";
import { hostPort } from "./listener.ts";
import { EtcdError, type GrpcCodeValue } from "../core/errors.ts";

/**
 * Member-to-member traffic over HTTP/2 (h2c) on the peer URLs. Each member opens one long-lived
 * POST stream to every peer and writes Raft messages on it as length-prefixed frames (u32 big
 * endian + the encoded message); a member receives its peers' messages on the streams they opened.
 * Every stream carries the cluster ID and the sender's ID, so a member of another cluster or one
 * that was removed is refused. The same port answers GET /members and /version, which a member
 * joining with `--initial-cluster-state existing` asks before it starts.
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
  /** Promotes a learner on the leader (forwarded by followers). */
  promote(id: bigint): Promise<void>;
}

const streamPath = "/raft/stream";
/** Above this many bytes queued on a stream, messages other than snapshots are dropped. */
const maxQueuedBytes = 64 * 1024 * 1024;
const maxFrameBytes = 512 * 1024 * 1024;
/** HTTP/2 receive window: large, so that a busy stream is not throttled by acknowledgements. */
const windowBytes = 32 * 1024 * 1024;

/** Starts the peer listeners; returns a function that closes them. */
export async function listenPeers(
  urls: readonly string[],
  handler: () => PeerHandler | null,
  logger: Logger,
): Promise<{ close(): void }> {
  const servers: http2.Http2Server[] = [];
  for (const url of urls) {
    const { host, port } = hostPort(url);
    const server = http2.createServer({
      settings: { initialWindowSize: windowBytes, maxFrameSize: 1 << 20 },
    });
    server.on("session", (session) => {
      session.on("error", () => {});
      try {
        session.setLocalWindowSize(windowBytes);
      } catch { /* not yet connected */ }
    });
    server.on("stream", (stream, headers) => serveStream(stream, headers, handler, logger));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    servers.push(server);
    logger.info("embed/etcd.go:587", "serving peer traffic", { address: `${host}:${port}` });
  }
  return {
    close() {
      for (const s of servers) s.close();
    },
  };
}

function serveStream(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  handlerOf: () => PeerHandler | null,
  logger: Logger,
): void {
  stream.on("error", () => {});
  const handler = handlerOf();
  const path = headers[":path"] ?? "";
  const reply = (status: number, body: string, extra: Record<string, string> = {}) => {
    if (stream.destroyed || stream.closed) return;
    stream.respond({ ":status": status, "content-type": "application/json", ...extra });
    stream.end(body);
  };
  if (handler === null) {
    reply(503, `{"message":"member is starting"}`);
    return;
  }
  const clusterHeader = { "x-etcd-cluster-id": idHex(handler.clusterId()) };
  if (path === "/members" && headers[":method"] === "GET") {
    reply(200, JSON.stringify(handler.members().map(memberJson)), clusterHeader);
    return;
  }
  if (path === "/version" && headers[":method"] === "GET") {
    reply(200, JSON.stringify({ etcdserver: serverVersion, etcdcluster: clusterVersion }));
    return;
  }
  const promote = /^\/members\/promote\/([0-9a-f]{1,16})$/.exec(path);
  if (promote && headers[":method"] === "POST") {
    handler.promote(BigInt(`0x${promote[1]}`)).then(
      () => reply(200, JSON.stringify(handler.members().map(memberJson)), clusterHeader),
      (e) => {
        const message = e instanceof Error ? e.message : String(e);
        const code = e instanceof EtcdError ? e.code : 2;
        reply(412, JSON.stringify({ message, code }), clusterHeader);
      },
    );
    stream.resume();
    return;
  }
  if (path !== streamPath || headers[":method"] !== "POST") {
    reply(404, `{"message":"not found"}`);
    return;
  }
  const remoteCluster = String(headers["x-etcd-cluster-id"] ?? "");
  if (remoteCluster !== idHex(handler.clusterId())) {
    logger.warn("rafthttp/http.go:500", "request cluster ID mismatch", {
      "local-member-id": idHex(handler.memberId()),
      "local-member-cluster-id": idHex(handler.clusterId()),
      "remote-peer-cluster-id": remoteCluster,
    });
    reply(412, `{"message":"cluster ID mismatch"}`, clusterHeader);
    return;
  }
  const from = parseId(String(headers["x-server-from"] ?? ""));
  if (from === null) {
    reply(400, `{"message":"bad sender"}`);
    return;
  }
  if (handler.isRemoved(from)) {
    reply(410, `{"message":"the member has been permanently removed from the cluster"}`);
    return;
  }
  stream.respond({ ":status": 200, ...clusterHeader });
  const reader = new FrameReader((bytes) => {
    let message: Message;
    try {
      message = decodeMessage(bytes);
    } catch (e) {
      logger.warn("rafthttp/msgappv2_codec.go:230", "failed to decode raft message", {
        from: idHex(from),
        error: String(e),
      });
      stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      return false;
    }
    if (message.from !== from) return true;
    handlerOf()?.step(message);
    return true;
  });
  stream.on("data", (chunk: Uint8Array) => {
    if (!reader.push(chunk)) stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
  });
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
      const view = new DataView(data.buffer, data.byteOffset + offset, 4);
      const length = view.getUint32(0);
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
  session: http2.ClientHttp2Session | null;
  stream: http2.ClientHttp2Stream | null;
  activeSince: number | null;
  retryTimer: ReturnType<typeof setTimeout> | null;
  backoffMs: number;
  closed: boolean;
  /** Which of the peer's URLs to try next. */
  urlIndex: number;
}

/**
 * The client half: one outgoing stream per peer, reconnected with a bounded backoff. Messages to a
 * peer that is not connected are dropped and reported unreachable; Raft sends them again.
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
      const stream = peer?.stream;
      const usable = stream && peer.activeSince !== null && !stream.destroyed &&
        stream.writableLength < maxQueuedBytes;
      if (!usable) {
        this.#unreachable(to, list);
        continue;
      }
      const frames = list.map(encodeMessage);
      let size = 0;
      for (const f of frames) size += 4 + f.length;
      const out = new Uint8Array(size);
      const view = new DataView(out.buffer);
      let o = 0;
      for (const f of frames) {
        view.setUint32(o, f.length);
        out.set(f, o + 4);
        o += 4 + f.length;
      }
      const snapshots = list.filter((m) => m.type === MessageType.Snap);
      stream.write(out, (error) => {
        for (const _ of snapshots) this.#handler()?.reportSnapshot(to, !error);
      });
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
      session: null,
      stream: null,
      activeSince: null,
      retryTimer: null,
      backoffMs: 50,
      closed: false,
      urlIndex: 0,
    };
    this.#peers.set(id, peer);
    this.#connect(peer);
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
    const { session, stream } = peer;
    peer.session = null;
    peer.stream = null;
    try {
      stream?.close();
    } catch { /* already closed */ }
    try {
      session?.destroy();
    } catch { /* already closed */ }
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
    let session: http2.ClientHttp2Session;
    try {
      session = http2.connect(url, {
        settings: { initialWindowSize: windowBytes, maxFrameSize: 1 << 20 },
      });
    } catch {
      this.#retry(peer);
      return;
    }
    peer.session = session;
    const fail = () => {
      if (peer.session !== session) return;
      const wasActive = peer.activeSince !== null;
      this.#disconnect(peer);
      if (wasActive) {
        this.#logger.warn(
          "rafthttp/peer_status.go:68",
          "peer became inactive (message send to peer failed)",
          {
            "peer-id": idHex(peer.id),
          },
        );
        this.#handler()?.reportUnreachable(peer.id);
      }
      this.#retry(peer);
    };
    session.on("error", fail);
    session.on("close", fail);
    session.on("goaway", fail);
    const stream = session.request({
      ":method": "POST",
      ":path": streamPath,
      "x-etcd-cluster-id": idHex(handler.clusterId()),
      "x-server-from": idHex(handler.memberId()),
      "x-server-version": serverVersion,
    }, { endStream: false });
    peer.stream = stream;
    stream.on("error", fail);
    stream.on("close", fail);
    stream.on("response", (headers) => {
      const status = Number(headers[":status"]);
      if (status !== 200) {
        if (status === 410) {
          this.#logger.error(
            "rafthttp/stream.go:571",
            "the member has been permanently removed from the cluster",
            { "peer-id": idHex(peer.id) },
          );
        } else if (status === 412) {
          this.#logger.warn(
            "rafthttp/stream.go:580",
            "request sent was ignored due to cluster ID mismatch",
            {
              "remote-peer-id": idHex(peer.id),
              "remote-peer-cluster-id": String(headers["x-etcd-cluster-id"] ?? ""),
              "local-member-cluster-id": idHex(handler.clusterId()),
            },
          );
        }
        fail();
        return;
      }
      peer.activeSince = Date.now();
      peer.backoffMs = 50;
      this.#logger.info("rafthttp/peer_status.go:51", "peer became active", {
        "peer-id": idHex(peer.id),
      });
    });
    // Responses carry nothing; read to keep flow control moving.
    stream.on("data", () => {});
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

/** Asks a peer URL for the cluster's ID and members (etcd's GetClusterFromRemotePeers). */
export async function fetchRemoteCluster(
  url: string,
  timeoutMs: number,
): Promise<{ clusterId: bigint; members: RemoteMember[] }> {
  const session = http2.connect(url);
  session.on("error", () => {});
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timeout")), timeoutMs);
      const stream = session.request({ ":method": "GET", ":path": "/members" });
      let body = "";
      let cluster = "";
      stream.setEncoding("utf8");
      stream.on("response", (h) => {
        cluster = String(h["x-etcd-cluster-id"] ?? "");
      });
      stream.on("data", (c: string) => body += c);
      stream.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      stream.on("end", () => {
        clearTimeout(timer);
        try {
          const list = JSON.parse(body) as {
            id: string;
            name: string;
            peerURLs: string[];
            clientURLs: string[];
            isLearner: boolean;
          }[];
          const clusterId = parseId(cluster);
          if (clusterId === null) throw new Error("missing cluster ID");
          resolve({
            clusterId,
            members: list.map((m) => ({
              id: BigInt(`0x${m.id}`),
              name: m.name,
              peerUrls: m.peerURLs,
              clientUrls: m.clientURLs,
              isLearner: m.isLearner,
            })),
          });
        } catch (e) {
          reject(e);
        }
      });
    });
  } finally {
    session.destroy();
  }
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
    const session = http2.connect(url);
    session.on("error", () => {});
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>(
        (resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("timeout")), timeoutMs);
          const stream = session.request({
            ":method": "POST",
            ":path": `/members/promote/${idHex(id)}`,
            "x-etcd-cluster-id": idHex(clusterId),
          });
          let status = 0;
          let body = "";
          stream.setEncoding("utf8");
          stream.on("response", (h) => status = Number(h[":status"]));
          stream.on("data", (c: string) => body += c);
          stream.on("error", (e) => {
            clearTimeout(timer);
            reject(e);
          });
          stream.on("end", () => {
            clearTimeout(timer);
            resolve({ status, body });
          });
          stream.end();
        },
      );
      if (status === 200) return;
      const parsed = JSON.parse(body) as { message?: string; code?: number };
      throw new EtcdError(
        (parsed.code ?? 2) as GrpcCodeValue,
        parsed.message ?? `status ${status}`,
      );
    } catch (e) {
      if (e instanceof EtcdError) throw e;
      lastError = e;
    } finally {
      session.destroy();
    }
  }
  throw lastError;
}
