/**
 * A minimal gRPC client over `node:http2`, written for detcdctl: h2c or TLS (ALPN h2, CA bundle,
 * client certificate, server certificate checked with Go's rules and reported in Go's words),
 * unary calls, server streaming and bidirectional streaming (watch, lease keep-alive),
 * 5-byte length-prefixed framing, status from trailers or trailers-only responses, deadlines,
 * metadata headers (the auth `token`), and keepalive pings. Messages are protobuf-es schemas.
 *
 * Errors are GrpcError with gRPC's numeric code and message, printed like grpc-go
 * ("rpc error: code = Unavailable desc = ...") because etcdctl shows that text for errors
 * it does not recognise.
 */

import * as http2 from "node:http2";
import * as tls from "node:tls";
import { X509Certificate } from "node:crypto";
import type { DescMessage, DescMethod, MessageShape } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { GrpcCode, type GrpcCodeValue } from "../core/errors.ts";
import { encodeGrpcFrame, GrpcFrameDecoder } from "../core/wire/mod.ts";
import { systemRoots } from "./tls_files.ts";

/** gRPC status codes: the table core/errors.ts keeps for the server, under the CLI's names. */
export const Code = GrpcCode;

/** A gRPC status code number. */
export type CodeValue = GrpcCodeValue;

const codeNames: string[] = Object.keys(Code);

/** grpc-go's codes.Code.String(). */
export function codeName(code: number): string {
  return codeNames[code] ?? `Code(${code})`;
}

/** A non-OK gRPC status. `message` is the status message (grpc-message). */
export class GrpcError extends Error {
  constructor(readonly code: number, readonly details: string) {
    super(details);
    this.name = "GrpcError";
  }

  /** grpc-go's status error text. */
  toGoString(): string {
    return `rpc error: code = ${codeName(this.code)} desc = ${this.details}`;
  }
}

/** A method descriptor with typed input and output schemas (e.g. `KV.method.range`). */
export type MethodDesc<I extends DescMessage, O extends DescMessage> = DescMethod & {
  input: I;
  output: O;
};

/** Per-call options. */
export interface CallOptions {
  /** Absolute deadline in milliseconds since the epoch (Date.now() clock). */
  deadlineMs?: number;
  /** Extra request headers, e.g. `{ token: "..." }`. */
  metadata?: Record<string, string>;
  /** Cancels the call (status Canceled) when aborted. */
  signal?: AbortSignal;
}

/** Where to connect. */
export interface Endpoint {
  /** host:port as dialled. */
  authority: string;
  secure: boolean;
}

/**
 * The scheme of an endpoint as clientv3's ParseEndpoint reads it: "" without "://" (or when Go's
 * url.Parse would refuse it), else the URL scheme, lower-cased.
 */
export function endpointScheme(ep: string): string {
  if (!ep.includes("://")) return "";
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(ep);
  return m ? m[1].toLowerCase() : "";
}

/** Parses an etcdctl endpoint: "host:port", "http://host:port" or "https://host:port". */
export function parseEndpoint(ep: string): Endpoint {
  const m = /^(https?):\/\/([^/]*)/.exec(ep);
  if (m) return { authority: m[2], secure: m[1] === "https" };
  if (ep.includes("://")) return { authority: ep, secure: false };
  return { authority: ep, secure: false };
}

/**
 * Why a connection attempt failed: the dial itself, the TLS handshake (or the check of the
 * server's certificate), or the peer closing before HTTP/2 setup.
 */
export class ConnectError extends Error {
  constructor(readonly kind: "dial" | "handshake" | "closed", message: string) {
    super(message);
    this.name = "ConnectError";
  }

  /** The text grpc-go's balancer reports for this failure ("latest balancer error: ..."). */
  balancerText(): string {
    if (this.kind === "closed") return "connection closed";
    if (this.kind === "handshake") {
      return `connection error: desc = "transport: authentication handshake failed: ${this.message}"`;
    }
    return `connection error: desc = "transport: Error while dialing ${this.message}"`;
  }
}

/** Options of a connection. */
export interface ConnectOptions {
  /** Give up connecting after this long. */
  timeoutMs: number;
  /** Ping interval for idle-connection liveness (0 disables). */
  keepaliveTimeMs?: number;
  /** Close the connection if a ping is not answered within this long. */
  keepaliveTimeoutMs?: number;
  /** TLS settings for a secure endpoint (none: the default roots and no client certificate). */
  tls?: TlsOptions;
}

/** What Go's tls.Config holds for etcdctl: roots, client certificate, verification. */
export interface TlsOptions {
  /** PEM CA certificates that replace the default roots (an empty list trusts nothing). */
  ca?: string[];
  /** PEM client certificate and key, presented when the server asks. */
  cert?: string;
  key?: string;
  /** Accept any server certificate (--insecure-skip-tls-verify). */
  insecureSkipVerify?: boolean;
  /** The name the server's certificate must hold; default the endpoint's host. */
  serverName?: string;
}

/** The host of "host:port" (brackets of an IPv6 literal removed), as net.SplitHostPort. */
export function hostOf(authority: string): string {
  const m = /^\[([^\]]*)\]:[^:]*$/.exec(authority) ?? /^([^:]*):[^:]*$/.exec(authority);
  return m ? m[1] : authority;
}

/** Canonical text of an IP address, or undefined when `s` is not one (Go's net.ParseIP). */
function canonicalIp(s: string): string | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) {
    return s.split(".").every((p) => Number(p) <= 255 && (p === "0" || !p.startsWith("0")))
      ? s
      : undefined;
  }
  if (!s.includes(":")) return undefined;
  try {
    return new URL(`http://[${s}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** Go's time.RFC3339 in the local zone (seconds, "Z" for UTC). */
function goRfc3339(ms: number, utc: boolean): string {
  const offMin = utc ? 0 : -new Date(ms).getTimezoneOffset();
  const d = new Date(ms + offMin * 60_000);
  const base = d.toISOString().slice(0, 19);
  if (offMin === 0) return `${base}Z`;
  const sign = offMin < 0 ? "-" : "+";
  const a = Math.abs(offMin);
  return `${base}${sign}${String(Math.floor(a / 60)).padStart(2, "0")}:${
    String(a % 60).padStart(2, "0")
  }`;
}

/** crypto/x509's matchHostnames: label by label, a leading "*" label matching any one label. */
function matchHostnames(pattern: string, host: string): boolean {
  pattern = pattern.toLowerCase().replace(/\.$/, "");
  host = host.toLowerCase().replace(/\.$/, "");
  if (pattern === "" || host === "") return false;
  const p = pattern.split(".");
  const h = host.split(".");
  if (p.length !== h.length) return false;
  return p.every((label, i) => (i === 0 && label === "*") || label === h[i]);
}

/**
 * The server certificate check of Go's crypto/tls as etcdctl (Go 1.19) runs it, in its order and
 * words: the leaf's validity period, then the host name (IP SANs for an address, DNS SANs for a
 * name; never the Common Name), then the chain to the roots (which node:tls verified, reported in
 * `authorized`). Returns Go's error text, or undefined when the certificate is accepted.
 */
export function goVerifyServerCertificate(
  leafDer: Uint8Array,
  serverName: string,
  chainTrusted: boolean,
  nowMs: number = Date.now(),
): string | undefined {
  const leaf = new X509Certificate(leafDer);
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  const prefix = "x509: certificate has expired or is not yet valid: ";
  if (nowMs < notBefore) {
    return `${prefix}current time ${goRfc3339(nowMs, false)} is before ${
      goRfc3339(notBefore, true)
    }`;
  }
  if (nowMs > notAfter) {
    return `${prefix}current time ${goRfc3339(nowMs, false)} is after ${goRfc3339(notAfter, true)}`;
  }
  const sans = leaf.subjectAltName === undefined
    ? undefined
    : leaf.subjectAltName.split(", ").map((e) => e.trim());
  const ips = (sans ?? []).filter((e) => e.startsWith("IP Address:")).map((e) =>
    canonicalIp(e.slice("IP Address:".length)) ?? e.slice("IP Address:".length)
  );
  const dns = (sans ?? []).filter((e) => e.startsWith("DNS:")).map((e) => e.slice(4));
  let candidate = serverName;
  if (candidate.length >= 3 && candidate.startsWith("[") && candidate.endsWith("]")) {
    candidate = candidate.slice(1, -1);
  }
  const ip = canonicalIp(candidate);
  const matched = ip !== undefined
    ? ips.includes(ip)
    : dns.some((pattern) => matchHostnames(pattern, serverName));
  if (!matched) {
    const host = ip !== undefined ? candidate : serverName;
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(leaf.subject)?.[1] ?? "";
    if (sans === undefined && matchHostnames(cn, host)) {
      return "x509: certificate relies on legacy Common Name field, use SANs instead";
    }
    if (ip !== undefined && ips.length === 0) {
      return `x509: cannot validate certificate for ${host} because it doesn't contain any IP SANs`;
    }
    const valid = (ip !== undefined ? ips : dns).join(", ");
    if (valid === "") {
      return `x509: certificate is not valid for any names, but wanted to match ${host}`;
    }
    return `x509: certificate is valid for ${valid}, not ${host}`;
  }
  if (!chainTrusted) return "x509: certificate signed by unknown authority";
  return undefined;
}

/**
 * Splits a response stream into gRPC messages; feed chunks, get complete payloads back. The
 * framing is core/wire's; this adds grpc-go's client error for a compressed message, raised once
 * the whole message has arrived, and hands out copies, not views into node:http2's chunks.
 */
export class FrameDecoder {
  #frames = new GrpcFrameDecoder();

  /** Adds bytes; returns every message now complete. Throws GrpcError on compressed frames. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#frames.push(chunk);
    const out: Uint8Array[] = [];
    while (this.#frames.hasMessage()) {
      if (this.#frames.nextFlag() !== 0) {
        throw new GrpcError(
          Code.Internal,
          "grpc: compressed flag set with identity or empty encoding",
        );
      }
      out.push(this.#frames.next()!.slice());
    }
    return out;
  }

  /** True if a partial message is buffered. */
  hasPartial(): boolean {
    return this.#frames.buffered > 0;
  }
}

/** Decodes grpc-message's percent-encoding. */
export function decodeGrpcMessage(s: string): string {
  if (!s.includes("%")) return s;
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "%" && i + 2 < s.length + 0 && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...enc.encode(s[i]));
    }
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

const http2ErrorNames: Record<number, [string, number]> = {
  0: ["NO_ERROR", Code.Internal],
  1: ["PROTOCOL_ERROR", Code.Internal],
  2: ["INTERNAL_ERROR", Code.Internal],
  3: ["FLOW_CONTROL_ERROR", Code.ResourceExhausted],
  4: ["SETTINGS_TIMEOUT", Code.Internal],
  5: ["STREAM_CLOSED", Code.Internal],
  6: ["FRAME_SIZE_ERROR", Code.Internal],
  7: ["REFUSED_STREAM", Code.Unavailable],
  8: ["CANCEL", Code.Canceled],
  9: ["COMPRESSION_ERROR", Code.Internal],
  10: ["CONNECT_ERROR", Code.Internal],
  11: ["ENHANCE_YOUR_CALM", Code.ResourceExhausted],
  12: ["INADEQUATE_SECURITY", Code.PermissionDenied],
  13: ["HTTP_1_1_REQUIRED", Code.Internal],
};

function httpStatusToCode(status: number): number {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

const httpStatusText: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** A bounded async queue feeding a stream's readers. */
class MessageQueue<T> {
  #items: T[] = [];
  #waiters: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
  #error: unknown = undefined;
  #done = false;

  push(item: T): void {
    const w = this.#waiters.shift();
    if (w) w.resolve({ value: item, done: false });
    else this.#items.push(item);
  }

  size(): number {
    return this.#items.length;
  }

  finish(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    for (const w of this.#waiters.splice(0)) {
      if (error !== undefined) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) {
      return Promise.resolve({ value: this.#items.shift()!, done: false });
    }
    if (this.#done) {
      return this.#error !== undefined
        ? Promise.reject(this.#error)
        : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }
}

/** The readable half of a streaming call, plus cancellation. */
export interface ResponseStream<O> extends AsyncIterable<O> {
  /** The next message, or undefined once the server ended the stream with status OK. */
  receive(): Promise<O | undefined>;
  /** Cancels the call (RST_STREAM CANCEL). */
  cancel(): void;
}

/** A bidirectional streaming call. */
export interface BidiStream<I, O> extends ResponseStream<O> {
  /** Sends one message. */
  send(msg: I): void;
  /** Half-closes the sending side. */
  closeSend(): void;
}

/** One HTTP/2 connection to one endpoint, carrying many calls. */
export class GrpcConnection {
  #closed = false;
  #draining = false;
  #closeReason: string | undefined;
  #keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  readonly #listeners = new Set<(reason: string) => void>();

  readonly #session: http2.ClientHttp2Session;

  private constructor(
    readonly endpoint: Endpoint,
    session: http2.ClientHttp2Session,
  ) {
    this.#session = session;
    const onGone = (reason: string) => {
      if (this.#closed) return;
      this.#closed = true;
      this.#closeReason = reason;
      if (this.#keepaliveTimer !== undefined) clearInterval(this.#keepaliveTimer);
      for (const l of this.#listeners) l(reason);
    };
    // GOAWAY only stops new calls; calls in flight finish (or fail on their own).
    session.on("goaway", () => {
      this.#draining = true;
    });
    session.on("close", () => onGone("transport is closing"));
    session.on("error", () => onGone("transport is closing"));
  }

  /**
   * Opens a connection. It is ready once the server's HTTP/2 SETTINGS arrive (as in grpc-go),
   * so a listener that is not an HTTP/2 server counts as a failed connection. Rejects with a
   * ConnectError saying how the attempt failed.
   */
  static connect(endpoint: Endpoint, opts: ConnectOptions): Promise<GrpcConnection> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settings = { initialWindowSize: 1 << 24, maxFrameSize: 1 << 20 };
      const tlsOpts = opts.tls ?? {};
      // Without --cacert Go trusts the system's pool, which node:tls does not read by itself.
      const roots = endpoint.secure && !tlsOpts.insecureSkipVerify
        ? tlsOpts.ca ?? systemRoots()
        : undefined;
      const serverName = tlsOpts.serverName || hostOf(endpoint.authority);
      // The certificate is checked here, after the handshake and before any request, so that
      // a refusal names Go's reason; node:tls's own verdict on the chain is `authorized`.
      let tlsSocket: tls.TLSSocket | undefined;
      const session = endpoint.secure
        ? http2.connect(`https://${endpoint.authority}`, {
          settings,
          createConnection: () => {
            tlsSocket = tls.connect({
              host: hostOf(endpoint.authority),
              port: Number(endpoint.authority.slice(endpoint.authority.lastIndexOf(":") + 1)),
              ALPNProtocols: ["h2"],
              ca: roots?.length ? roots : undefined,
              cert: tlsOpts.cert,
              key: tlsOpts.key,
              servername: canonicalIp(serverName) === undefined ? serverName : undefined,
              rejectUnauthorized: false,
              checkServerIdentity: () => undefined,
            });
            tlsSocket.once("secureConnect", () => {
              if (opts.tls?.insecureSkipVerify) return;
              let problem: string | undefined;
              try {
                const peer = tlsSocket!.getPeerCertificate(true);
                problem = peer?.raw === undefined
                  ? "tls: server sent no certificate"
                  : goVerifyServerCertificate(
                    peer.raw,
                    serverName,
                    // Go's empty pool trusts nothing; node would fall back to its roots.
                    tlsSocket!.authorized && roots?.length !== 0,
                  );
              } catch (e) {
                problem = `x509: ${(e as Error).message}`;
              }
              if (problem !== undefined) fail(new ConnectError("handshake", problem));
            });
            return tlsSocket;
          },
        })
        : http2.connect(`http://${endpoint.authority}`, { settings });
      const fail = (e: ConnectError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        session.destroy();
        reject(e);
      };
      const timer = setTimeout(
        () => fail(new ConnectError("dial", `dial tcp ${endpoint.authority}: i/o timeout`)),
        Math.max(1, opts.timeoutMs),
      );
      let tcpConnected = false;
      session.once("connect", () => {
        tcpConnected = true;
      });
      session.once("remoteSettings", () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          // A large connection window lets big range responses stream without stalls.
          session.setLocalWindowSize(1 << 24);
        } catch {
          // not supported: the default window still works, only slower
        }
        const conn = new GrpcConnection(endpoint, session);
        conn.#startKeepalive(opts);
        resolve(conn);
      });
      session.once("error", (e: Error & { code?: string }) => {
        if (tcpConnected) {
          fail(new ConnectError("closed", "connection closed"));
          return;
        }
        if (e.code === "ECONNREFUSED" || !endpoint.secure) {
          const what = e.code === "ECONNREFUSED" ? "connect: connection refused" : e.message;
          fail(new ConnectError("dial", `dial tcp ${endpoint.authority}: ${what}`));
          return;
        }
        fail(new ConnectError("handshake", goHandshakeErrorText(e)));
      });
      session.once("close", () => fail(new ConnectError("closed", "connection closed")));
    });
  }

  #startKeepalive(opts: ConnectOptions): void {
    const interval = opts.keepaliveTimeMs ?? 0;
    if (interval <= 0) return;
    // grpc-go raises client pings to at least 10s, as etcd's server would reject faster ones.
    const every = Math.max(interval, 10_000);
    const timeout = opts.keepaliveTimeoutMs ?? 20_000;
    const keepalive = setInterval(() => {
      let answered = false;
      const t = setTimeout(() => {
        if (!answered) this.#session.destroy();
      }, timeout);
      Deno.unrefTimer(t as unknown as number);
      try {
        this.#session.ping(() => {
          answered = true;
          clearTimeout(t);
        });
      } catch {
        clearTimeout(t);
      }
    }, every);
    Deno.unrefTimer(keepalive as unknown as number);
    this.#keepaliveTimer = keepalive;
  }

  /** True once the connection can no longer carry calls. */
  isClosed(): boolean {
    return this.#closed || this.#draining || this.#session.closed || this.#session.destroyed;
  }

  /** Calls `fn` when the connection goes away. */
  onClose(fn: (reason: string) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Closes the connection. */
  close(): void {
    if (this.#keepaliveTimer !== undefined) clearInterval(this.#keepaliveTimer);
    this.#closed = true;
    this.#session.close();
    this.#session.destroy();
  }

  /** A unary call. */
  async unary<I extends DescMessage, O extends DescMessage>(
    method: MethodDesc<I, O>,
    request: MessageShape<I>,
    opts: CallOptions = {},
  ): Promise<MessageShape<O>> {
    const stream = this.#open(method, opts);
    stream.send(request);
    stream.closeSend();
    const first = await stream.receive();
    if (first === undefined) {
      throw new GrpcError(Code.Internal, "grpc: server returned no message for a unary call");
    }
    const extra = await stream.receive();
    if (extra !== undefined) {
      throw new GrpcError(
        Code.Internal,
        "grpc: server returned more than one message for a unary call",
      );
    }
    return first;
  }

  /** A server-streaming call. */
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: MethodDesc<I, O>,
    request: MessageShape<I>,
    opts: CallOptions = {},
  ): ResponseStream<MessageShape<O>> {
    const stream = this.#open(method, opts);
    stream.send(request);
    stream.closeSend();
    return stream;
  }

  /** A bidirectional-streaming call. */
  bidiStream<I extends DescMessage, O extends DescMessage>(
    method: MethodDesc<I, O>,
    opts: CallOptions = {},
  ): BidiStream<MessageShape<I>, MessageShape<O>> {
    return this.#open(method, opts);
  }

  #open<I extends DescMessage, O extends DescMessage>(
    method: MethodDesc<I, O>,
    opts: CallOptions,
  ): BidiStream<MessageShape<I>, MessageShape<O>> {
    const queue = new MessageQueue<MessageShape<O>>();
    if (this.isClosed()) {
      queue.finish(new GrpcError(Code.Unavailable, this.#closeReason ?? "transport is closing"));
      return bidiFromQueue(queue, () => {}, () => {}, () => {});
    }
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":scheme": this.endpoint.secure ? "https" : "http",
      ":path": `/${method.parent.typeName}/${method.name}`,
      ":authority": this.endpoint.authority,
      "content-type": "application/grpc",
      "te": "trailers",
      "user-agent": "detcdctl grpc/1",
      ...opts.metadata,
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (opts.deadlineMs !== undefined) {
      const remaining = Math.max(0, Math.ceil(opts.deadlineMs - Date.now()));
      headers["grpc-timeout"] = `${Math.max(1, remaining)}m`;
    }
    const req = this.#session.request(headers, { endStream: false });
    const decoder = new FrameDecoder();
    let finished = false;
    let status: number | undefined;
    let statusMessage = "";
    let httpStatus = 0;

    const finish = (err?: GrpcError) => {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clearTimeout(timer);
      unlisten();
      if (opts.signal) opts.signal.removeEventListener("abort", onAbort);
      queue.finish(err);
    };
    const fail = (err: GrpcError) => {
      finish(err);
      if (!req.closed && !req.destroyed) req.close(http2.constants.NGHTTP2_CANCEL);
    };
    const unlisten = this.onClose((reason) => fail(new GrpcError(Code.Unavailable, reason)));
    const onAbort = () => fail(new GrpcError(Code.Canceled, "context canceled"));
    if (opts.signal) {
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener("abort", onAbort);
    }
    if (opts.deadlineMs !== undefined) {
      timer = setTimeout(
        () => fail(new GrpcError(Code.DeadlineExceeded, "context deadline exceeded")),
        Math.max(0, opts.deadlineMs - Date.now()),
      );
    }

    const applyStatus = (h: http2.IncomingHttpHeaders) => {
      const s = h["grpc-status"];
      if (s !== undefined) {
        status = Number(Array.isArray(s) ? s[0] : s);
        const m = h["grpc-message"];
        statusMessage = decodeGrpcMessage(String(Array.isArray(m) ? m[0] : (m ?? "")));
      }
    };
    req.on("response", (h) => {
      httpStatus = Number(h[":status"] ?? 0);
      applyStatus(h);
    });
    req.on("trailers", (h) => applyStatus(h));
    req.on("data", (chunk: Uint8Array) => {
      if (finished) return;
      try {
        for (const payload of decoder.push(new Uint8Array(chunk))) {
          queue.push(fromBinary(method.output, payload));
        }
      } catch (e) {
        fail(
          e instanceof GrpcError ? e : new GrpcError(
            Code.Internal,
            `grpc: failed to unmarshal the received message ${(e as Error).message}`,
          ),
        );
      }
    });
    let aborted = false;
    req.on("aborted", () => {
      aborted = true;
    });
    const finishByStatus = (): boolean => {
      if (status === undefined) return false;
      if (status !== Code.OK) finish(new GrpcError(status, statusMessage));
      else if (decoder.hasPartial()) finish(new GrpcError(Code.Internal, "unexpected EOF"));
      else finish();
      return true;
    };
    req.on("end", () => {
      if (!finished) finishByStatus();
    });
    req.on("close", () => {
      if (finished || finishByStatus()) return;
      // Without response headers, or with a reset code, the server reset the stream.
      if (aborted || httpStatus === 0 || (req.rstCode ?? 0) !== 0) {
        const rst = req.rstCode ?? 0;
        const [name, code] = http2ErrorNames[rst] ?? ["UNKNOWN", Code.Internal];
        const reset = () => {
          finish(new GrpcError(code, `stream terminated by RST_STREAM with error code: ${name}`));
        };
        // A lost connection also cancels its streams locally; if the session goes away right
        // after, the connection was lost ("transport is closing"), not the stream reset.
        if (rst === http2.constants.NGHTTP2_CANCEL) setTimeout(reset, 20);
        else reset();
        return;
      }
      if (httpStatus !== 200 && httpStatus !== 0) {
        finish(
          new GrpcError(
            httpStatusToCode(httpStatus),
            `unexpected HTTP status code received from server: ${httpStatus} (${
              httpStatusText[httpStatus] ?? "Unknown"
            })`,
          ),
        );
        return;
      }
      finish(new GrpcError(Code.Internal, "server closed the stream without sending trailers"));
    });
    req.on("error", () => {
      if (finished) return;
      finish(new GrpcError(Code.Unavailable, "transport is closing"));
    });

    const send = (msg: MessageShape<I>) => {
      if (finished || req.closed) return;
      req.write(encodeGrpcFrame(toBinary(method.input, msg, { writeUnknownFields: false })));
    };
    const closeSend = () => {
      if (!req.closed && !req.writableEnded) req.end();
    };
    const cancel = () => fail(new GrpcError(Code.Canceled, "context canceled"));
    return bidiFromQueue(queue, send, closeSend, cancel);
  }
}

/**
 * Go's text for a TLS handshake that failed before it completed: a peer that hangs up reads as
 * EOF; a peer that answers with something other than TLS (a plain HTTP/2 server) as Go's
 * complaint about the first record.
 */
function goHandshakeErrorText(e: Error & { code?: string }): string {
  if (e.code === "ECONNRESET" || e.code === "EPIPE" || /disconnected|EOF/i.test(e.message)) {
    return "EOF";
  }
  if (/WRONG_VERSION|record|InvalidContentType|CorruptMessage/i.test(`${e.code} ${e.message}`)) {
    return "tls: first record does not look like a TLS handshake";
  }
  return e.message;
}

function bidiFromQueue<I, O>(
  queue: MessageQueue<O>,
  send: (m: I) => void,
  closeSend: () => void,
  cancel: () => void,
): BidiStream<I, O> {
  return {
    send,
    closeSend,
    cancel,
    async receive() {
      const r = await queue.next();
      return r.done ? undefined : r.value;
    },
    [Symbol.asyncIterator]() {
      return {
        next: () => queue.next(),
        return: () => {
          cancel();
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  };
}
