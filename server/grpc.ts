import * as http2 from "node:http2";
import {
  type DescMessage,
  fromBinary,
  type Message,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { EtcdError, GrpcCode, type GrpcCodeValue } from "../core/errors.ts";

/**
 * A lean gRPC server on node:http2's stream API: 5-byte length-prefixed frames, protobuf-es
 * encoding, status in trailers. It carries etcd's hot paths; connect-node's adapter measured about
 * 3x slower on Deno (docs/adr/0002-transport.md).
 */

/** Per-call information handlers may need (auth token later, deadlines). */
export interface CallContext {
  headers: http2.IncomingHttpHeaders;
  /** Aborted when the client cancels or the stream closes. */
  signal: AbortSignal;
}

/** A unary method: one request, one response (sync or async). */
export interface UnaryMethod<I extends DescMessage, O extends DescMessage> {
  kind: "unary";
  input: I;
  output: O;
  handle(req: MessageShape<I>, ctx: CallContext): MessageShape<O> | Promise<MessageShape<O>>;
  /** When set, serves the call straight from the request bytes (a client worker forwarding). */
  raw?(payload: Uint8Array, ctx: CallContext): Uint8Array | Promise<Uint8Array>;
}

/** A streaming method (server-streaming or bidirectional). */
export interface StreamMethod<I extends DescMessage, O extends DescMessage> {
  kind: "stream";
  input: I;
  output: O;
  handle(
    requests: AsyncIterable<MessageShape<I>>,
    send: (res: MessageShape<O>) => Promise<void>,
    ctx: CallContext,
  ): Promise<void>;
}

// deno-lint-ignore no-explicit-any
export type AnyMethod = UnaryMethod<any, any> | StreamMethod<any, any>;

/** Full method path ("/etcdserverpb.KV/Range") → implementation. */
export type MethodTable = Map<string, AnyMethod>;

/** Percent-encodes a grpc-message value as the gRPC HTTP/2 spec requires. */
export function encodeGrpcMessage(message: string): string {
  const bytes = new TextEncoder().encode(message);
  let out = "";
  for (const b of bytes) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Splits 5-byte-framed messages out of a growing buffer. */
class FrameReader {
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  constructor(private readonly maxMessageBytes: number) {}

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** Next complete message payload, null if more bytes are needed; throws EtcdError if too big. */
  next(): Uint8Array | null {
    if (this.#buffered < 5) return null;
    const head = this.#peek(5);
    if (head[0] !== 0) {
      throw new EtcdError(GrpcCode.Internal, "grpc: compressed messages are not supported");
    }
    const length = ((head[1] << 24) >>> 0) + (head[2] << 16) + (head[3] << 8) + head[4];
    if (length > this.maxMessageBytes) {
      throw new EtcdError(
        GrpcCode.ResourceExhausted,
        `grpc: received message larger than max (${length} vs. ${this.maxMessageBytes})`,
      );
    }
    if (this.#buffered < 5 + length) return null;
    const all = this.#take(5 + length);
    return all.subarray(5);
  }

  #peek(n: number): Uint8Array {
    if (this.#chunks[0].length >= n) return this.#chunks[0];
    this.#coalesce();
    return this.#chunks[0];
  }

  #take(n: number): Uint8Array {
    if (this.#chunks[0].length < n) this.#coalesce();
    const first = this.#chunks[0];
    const out = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    return out;
  }

  #coalesce(): void {
    const all = new Uint8Array(this.#buffered);
    let o = 0;
    for (const c of this.#chunks) {
      all.set(c, o);
      o += c.length;
    }
    this.#chunks = [all];
  }
}

/** Frames one encoded message. */
export function frame(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + payload.length);
  const n = payload.length;
  out[1] = (n >>> 24) & 0xff;
  out[2] = (n >>> 16) & 0xff;
  out[3] = (n >>> 8) & 0xff;
  out[4] = n & 0xff;
  out.set(payload, 5);
  return out;
}

/** Maps anything thrown by a handler to a gRPC status. */
export function toStatus(e: unknown): { code: GrpcCodeValue; message: string } {
  if (e instanceof EtcdError) return { code: e.code, message: e.message };
  return { code: GrpcCode.Unknown, message: e instanceof Error ? e.message : String(e) };
}

const okTrailers = { "grpc-status": "0" };

function sendError(stream: http2.ServerHttp2Stream, code: GrpcCodeValue, message: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    // Headers went out already (streaming): status goes in trailers.
    if (!stream.writableEnded) {
      stream.end();
    }
    return;
  }
  stream.respond({
    ":status": 200,
    "content-type": "application/grpc",
    "grpc-status": String(code),
    "grpc-message": encodeGrpcMessage(message),
  }, { endStream: true });
  if (!stream.readableEnded) {
    // The client is still sending (an oversized request): tell it to stop, as grpc-go does with
    // RST_STREAM(NO_ERROR), rather than let it push the rest through the connection's window.
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }
}

/** Options for serving the table. */
export interface GrpcOptions {
  /** Largest request message accepted (etcd: --max-request-bytes + 512 KiB). */
  maxRecvBytes: number;
  /** Called when a handler throws something that is not an EtcdError (a bug). */
  onInternalError?: (method: string, error: unknown) => void;
}

/**
 * Handles one HTTP/2 stream whose content-type is application/grpc. Unknown methods get
 * Unimplemented with grpc-go's wording.
 */
export function handleGrpcStream(
  table: MethodTable,
  options: GrpcOptions,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
): void {
  const path = headers[":path"] ?? "";
  const method = table.get(path);
  if (!method) {
    const [, service = "", name = ""] = path.split("/");
    const known = [...table.keys()].some((p) => p.startsWith(`/${service}/`));
    sendError(
      stream,
      GrpcCode.Unimplemented,
      known ? `unknown method ${name} for service ${service}` : `unknown service ${service}`,
    );
    stream.resume();
    return;
  }
  if (method.kind === "unary") serveUnary(method, options, stream, headers);
  else serveStream(method, options, stream, headers);
}

function serveUnary(
  // deno-lint-ignore no-explicit-any
  method: UnaryMethod<any, any>,
  options: GrpcOptions,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
): void {
  const reader = new FrameReader(options.maxRecvBytes);
  let payload: Uint8Array | null = null;
  let failed = false;
  stream.on("data", (chunk: Uint8Array) => {
    if (failed) return;
    try {
      reader.push(chunk);
      if (payload === null) payload = reader.next();
    } catch (e) {
      failed = true;
      const s = toStatus(e);
      sendError(stream, s.code, s.message);
    }
  });
  stream.on("end", () => {
    if (failed) return;
    if (payload === null) {
      sendError(stream, GrpcCode.Internal, "grpc: request message missing");
      return;
    }
    const ctx = lazyContext(stream, headers);
    let result: Uint8Array | Promise<Uint8Array>;
    try {
      result = method.raw ? method.raw(payload, ctx) : invokeUnary(method, payload, ctx);
    } catch (e) {
      reportInternal(options, headers, e);
      const s = toStatus(e);
      sendError(stream, s.code, s.message);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (res) => respondUnary(stream, res),
        (e) => {
          reportInternal(options, headers, e);
          const s = toStatus(e);
          sendError(stream, s.code, s.message);
        },
      );
    } else {
      respondUnary(stream, result);
    }
  });
}

/**
 * Decodes a request, runs the handler, encodes the response: the whole of a unary call between
 * the wire bytes. Wherever the bytes arrived (this thread or a client worker), this runs where the
 * node lives.
 */
export function invokeUnary(
  // deno-lint-ignore no-explicit-any
  method: UnaryMethod<any, any>,
  payload: Uint8Array,
  ctx: CallContext,
): Uint8Array | Promise<Uint8Array> {
  let req;
  try {
    req = fromBinary(method.input, payload);
  } catch (e) {
    throw new EtcdError(GrpcCode.Internal, `grpc: error unmarshalling request: ${e}`);
  }
  const result = method.handle(req, ctx);
  if (result instanceof Promise) return result.then((res) => toBinary(method.output, res));
  return toBinary(method.output, result);
}

/**
 * A context whose AbortSignal exists only if a handler asks for it: aborting creates a
 * DOMException with a stack trace, which showed up in profiles when done for every stream.
 */
function lazyContext(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
): CallContext {
  let controller: AbortController | null = null;
  return {
    headers,
    get signal() {
      if (controller === null) {
        const c = new AbortController();
        controller = c;
        if (stream.closed || stream.destroyed) c.abort();
        else stream.once("close", () => c.abort());
      }
      return controller.signal;
    },
  };
}

function reportInternal(options: GrpcOptions, headers: http2.IncomingHttpHeaders, e: unknown) {
  if (!(e instanceof EtcdError)) options.onInternalError?.(String(headers[":path"]), e);
}

function respondUnary(stream: http2.ServerHttp2Stream, payload: Uint8Array): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(okTrailers));
  stream.end(frame(payload));
}

function serveStream(
  // deno-lint-ignore no-explicit-any
  method: StreamMethod<any, any>,
  options: GrpcOptions,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
): void {
  const reader = new FrameReader(options.maxRecvBytes);
  const abort = new AbortController();
  const queue: Message[] = [];
  let ended = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  stream.on("close", () => {
    abort.abort();
    ended = true;
    notify();
  });
  stream.on("data", (chunk: Uint8Array) => {
    try {
      reader.push(chunk);
      for (let p = reader.next(); p !== null; p = reader.next()) {
        queue.push(fromBinary(method.input, p));
      }
    } catch (e) {
      failure = e;
    }
    notify();
  });
  stream.on("end", () => {
    ended = true;
    notify();
  });
  async function* requests(): AsyncGenerator<Message> {
    while (true) {
      if (failure !== null) throw failure;
      if (queue.length > 0) {
        yield queue.shift()!;
        continue;
      }
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
    }
  }
  let headersSent = false;
  const send = (res: Message): Promise<void> => {
    if (stream.destroyed || stream.closed) return Promise.resolve();
    if (!headersSent) {
      headersSent = true;
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
        waitForTrailers: true,
      });
    }
    const ok = stream.write(frame(toBinary(method.output, res)));
    if (ok) return Promise.resolve();
    // Back-pressure: wait until the client drains what we sent.
    return new Promise((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        resolve();
      };
      stream.on("drain", done);
      stream.on("close", done);
    });
  };
  const finish = (code: GrpcCodeValue, message: string) => {
    if (stream.destroyed || stream.closed) return;
    if (!headersSent) {
      sendError(stream, code, message);
      return;
    }
    stream.once("wantTrailers", () => {
      const trailers: Record<string, string> = { "grpc-status": String(code) };
      if (code !== GrpcCode.OK) trailers["grpc-message"] = encodeGrpcMessage(message);
      stream.sendTrailers(trailers);
    });
    stream.end();
  };
  method.handle(requests(), send, { headers, signal: abort.signal }).then(
    () => finish(GrpcCode.OK, ""),
    (e) => {
      reportInternal(options, headers, e);
      const s = toStatus(e);
      finish(s.code, s.message);
    },
  );
}
