/**
 * The peer port's accepting side: Raft streams from peers (upgraded from `POST /raft/stream`) and
 * the plain HTTP/1.1 endpoints that joining members and followers call (GET /members, /version,
 * POST /members/promote/<id>, POST /leases/{renew,timetolive}/<id>). Both share one port: the
 * first request head decides which one a connection is.
 */

import * as http from "node:http";
import * as net from "node:net";
import * as tls from "node:tls";
import type { Logger } from "../../core/log.ts";
import type { MemberInfo } from "../../core/node/mod.ts";
import { clusterVersion, idHex, SERVER_VERSION } from "../../core/node/mod.ts";
import { decodeMessage, type Message } from "../../core/raft/mod.ts";
import { hostPort, keepAliveWhileOpen } from "../listener.ts";
import { CALLS_PATH, CALLS_PROTOCOL, serveCalls } from "./calls.ts";
import { serveSnapshot, SNAPSHOT_PATH, SNAPSHOT_PROTOCOL } from "./snapshots.ts";
import type { PeerHandler } from "./handler.ts";
import { peerRefusal, type PeerTls } from "./tls.ts";
import {
  errorJson,
  FrameReader,
  leaseTtlJson,
  type MemberJson,
  parseHead,
  parseId,
  readHead,
  STREAM_PATH,
  UPGRADE_PROTOCOL,
} from "./_wire.ts";

/**
 * Starts the peer listeners; returns a function that closes them. `handler` is asked per request
 * because the listeners start before the member (which answers 503 until then).
 */
export async function listenPeers(
  urls: readonly string[],
  handler: () => PeerHandler | null,
  logger: Logger,
  peerTls: PeerTls | null = null,
): Promise<{ close(): void }> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const plain = http.createServer((req, res) => servePlain(req, res, handler));
  plain.on("clientError", (_e, socket) => socket.destroy());
  keepAliveWhileOpen(plain, () => servers.some((s) => s.listening));
  for (const url of urls) {
    const { host, port } = hostPort(url);
    const serve = (socket: net.Socket) => {
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
        if (request && request.method === "POST" && request.path === STREAM_PATH) {
          serveStream(socket, request.headers, rest, handler, logger);
          return;
        }
        if (request && request.method === "POST" && request.path === SNAPSHOT_PATH) {
          const admitted = admit(socket, request.headers, handler, logger, SNAPSHOT_PROTOCOL);
          if (admitted) {
            void serveSnapshot(socket, rest, admitted.handler, logger, admitted.from);
          }
          return;
        }
        if (request && request.method === "POST" && request.path === CALLS_PATH) {
          const admitted = admit(socket, request.headers, handler, logger, CALLS_PROTOCOL);
          if (admitted) serveCalls(socket, rest, admitted.handler, logger, admitted.from);
          return;
        }
        socket.unshift(Buffer.concat([Buffer.from(head), Buffer.from(rest)]));
        plain.emit("connection", socket);
        socket.resume();
      });
    };
    let server: net.Server;
    if (url.startsWith("https://")) {
      if (peerTls === null) throw new Error(`no peer TLS configuration for ${url}`);
      const secure = tls.createServer(peerTls.server, (socket) => {
        const refusal = peerRefusal(peerTls, socket);
        if (refusal !== null) {
          logger.warn("embed/config_logging.go:279", "rejected connection", {
            "remote-addr": `${socket.remoteAddress}:${socket.remotePort}`,
            "error": refusal,
          });
          socket.destroy();
          return;
        }
        serve(socket);
      });
      // A handshake that fails (no or untrusted client certificate) closes only that connection.
      secure.on("tlsClientError", (_e, socket) => socket.destroy());
      server = secure;
    } else {
      server = net.createServer(serve);
    }
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

/**
 * Checks an upgrade request's cluster and sender (as etcd's rafthttp does) and answers 101, or
 * refuses it with etcd's status and closes the connection (null).
 */
function admit(
  socket: net.Socket,
  headers: Map<string, string>,
  handlerOf: () => PeerHandler | null,
  logger: Logger,
  protocol: string,
): { handler: PeerHandler; from: bigint } | null {
  const refuse = (status: string, message: string, extra = "") => {
    const body = JSON.stringify({ message });
    socket.end(
      `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
        `${extra}Connection: close\r\n\r\n${body}`,
    );
    return null;
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
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${protocol}\r\nConnection: Upgrade\r\n` +
      `${clusterHeader}\r\n`,
  );
  return { handler, from };
}

function serveStream(
  socket: net.Socket,
  headers: Map<string, string>,
  rest: Uint8Array,
  handlerOf: () => PeerHandler | null,
  logger: Logger,
): void {
  const senderUrls = (headers.get("x-peerurls") ?? "").split(",").filter((u) => u !== "");
  const admitted = admit(socket, headers, handlerOf, logger, UPGRADE_PROTOCOL);
  if (admitted === null) return;
  const { handler, from } = admitted;
  if (senderUrls.length > 0) handler.learnSender(from, senderUrls);
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
    return reply(200, { etcdserver: SERVER_VERSION, etcdcluster: clusterVersion });
  }
  if (path === "/members/hashkv") {
    serveHashKV(req, res, handler);
    return;
  }
  const promote = /^\/members\/promote\/([0-9a-f]{1,16})$/.exec(path);
  if (promote && req.method === "POST") {
    req.resume();
    handler.promote(BigInt(`0x${promote[1]}`)).then(
      () => reply(200, handler.members().map(memberJson)),
      (e) => reply(412, errorJson(e)),
    );
    return;
  }
  const lease = /^\/leases\/(renew|timetolive)\/([0-9a-f]{1,16})$/.exec(path);
  if (lease && req.method === "POST") {
    req.resume();
    const id = BigInt.asIntN(64, BigInt(`0x${lease[2]}`));
    const failed = (e: unknown) => reply(412, errorJson(e));
    if (lease[1] === "renew") {
      handler.leaseRenew(id).then((ttl) => reply(200, { ttl: String(ttl) }), failed);
    } else {
      handler.leaseTimeToLive(id).then((t) => reply(200, leaseTtlJson(t)), failed);
    }
    return;
  }
  reply(404, { message: "not found" });
}

/**
 * etcd's GET /members/hashkv (corruption checks): the body is `{"revision":N}`, the answer the
 * HashKVResponse as Go's encoding/json writes it; a compacted or future revision is a 400 with
 * the error's text, which the asking member recognises.
 */
function serveHashKV(req: http.IncomingMessage, res: http.ServerResponse, handler: PeerHandler) {
  const plain = (status: number, text: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      ...headers,
    });
    res.end(`${text}\n`);
  };
  if (req.method !== "GET") return plain(405, "Method Not Allowed", { allow: "GET" });
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk: string) => body += chunk);
  req.on("end", async () => {
    let revision = 0n;
    try {
      const parsed = body.trim() === "" ? {} : JSON.parse(body);
      if (parsed.revision !== undefined) revision = BigInt(parsed.revision);
    } catch {
      return plain(400, "error unmarshalling request");
    }
    let result;
    try {
      result = await handler.hashKV(revision);
    } catch (e) {
      return plain(400, e instanceof Error ? e.message : String(e));
    }
    const header = result.revision === 0n ? {} : { revision: Number(result.revision) };
    const json: Record<string, unknown> = { header };
    if (result.hash !== 0) json.hash = result.hash;
    if (result.compactRevision !== 0n) json.compact_revision = Number(result.compactRevision);
    res.writeHead(200, {
      "content-type": "application/json",
      "x-etcd-cluster-id": idHex(handler.clusterId()),
    });
    res.end(JSON.stringify(json));
  });
}

function memberJson(m: MemberInfo): MemberJson {
  return {
    id: idHex(m.id),
    name: m.name,
    peerURLs: m.peerUrls,
    clientURLs: m.clientUrls,
    isLearner: m.isLearner,
  };
}
