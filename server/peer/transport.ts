/**
 * The peer port's sending side: one long-lived outgoing Raft stream per peer, reconnected with a
 * bounded backoff. Failures become Raft's inputs: a message that cannot go is reported
 * unreachable (Raft sends it again), a refused connection reports the peer down, and a snapshot's
 * write outcome is reported back.
 */

import * as net from "node:net";
import type { Logger } from "../../core/log.ts";
import type { SnapshotBody, Transport } from "../../core/node/mod.ts";
import { idHex } from "../../core/node/mod.ts";
import { type Message, MessageType } from "../../core/raft/mod.ts";
import { hostPort } from "../listener.ts";
import type { PeerHandler } from "./handler.ts";
import { sendSnapshot } from "./snapshots.ts";
import { connectTls, type PeerTls } from "./tls.ts";
import {
  encodeFrames,
  parseHead,
  readHead,
  STREAM_PATH,
  UPGRADE_PROTOCOL,
  upgradeHead,
} from "./_wire.ts";

/** Above this many bytes queued on a connection, messages other than snapshots are dropped. */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

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
  /** The URL of the current (or last) connection. */
  url: string;
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
  /** Connections sending snapshots. */
  #snapshotSockets = new Set<net.Socket>();

  readonly #tls: PeerTls | null;

  constructor(handler: () => PeerHandler | null, logger: Logger, peerTls: PeerTls | null = null) {
    this.#tls = peerTls;
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
        socket.writableLength < MAX_QUEUED_BYTES;
      if (!usable) {
        this.#unreachable(to, list);
        continue;
      }
      const out = encodeFrames(list);
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

  /**
   * Streams a snapshot to a connected peer on a connection of its own (server/peer/snapshots.ts)
   * and reports the outcome to Raft.
   */
  sendSnapshot(message: Message, body: SnapshotBody): void {
    const to = message.to;
    const peer = this.#peers.get(to);
    const handler = this.#handler();
    if (this.#closed || !peer || peer.activeSince === null || !handler) {
      body.close();
      this.#unreachable(to, [message]);
      return;
    }
    let dialed;
    try {
      dialed = this.#dial(peer.url);
    } catch (e) {
      body.close();
      this.#snapshotSent(handler, to, body.size, e);
      return;
    }
    const { socket, target, ready } = dialed;
    this.#snapshotSockets.add(socket);
    sendSnapshot(socket, ready, target, handler, message, body, () => this.#closed).then(
      () => this.#snapshotSent(handler, to, body.size, null),
      (e) => this.#snapshotSent(handler, to, body.size, e),
    ).finally(() => this.#snapshotSockets.delete(socket));
  }

  #snapshotSent(handler: PeerHandler, to: bigint, bytes: number, error: unknown): void {
    if (this.#closed) return;
    if (error === null) {
      this.#logger.info("rafthttp/snapshot_sender.go:129", "sent database snapshot", {
        "remote-peer-id": idHex(to),
        bytes,
      });
    } else {
      this.#logger.warn("rafthttp/snapshot_sender.go:108", "failed to send database snapshot", {
        "remote-peer-id": idHex(to),
        bytes,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    handler.reportSnapshot(to, error === null);
  }

  /** A new connection to a peer URL, and the event that says it is ready for the upgrade. */
  #dial(
    url: string,
  ): { socket: net.Socket; target: { host: string; port: number }; ready: string } {
    const target = hostPort(url);
    const secure = url.startsWith("https://") && this.#tls !== null;
    const socket: net.Socket = secure
      ? connectTls(this.#tls!, target.host, target.port)
      : net.connect(target.port, target.host);
    // Over TLS the stream starts once the handshake verified the peer's certificate.
    return { socket, target, ready: secure ? "secureConnect" : "connect" };
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
      url: peerUrls[0] ?? "",
    };
    this.#peers.set(id, peer);
    this.#connect(peer);
  }

  /**
   * A peer opened its stream to this member. One not (yet) in the membership is reached at its
   * URLs; a known one keeps its URLs, and if this member's connection to it waits out a backoff
   * (it was down), it is dialed now: it is up, and it learns of its leader only through this
   * connection (a restarted follower waited up to a second for the next retry).
   */
  addRemote(id: bigint, peerUrls: readonly string[]): void {
    const peer = this.#peers.get(id);
    if (peer === undefined) return this.addPeer(id, peerUrls);
    if (peer.retryTimer === null || peer.closed || this.#closed) return;
    clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    peer.backoffMs = 50;
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
    for (const socket of this.#snapshotSockets) socket.destroy();
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
    let dialed;
    try {
      dialed = this.#dial(url);
    } catch {
      this.#retry(peer);
      return;
    }
    const { socket, target, ready } = dialed;
    peer.url = url;
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
    socket.on(ready, () => {
      socket.write(
        upgradeHead(STREAM_PATH, UPGRADE_PROTOCOL, target, handler, handler.peerUrls()),
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
