import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { Logger } from "../core/log.ts";
import { connectHandler } from "./connect.ts";
import { handleGrpcStream, type MethodTable } from "./grpc.ts";
import { filterAuthority } from "./h2_authority.ts";

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

const preface = "PRI * HTTP/2.0";
/** How long a connection may stay silent before its first bytes; then it is closed. */
const firstBytesTimeoutMs = 30_000;

/**
 * One client port serving three protocols: gRPC over h2c (the lean handler), and HTTP/1.1 for
 * etcd's plain endpoints plus Connect and gRPC-Web. The first bytes of a connection decide:
 * the HTTP/2 preface goes to the h2c server, anything else to the HTTP/1.1 server (which
 * answers garbage with 400 and closes).
 */
export function listenClients(options: ClientListenerOptions): Promise<net.Server> {
  const { table, logger } = options;
  const h2 = http2.createServer({
    maxSessionMemory: 64,
    settings: { maxConcurrentStreams: 4294967295 },
  });
  // A client may vanish at any moment (reset, killed, timed out): a write to its socket then fails
  // with EPIPE/ECONNRESET on the session or a stream. Those errors concern that client only and
  // must never reach the process as uncaught exceptions.
  h2.on("session", (session) => session.on("error", () => {}));
  h2.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const contentType = String(headers["content-type"] ?? "");
    if (
      contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")
    ) {
      handleGrpcStream(
        table,
        {
          maxRecvBytes: options.maxRecvBytes,
          onInternalError: (method, error) =>
            logger.error("v3rpc/grpc.go:1", "unexpected error in handler", {
              method,
              error: error instanceof Error ? error.stack ?? error.message : String(error),
            }),
        },
        stream,
        headers,
      );
      return;
    }
    stream.respond({ ":status": 415, "content-type": "text/plain" });
    stream.end("detcd serves gRPC on h2c; use HTTP/1.1 for Connect and gRPC-Web\n");
  });
  h2.on("sessionError", () => {});
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
    socket.setTimeout(firstBytesTimeoutMs, () => socket.destroy());
    socket.on("error", () => socket.destroy());
    socket.once("data", (chunk: Uint8Array) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(chunk);
      const head = new TextDecoder().decode(chunk.subarray(0, preface.length));
      if (preface.startsWith(head) || head.startsWith(preface)) {
        coalesceWrites(socket);
        // etcdctl given http:// endpoints sends `:authority: http://host:port`, which node:http2
        // in Deno rejects; this rewrites such connections and steps aside for all others.
        filterAuthority(socket);
        h2.emit("connection", socket);
      } else h1.emit("connection", socket);
      socket.resume();
    });
  });
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

/**
 * HTTP/2 writes every frame to the socket as it is produced (headers, data, trailers: three
 * send() calls per unary reply). Corking the socket for the rest of the current turn of the
 * event loop lets all replies produced together leave in one writev. Measured with strace under
 * ebench ranges: 3.5 sendto per request became about one writev, throughput about 2x.
 */
function coalesceWrites(socket: net.Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: net.Socket, ...args: Parameters<net.Socket["write"]>) {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return write.apply(this, args);
  } as net.Socket["write"];
}
