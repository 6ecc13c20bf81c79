import * as http from "node:http";
import * as net from "node:net";
import * as tls from "node:tls";
import { crlRefusal } from "./crl.ts";
import type { Logger } from "../core/log.ts";
import { connectHandler } from "./connect.ts";
import { handleConnectStream, isConnectRequest } from "./connect_h2.ts";
import { handleGrpcStream, type MethodTable, type PeerInfo, refuseNonGrpc } from "./grpc.ts";
import { encodeHeaders, H2Connection, type H2Stream } from "./h2/mod.ts";
import { type GatewayExchange, gatewayHandler, type HeaderList } from "./gateway.ts";
import { acceptWebSocket, isWebSocketUpgrade, upgradeRefusal } from "./websocket.ts";

/** A plain HTTP/1.1 answer (etcd's /health, /version, /metrics). */
export interface PlainResponse {
  status: number;
  contentType: string;
  body: string;
  /** Further response headers (Allow, X-Content-Type-Options). */
  headers?: Record<string, string>;
  /** Same-origin only: without etcd's CORS headers (the web console's pages). */
  noCors?: boolean;
}

/**
 * Answers etcd's plain HTTP/1.1 endpoints by the request target (path and query) and method;
 * null for paths it does not own.
 */
export type Http1Routes = (
  target: string,
  method: string,
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
  /** Serve TLS (an https:// client URL) with these credentials. */
  tls?: ClientTls;
  /**
   * With `tls`: the same address is also an http:// client URL, so the port speaks both, as
   * etcd's does (a connection opening with a TLS record is TLS, anything else plain).
   */
  alsoPlain?: boolean;
  /** Whether auth is enabled now (the gateway refuses a certificate's CN then, as etcd). */
  authEnabled?: () => boolean;
}

/** The client port's TLS settings (--cert-file, --key-file, --trusted-ca-file, ...). */
export interface ClientTls {
  /** PEM certificate chain and private key. */
  cert: string;
  key: string;
  /** PEM CA certificates client certificates must chain to (--trusted-ca-file). */
  ca?: string;
  /**
   * --client-cert-auth: a client without a certificate signed by `ca` is refused in the
   * handshake, and a verified certificate's common name names the user of calls without a token.
   */
  clientCertAuth: boolean;
  /**
   * --client-crl-file: the revocation list, read on each new connection; a client presenting a
   * revoked certificate is disconnected after the handshake (server/crl.ts).
   */
  crlFile?: string;
}

/**
 * How long a TLS client may take to complete its handshake before its connection is closed.
 * etcd (Go) sets no deadline; 10 s bounds connections that never send a ClientHello, as the
 * 30 s first-bytes limit does on plain ports.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

const PREFACE = "PRI * HTTP/2.0";
/** The first byte of a TLS connection (a handshake record carrying the ClientHello). */
const TLS_HANDSHAKE_RECORD = 0x16;
/** How long a connection may stay silent before its first bytes; then it is closed. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

/**
 * One client port serving three protocols: gRPC over h2c (the lean handler), and HTTP/1.1 for
 * etcd's plain endpoints plus Connect and gRPC-Web. The first bytes of a connection decide:
 * the HTTP/2 preface goes to the h2c server, anything else to the HTTP/1.1 server (which
 * answers garbage with 400 and closes).
 */
export async function listenClients(options: ClientListenerOptions): Promise<net.Server> {
  const { table, logger } = options;
  const grpcOptions = {
    maxRecvBytes: options.maxRecvBytes,
    onInternalError: (method: string, error: unknown) =>
      logger.error("v3rpc/grpc.go:1", "unexpected error in handler", {
        method,
        error: error instanceof Error ? error.stack ?? error.message : String(error),
      }),
  };
  const gateway = gatewayHandler(table, options.maxRecvBytes);
  // One WebSocket message holds at most a request's JSON text (base64 grows bytes by a third).
  const maxWebSocketMessage = options.maxRecvBytes * 2 + 1024 * 1024;
  // etcd's access controller: with --client-cert-auth and auth on, a gateway request whose
  // verified certificate names someone is refused (the gateway's calls cannot act as that user).
  const refusedCommonName = (peer: PeerInfo | undefined) =>
    peer?.tlsCommonName !== undefined && peer.tlsCommonName !== "" &&
    (options.authEnabled?.() ?? false);
  const streamHandler = (peer: PeerInfo) => (stream: H2Stream) => {
    const contentType = stream.headers["content-type"] ?? "";
    if (
      contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")
    ) {
      handleGrpcStream(table, grpcOptions, stream, peer);
    } else if (gatewayPathOf(stream.headers[":path"] ?? "") !== null && refusedCommonName(peer)) {
      stream.respond(encodeHeaders({
        ":status": "400",
        "content-type": "text/plain; charset=utf-8",
        "x-content-type-options": "nosniff",
      }));
      stream.write(new TextEncoder().encode(`${GATEWAY_CN_REFUSAL}\n`));
      stream.end();
    } else if (
      gatewayPathOf(stream.headers[":path"] ?? "") !== null && gateway(h2Exchange(stream))
    ) {
      // The JSON gateway (curl speaks HTTP/2 to a TLS port).
    } else if (isConnectRequest(stream.headers)) {
      // Connect from a browser on a TLS port (ALPN picked HTTP/2).
      handleConnectStream(table, options.maxRecvBytes, stream, peer).catch((error) =>
        grpcOptions.onInternalError(stream.headers[":path"] ?? "", error)
      );
    } else if (stream.headers[":method"] === "GET") {
      // etcd's plain endpoints over HTTP/2 too (curl picks h2 on a TLS port).
      Promise.resolve(options.http1Routes(stream.headers[":path"] ?? "", "GET")).then((plain) => {
        if (stream.closed) return;
        if (plain === null) {
          refuseNonGrpc(stream);
          return;
        }
        stream.respond(encodeHeaders({
          ":status": String(plain.status),
          "content-type": plain.contentType,
          ...lowerCased(plain.headers ?? {}),
        }));
        stream.write(new TextEncoder().encode(plain.body));
        stream.end();
      });
    } else refuseNonGrpc(stream);
  };
  const plainPeer: PeerInfo = {};
  const onStream = streamHandler(plainPeer);
  // What each TLS connection knows of its client, for the HTTP/1.1 requests it carries.
  const peers = new WeakMap<net.Socket, PeerInfo>();
  // Live h2c connections, told to go away (GOAWAY, then close when idle) when the server closes.
  const connections = new Set<H2Connection>();
  const connect = connectHandler(
    table,
    options.maxRecvBytes,
    (_req, res) => {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("404 page not found\n");
    },
    (req) => peers.get(req.socket),
  );
  // A WebSocket upgrade on a gateway path that gorilla's Upgrader would accept is taken over
  // (server/websocket.ts); any other upgrade request is an ordinary HTTP/1.1 request, as in Go.
  const takesUpgrade = (req: http.IncomingMessage) =>
    gatewayPathOf(req.url ?? "") !== null && isWebSocketUpgrade(req.headers) &&
    upgradeRefusal(req.method ?? "", req.headers) === null &&
    !refusedCommonName(peers.get(req.socket));
  const h1 = http.createServer({
    shouldUpgradeCallback: takesUpgrade,
  } as http.ServerOptions, async (req, res) => {
    const gatewayPath = gatewayPathOf(req.url ?? "");
    if (gatewayPath !== null || req.method === "OPTIONS") {
      // etcd's access controller: CORS headers, and OPTIONS answered before any route.
      for (const [name, value] of CORS_HEADERS) res.setHeader(name, value);
      if (req.method === "OPTIONS") {
        res.writeHead(200, { "Content-Length": "0" });
        res.end();
        return;
      }
      if (gatewayPath !== null && refusedCommonName(peers.get(req.socket))) {
        res.writeHead(400, {
          "Content-Type": "text/plain; charset=utf-8",
          "X-Content-Type-Options": "nosniff",
        });
        res.end(`${GATEWAY_CN_REFUSAL}\n`);
        return;
      }
      if (gatewayPath !== null && isWebSocketUpgrade(req.headers)) {
        // gorilla's refusal of a handshake it cannot complete.
        const status = upgradeRefusal(req.method ?? "", req.headers) ?? 400;
        const text = `${http.STATUS_CODES[status]}\n`;
        res.writeHead(status, {
          "Content-Type": "text/plain; charset=utf-8",
          "Sec-Websocket-Version": "13",
          "X-Content-Type-Options": "nosniff",
          "Content-Length": String(text.length),
        });
        res.end(text);
        return;
      }
      if (gatewayPath !== null && gateway(h1Exchange(req, res, gatewayPath))) return;
    }
    const plain = await options.http1Routes(req.url ?? "", req.method ?? "GET");
    if (plain === null) {
      connect(req, res);
      return;
    }
    if (!plain.noCors) { for (const [name, value] of CORS_HEADERS) res.setHeader(name, value); }
    res.writeHead(plain.status, { "content-type": plain.contentType, ...plain.headers });
    res.end(plain.body);
  });
  // deno-lint-ignore prefer-const
  let server: net.Server;
  keepAliveWhileOpen(h1, () => server?.listening ?? false);
  h1.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Uint8Array) => {
    const path = gatewayPathOf(req.url ?? "")!;
    gateway(acceptWebSocket(req, socket, head, path, maxWebSocketMessage));
  });
  h1.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  const serveH2 = (socket: net.Socket, handler: (stream: H2Stream) => void) => {
    // Our own HTTP/2 server (server/h2): it batches each turn's output into one write and
    // accepts `:authority: http://host:port` (etcdctl given http:// endpoints) as Go does.
    const connection = new H2Connection(socket, { onStream: handler });
    connections.add(connection);
    socket.once("close", () => connections.delete(connection));
  };
  // Both on one port: TLS connections are relayed to a TLS server on a loopback port of its own
  // (Deno's node:tls cannot take over a socket whose first bytes were already read), and the
  // relayed connections' real remote addresses are kept for the log lines.
  let inner: net.Server | null = null;
  const relayed = new Map<number, string>();
  const remoteOf = (socket: net.Socket) =>
    (socket.remoteAddress === "127.0.0.1" && relayed.get(socket.remotePort ?? -1)) ||
    `${socket.remoteAddress}:${socket.remotePort}`;
  const relay = (socket: net.Socket, innerPort: number) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const out = net.connect({ host: "127.0.0.1", port: innerPort });
    out.setNoDelay(true);
    out.once("connect", () => relayed.set(out.localPort!, remote));
    out.once("close", () => {
      relayed.delete(out.localPort!);
      socket.destroy();
    });
    out.on("error", () => out.destroy());
    socket.once("close", () => out.destroy());
    socket.pipe(out);
    out.pipe(socket);
  };
  server = options.tls && !options.alsoPlain
    ? listenTls(options.tls)
    : net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => socket.destroy());
      socket.on("error", () => socket.destroy());
      socket.once("data", (chunk: Uint8Array) => {
        socket.setTimeout(0);
        socket.pause();
        socket.unshift(chunk);
        const head = new TextDecoder().decode(chunk.subarray(0, PREFACE.length));
        if (inner !== null && chunk[0] === TLS_HANDSHAKE_RECORD) {
          relay(socket, (inner.address() as net.AddressInfo).port);
        } else if (PREFACE.startsWith(head) || head.startsWith(PREFACE)) {
          serveH2(socket, onStream);
        } else {
          // Deno's HTTP/1.1 server reads a fresh socket's handle directly (Node's
          // parser.consume), which would let later bytes of a large request reach its parser
          // before the first chunk put back above: marked as taken, the server reads the
          // socket's stream instead, in order.
          const handle = (socket as unknown as { _handle?: { _consumed?: boolean } })._handle;
          if (handle) handle._consumed = true;
          h1.emit("connection", socket);
        }
        socket.resume();
      });
    });
  if (options.tls && options.alsoPlain) {
    const tlsServer = listenTls(options.tls);
    await new Promise<void>((resolve, reject) => {
      tlsServer.once("error", reject);
      tlsServer.listen({ port: 0, host: "127.0.0.1" }, () => resolve());
    });
    inner = tlsServer;
  }
  /**
   * The TLS port: the handshake (ALPN `h2` or `http/1.1`) decides the protocol; a client that
   * fails it (no or an untrusted certificate with --client-cert-auth, plain HTTP, silence past
   * TLS_HANDSHAKE_TIMEOUT_MS) is disconnected.
   */
  function listenTls(settings: ClientTls): net.Server {
    const tlsServer = tls.createServer({
      cert: settings.cert,
      key: settings.key,
      ca: settings.ca,
      requestCert: settings.clientCertAuth,
      rejectUnauthorized: settings.clientCertAuth,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    }, (socket) => {
      socket.setNoDelay(true);
      socket.on("error", () => socket.destroy());
      const revoked = settings.crlFile ? crlRefusal(settings.crlFile, socket) : null;
      if (revoked !== null) {
        logger.warn("embed/config_logging.go:287", "rejected connection", {
          "remote-addr": remoteOf(socket),
          "server-name": "",
          error: revoked,
        });
        socket.destroy();
        return;
      }
      const peer: PeerInfo = settings.clientCertAuth ? { tlsCommonName: commonNameOf(socket) } : {};
      if (socket.alpnProtocol === "h2") serveH2(socket, streamHandler(peer));
      else {
        peers.set(socket, peer);
        h1.emit("connection", socket);
      }
    });
    // Deno's node:tls reports a failed or timed-out handshake but leaves the socket open.
    tlsServer.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
      logger.warn("embed/config_logging.go:287", "rejected connection", {
        ...(socket?.remoteAddress !== undefined ? { "remote-addr": remoteOf(socket) } : {}),
        "server-name": "",
        error: handshakeError(error),
      });
      socket?.destroy();
    });
    return tlsServer;
  }
  const close = server.close.bind(server);
  server.close = ((callback?: (err?: Error) => void) => {
    for (const connection of connections) connection.shutdown();
    inner?.close();
    return close(callback);
  }) as net.Server["close"];
  return await new Promise((resolve, reject) => {
    const failed = (e: Error) => {
      inner?.close();
      reject(e);
    };
    server.once("error", failed);
    server.listen({ port: options.port, host: options.host, reusePort: options.reusePort }, () => {
      server.off("error", failed);
      resolve(server);
    });
  });
}

const GATEWAY_CN_REFUSAL =
  "CommonName of client sending a request against gateway will be ignored and not used as expected";

/** etcd's CORS headers (addCORSHeader with the default --cors "*"), on its HTTP answers. */
const CORS_HEADERS: HeaderList = [
  ["Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"],
  ["Access-Control-Allow-Origin", "*"],
  ["Access-Control-Allow-Headers", "accept, content-type, authorization"],
];

/**
 * An HTTP/1.1 server that is never listen()ed but given connections (`emit("connection")`, after
 * the first bytes chose the protocol) reports `listening: false`, and Deno's node:http then closes
 * each connection after its first response though the response said `Connection: keep-alive`:
 * a client reusing the connection (a browser, fetch, Go's http.Client) has its next request cut
 * off ("connection closed before message completed"). The server reports what `isOpen` says (the
 * listener that feeds it), so connections stay open between requests and close once it closes.
 */
export function keepAliveWhileOpen(server: http.Server, isOpen: () => boolean): void {
  Object.defineProperty(server, "listening", { get: isOpen, configurable: true });
}

/** The gateway path of a request target (`/v3beta/` read as `/v3/`), or null if not one. */
function gatewayPathOf(target: string): string | null {
  const path = target.split("?", 1)[0];
  if (path.startsWith("/v3/")) return path;
  if (path.startsWith("/v3beta/")) return `/v3/${path.slice("/v3beta/".length)}`;
  return null;
}

/** A gateway exchange over node:http. */
function h1Exchange(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
): GatewayExchange {
  const aborted = new AbortController();
  res.once("close", () => aborted.abort());
  return {
    method: req.method ?? "GET",
    path,
    headers: req.headers,
    body: req as AsyncIterable<Uint8Array>,
    signal: aborted.signal,
    reply(status, headers, body) {
      if (res.destroyed) return;
      const bytes = new TextEncoder().encode(body);
      res.writeHead(status, [...headers.flat(), "Content-Length", String(bytes.length)]);
      res.end(bytes);
    },
    start(status, headers) {
      if (res.destroyed) return;
      res.writeHead(status, headers.filter(([name]) => name !== "Transfer-Encoding").flat());
      res.flushHeaders();
    },
    // A client that went away gets nothing more (its call is being cancelled).
    write(text) {
      if (!res.destroyed && !res.writableEnded) res.write(text);
    },
    end(trailers) {
      if (res.destroyed || res.writableEnded) return;
      if (trailers !== undefined) res.addTrailers(Object.fromEntries(trailers));
      res.end();
    },
  };
}

/** A gateway exchange over one of our HTTP/2 streams (a gateway path's). */
function h2Exchange(stream: H2Stream): GatewayExchange {
  const aborted = new AbortController();
  const chunks: Uint8Array[] = [];
  let ended = false;
  let wake: (() => void) | null = null;
  stream.ondata = (chunk) => {
    chunks.push(chunk);
    wake?.();
  };
  stream.onend = () => {
    ended = true;
    wake?.();
  };
  stream.onclose = () => {
    ended = true;
    aborted.abort();
    wake?.();
  };
  async function* body() {
    while (true) {
      if (chunks.length > 0) {
        const chunk = chunks.shift()!;
        // Taken: no longer held against the connection's bound on unread input (a long watch
        // stream's requests would otherwise count until it ends), as the gRPC stream reader does.
        stream.consumed(chunk.length);
        yield chunk;
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  }
  const fields = (status: number, headers: HeaderList) => {
    const out: Record<string, string> = { ":status": String(status) };
    for (const [name, value] of [...CORS_HEADERS, ...headers]) {
      const lower = name.toLowerCase();
      if (lower !== "transfer-encoding") out[lower] = value;
    }
    return encodeHeaders(out);
  };
  const encoder = new TextEncoder();
  const target = stream.headers[":path"] ?? "";
  return {
    method: stream.headers[":method"] ?? "GET",
    path: gatewayPathOf(target) ?? target,
    headers: stream.headers,
    body: body(),
    signal: aborted.signal,
    reply(status, headers, text) {
      if (stream.closed) return;
      const bytes = encoder.encode(text);
      stream.respond(fields(status, [...headers, ["Content-Length", String(bytes.length)]]));
      stream.write(bytes);
      stream.end();
    },
    start(status, headers) {
      if (!stream.closed) stream.respond(fields(status, headers));
    },
    write(text) {
      if (!stream.closed) stream.write(encoder.encode(text));
    },
    end(trailers) {
      if (stream.closed) return;
      stream.end(
        trailers === undefined ? undefined : encodeHeaders(
          Object.fromEntries(trailers.map(([name, value]) => [name.toLowerCase(), value])),
        ),
      );
    },
  };
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

/** A failed handshake in Go's words where they are known (etcd logs them), else OpenSSL's. */
function handshakeError(error: Error): string {
  const m = error.message;
  if (/peer (sent no|did not return a) certificate/i.test(m)) {
    return "tls: client didn't provide a certificate";
  }
  if (/wrong version number|InvalidContentType|http request/i.test(m)) {
    return "tls: first record does not look like a TLS handshake";
  }
  if (/unknown ca|unable to get (local )?issuer/i.test(m)) {
    return "tls: failed to verify client certificate: x509: certificate signed by unknown authority";
  }
  if (/certificate (has )?expired/i.test(m)) {
    return "tls: failed to verify client certificate: x509: certificate has expired or is not yet valid";
  }
  return m;
}

/**
 * The common name of a TLS client's verified certificate (the last CN attribute, as Go's
 * pkix.Name keeps); undefined without a verified certificate.
 */
function commonNameOf(socket: tls.TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN as string | string[] | undefined;
  if (cn === undefined) return "";
  return Array.isArray(cn) ? cn[cn.length - 1] ?? "" : cn;
}

/** Splits a listen URL into what `listen` needs; IPv6 brackets removed. */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return { host, port };
}
