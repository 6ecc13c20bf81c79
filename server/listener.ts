import * as http from "node:http";
import * as net from "node:net";
import type { Logger } from "../core/log.ts";
import { connectHandler } from "./connect.ts";
import { handleGrpcStream, type MethodTable, refuseNonGrpc } from "./grpc.ts";
import { H2Connection, type H2Stream } from "./h2/mod.ts";

/** A plain HTTP/1.1 answer (etcd's /health, /version, /metrics). */
export interface PlainResponse {
  status: number;
  contentType: string;
  body: string;
}

/** Answers etcd's plain HTTP/1.1 endpoints by path; null for paths it does not own. */
export type Http1Routes = (
  path: string,
) => PlainResponse | null | Promise<PlainResponse | null>;

/** What one client listener needs. */
export interface ClientListenerOptions {
  host: string;
  port: number;
  table: MethodTable;
  http1Routes: Http1Routes;
  maxRecvBytes: number;
  logger: Logger;
  /** Share the port with other listeners (one per client worker). */
  reusePort?: boolean;
}

const PREFACE = "PRI * HTTP/2.0";
/** How long a connection may stay silent before its first bytes; then it is closed. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

/**
 * One client port serving three protocols: gRPC over h2c (the lean handler), and HTTP/1.1 for
 * etcd's plain endpoints plus Connect and gRPC-Web. The first bytes of a connection decide:
 * the HTTP/2 preface goes to the h2c server, anything else to the HTTP/1.1 server (which
 * answers garbage with 400 and closes).
 */
export function listenClients(options: ClientListenerOptions): Promise<net.Server> {
  const { table, logger } = options;
  const grpcOptions = {
    maxRecvBytes: options.maxRecvBytes,
    onInternalError: (method: string, error: unknown) =>
      logger.error("v3rpc/grpc.go:1", "unexpected error in handler", {
        method,
        error: error instanceof Error ? error.stack ?? error.message : String(error),
      }),
  };
  const onStream = (stream: H2Stream) => {
    const contentType = stream.headers["content-type"] ?? "";
    if (
      contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")
    ) {
      handleGrpcStream(table, grpcOptions, stream);
    } else refuseNonGrpc(stream);
  };
  // Live h2c connections, told to go away (GOAWAY, then close when idle) when the server closes.
  const connections = new Set<H2Connection>();
  const connect = connectHandler(table, options.maxRecvBytes, (_req, res) => {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end("404 page not found\n");
  });
  const h1 = http.createServer(async (req, res) => {
    const plain = await options.http1Routes((req.url ?? "").split("?")[0]);
    if (plain === null) {
      connect(req, res);
      return;
    }
    res.writeHead(plain.status, { "content-type": plain.contentType });
    res.end(plain.body);
  });
  h1.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => socket.destroy());
    socket.on("error", () => socket.destroy());
    socket.once("data", (chunk: Uint8Array) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(chunk);
      const head = new TextDecoder().decode(chunk.subarray(0, PREFACE.length));
      if (PREFACE.startsWith(head) || head.startsWith(PREFACE)) {
        // Our own HTTP/2 server (server/h2): it batches each turn's output into one write and
        // accepts `:authority: http://host:port` (etcdctl given http:// endpoints) as Go does.
        const connection = new H2Connection(socket, { onStream });
        connections.add(connection);
        socket.once("close", () => connections.delete(connection));
      } else h1.emit("connection", socket);
      socket.resume();
    });
  });
  const close = server.close.bind(server);
  server.close = ((callback?: (err?: Error) => void) => {
    for (const connection of connections) connection.shutdown();
    return close(callback);
  }) as net.Server["close"];
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: options.port, host: options.host, reusePort: options.reusePort }, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/** Splits a listen URL into what `listen` needs; IPv6 brackets removed. */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return { host, port };
}
