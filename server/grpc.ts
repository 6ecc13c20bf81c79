import {
  type DescMessage,
  fromBinary,
  type Message,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  callHandled,
  callStarted,
  messageReceived,
  messageSent,
  type MethodStats,
  methodStats,
} from "./grpc_metrics.ts";
import { EtcdError, GrpcCode, type GrpcCodeValue } from "../core/errors.ts";
import {
  encodeGrpcFrame,
  GRPC_PREFIX_BYTES,
  GrpcFrameDecoder,
  grpcFrameLength,
} from "../core/wire/mod.ts";
import { encodeHeaders, ErrorCode, type H2Stream } from "./h2/mod.ts";
import { type RangeResponse, RangeResponseSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import { assert } from "../core/assert.ts";
import { type ChunkedMessage, chunkedRange } from "./chunked_response.ts";
import { Slicer } from "./slicer.ts";

/**
 * A lean gRPC server on detcd's own HTTP/2 streams (server/h2): 5-byte length-prefixed frames,
 * protobuf-es encoding, status in trailers. It carries etcd's hot paths; connect-node's adapter
 * measured about 3x slower on Deno (docs/adr/0002-transport.md).
 */

/** Per-call information handlers may need (the auth token, cancellation). */
export interface CallContext {
  /** Request headers (metadata), names lower case. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Aborted when the client cancels or the stream closes. */
  signal: AbortSignal;
  /**
   * The common name of the client's verified TLS certificate, set only on a TLS connection with
   * --client-cert-auth (etcd's AuthInfoFromTLS: the user of a call without a token).
   */
  tlsCommonName?: string;
}

/**
 * A streaming handler's `send`. The gRPC transport's also has `frame`: it sends a response the
 * handler encoded itself, as a whole gRPC message frame (the 5-byte prefix, then the message),
 * without a copy, and resolves as `send` does. Other transports (the gateway, Connect) and any
 * wrapper of a `send` (an in-process call relaying to its own caller) have none, so the handler
 * falls back to messages: the fast path cannot leak past the stream it belongs to.
 */
export type StreamSend<O extends DescMessage> = ((res: MessageShape<O>) => Promise<void>) & {
  frame?: (frame: Uint8Array) => Promise<void>;
  /**
   * As `frame`, for a frame of `size` bytes that `fill` writes where it is told (straight into the
   * connection's output, without a buffer of its own). `fill` runs before this returns.
   */
  frameWith?: (size: number, fill: (into: Uint8Array, at: number) => void) => Promise<void>;
  /**
   * As `frameWith`, without a promise: answers whether the writer may go on at once; when not, it
   * waits for `drained()` (asked for at once, before anything else runs) before its next frame.
   * For a handler that writes from where its data appears (watch events, from the apply loop).
   */
  frameWithNow?: (size: number, fill: (into: Uint8Array, at: number) => void) => boolean;
  /** Resolves once the client has taken what was written (or the stream closed). */
  drained?: () => Promise<void>;
};

/** What a connection knows of its client, handed to each of its calls. */
export interface PeerInfo {
  /** See CallContext.tlsCommonName. */
  tlsCommonName?: string;
}

/** The token a call carries: gRPC metadata `token` (clientv3), or `authorization` (gateway). */
export function tokenOf(ctx: CallContext): string | undefined {
  const value = ctx.headers["token"] ?? ctx.headers["authorization"];
  return Array.isArray(value) ? value[0] : value;
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
    send: StreamSend<O>,
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

/**
 * grpc-go's server checks of a message prefix: no compression (we offer none), and the length
 * within --max-request-bytes (plus gRPC overhead); throws the EtcdError the client then sees.
 */
function checkPrefix(flag: number, length: number, maxMessageBytes: number): void {
  if (flag !== 0) {
    throw new EtcdError(GrpcCode.Internal, "grpc: compressed messages are not supported");
  }
  if (length > maxMessageBytes) {
    throw new EtcdError(
      GrpcCode.ResourceExhausted,
      `grpc: received message larger than max (${length} vs. ${maxMessageBytes})`,
    );
  }
}

/**
 * The next complete message payload in `reader`, null if more bytes are needed; a bad prefix
 * throws (checkPrefix) as soon as it has arrived, before its message has.
 */
function nextMessage(reader: GrpcFrameDecoder, maxMessageBytes: number): Uint8Array | null {
  const length = reader.nextLength();
  if (length < 0) return null;
  checkPrefix(reader.nextFlag(), length, maxMessageBytes);
  return reader.next();
}

/** Maps anything thrown by a handler to a gRPC status. */
export function toStatus(e: unknown): { code: GrpcCodeValue; message: string } {
  if (e instanceof EtcdError) return { code: e.code, message: e.message };
  return { code: GrpcCode.Unknown, message: e instanceof Error ? e.message : String(e) };
}

/** `:status: 200` and `content-type: application/grpc`, HPACK-encoded once. */
const RESPONSE_HEADERS = encodeHeaders({ ":status": "200", "content-type": "application/grpc" });
/** `grpc-status: 0` trailers, HPACK-encoded once. */
const OK_TRAILERS = encodeHeaders({ "grpc-status": "0" });

/** Trailers (or a trailers-only response) carrying a status. */
function statusBlock(code: GrpcCodeValue, message: string, withHeaders: boolean): Uint8Array {
  const fields: Record<string, string> = withHeaders
    ? { ":status": "200", "content-type": "application/grpc" }
    : {};
  fields["grpc-status"] = String(code);
  if (code !== GrpcCode.OK) fields["grpc-message"] = encodeGrpcMessage(message);
  return encodeHeaders(fields);
}

/**
 * Ends a call with a status: a trailers-only response if nothing was sent yet, else trailers.
 * A client still sending (an oversized request) then gets RST_STREAM(NO_ERROR), as from grpc-go,
 * rather than pushing the rest through the connection's window.
 */
function sendError(stream: H2Stream, code: GrpcCodeValue, message: string): void {
  if (stream.closed || stream.localEnded) return;
  if (stream.headersSent) stream.end(statusBlock(code, message, false));
  else stream.respond(statusBlock(code, message, true), true);
}

/** Options for serving the table. */
export interface GrpcOptions {
  /** Largest request message accepted (etcd: --max-request-bytes + 512 KiB). */
  maxRecvBytes: number;
  /** Called when a handler throws something that is not an EtcdError (a bug). */
  onInternalError?: (method: string, error: unknown) => void;
}

/** Answers a request whose content-type is not gRPC (h2c carries only gRPC here). */
export function refuseNonGrpc(stream: H2Stream): void {
  stream.respond(encodeHeaders({ ":status": "415", "content-type": "text/plain" }));
  stream.write(
    new TextEncoder().encode("detcd serves gRPC on h2c; use HTTP/1.1 for Connect and gRPC-Web\n"),
  );
  stream.end();
}

/**
 * Handles one HTTP/2 stream whose content-type is application/grpc. Unknown methods get
 * Unimplemented with grpc-go's wording.
 */
export function handleGrpcStream(
  table: MethodTable,
  options: GrpcOptions,
  stream: H2Stream,
  peer: PeerInfo = {},
): void {
  const path = stream.headers[":path"] ?? "";
  const method = table.get(path);
  if (!method) {
    const [, service = "", name = ""] = path.split("/");
    const known = [...table.keys()].some((p) => p.startsWith(`/${service}/`));
    sendError(
      stream,
      GrpcCode.Unimplemented,
      known ? `unknown method ${name} for service ${service}` : `unknown service ${service}`,
    );
    return;
  }
  const stats = methodStats(path);
  if (method.kind === "unary") serveUnary(method, options, stream, peer, stats);
  else serveStream(method, options, stream, peer, stats);
}

function serveUnary(
  // deno-lint-ignore no-explicit-any
  method: UnaryMethod<any, any>,
  options: GrpcOptions,
  stream: H2Stream,
  peer: PeerInfo,
  stats: MethodStats | undefined,
): void {
  let reader: GrpcFrameDecoder | null = null;
  let first: Uint8Array | null = null;
  let payload: Uint8Array | null = null;
  let failed = false;
  stream.ondata = (chunk) => {
    if (failed || payload !== null) return;
    try {
      // The common case, a whole message in one DATA frame, needs no reader.
      if (reader === null && first === null) {
        first = chunk;
        payload = wholeMessage(chunk, options.maxRecvBytes);
        return;
      }
      if (reader === null) {
        reader = new GrpcFrameDecoder();
        reader.push(first!);
      }
      reader.push(chunk);
      payload = nextMessage(reader, options.maxRecvBytes);
    } catch (e) {
      failed = true;
      const s = toStatus(e);
      sendError(stream, s.code, s.message);
    }
  };
  stream.onend = () => {
    if (failed) return;
    if (payload === null && reader === null && first !== null) {
      // One chunk holding a message and more bytes: take the first message, as a reader would.
      const r = new GrpcFrameDecoder();
      r.push(first);
      try {
        payload = nextMessage(r, options.maxRecvBytes);
      } catch (e) {
        const s = toStatus(e);
        sendError(stream, s.code, s.message);
        return;
      }
    }
    if (payload === null) {
      sendError(stream, GrpcCode.Internal, "grpc: request message missing");
      return;
    }
    const ctx = lazyContext(stream, peer);
    const startedMs = callStarted(stats, stream.headers);
    messageReceived(stats, payload.length);
    const fail = (e: unknown) => {
      reportInternal(options, stream, e);
      const s = toStatus(e);
      callHandled(stats, s.code, startedMs);
      sendError(stream, s.code, s.message);
    };
    const respond = (res: Uint8Array | ChunkedMessage) => {
      messageSent(stats, res instanceof Uint8Array ? res.length : res.size);
      callHandled(stats, GrpcCode.OK, startedMs);
      respondUnary(stream, res);
    };
    let result: Uint8Array | ChunkedMessage | Promise<Uint8Array | ChunkedMessage>;
    try {
      result = method.raw ? method.raw(payload, ctx) : invokeUnaryHere(method, payload, ctx);
    } catch (e) {
      fail(e);
      return;
    }
    if (result instanceof Promise) result.then(respond, fail);
    else respond(result);
  };
}

/**
 * The message in `chunk` if it holds exactly one whole message; null if more bytes are needed
 * (or more than one message is there: the reader then takes over). Throws as nextMessage() does.
 */
function wholeMessage(chunk: Uint8Array, max: number): Uint8Array | null {
  if (chunk.length < GRPC_PREFIX_BYTES) return null;
  const length = grpcFrameLength(chunk);
  checkPrefix(chunk[0], length, max);
  return chunk.length === GRPC_PREFIX_BYTES + length ? chunk.subarray(GRPC_PREFIX_BYTES) : null;
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
  return invokeWith(method, payload, ctx, (res) => toBinary(method.output, res));
}

/** Decodes the request, runs the handler and hands its response to `encode`. */
function invokeWith<R>(
  // deno-lint-ignore no-explicit-any
  method: UnaryMethod<any, any>,
  payload: Uint8Array,
  ctx: CallContext,
  encode: (res: Message) => R,
): R | Promise<R> {
  let req;
  try {
    req = fromBinary(method.input, payload);
  } catch (e) {
    throw new EtcdError(GrpcCode.Internal, `grpc: error unmarshalling request: ${e}`);
  }
  const result = method.handle(req, ctx);
  return result instanceof Promise ? result.then(encode) : encode(result);
}

/**
 * invokeUnary for a call answered on this thread: a large RangeResponse comes back as a
 * ChunkedMessage, to be written as it is encoded (see chunked_response.ts).
 */
function invokeUnaryHere(
  // deno-lint-ignore no-explicit-any
  method: UnaryMethod<any, any>,
  payload: Uint8Array,
  ctx: CallContext,
): Uint8Array | ChunkedMessage | Promise<Uint8Array | ChunkedMessage> {
  if (method.output !== RangeResponseSchema) return invokeUnary(method, payload, ctx);
  // A range over many keys is sized in slices: a promise of its message (flattened by then()).
  return invokeWith(method, payload, ctx, (res) => {
    const range = res as RangeResponse;
    return chunkedRange(range) ?? toBinary(RangeResponseSchema, range);
  }) as Uint8Array | ChunkedMessage | Promise<Uint8Array | ChunkedMessage>;
}

/**
 * A context whose AbortSignal exists only if a handler asks for it: aborting creates a
 * DOMException with a stack trace, which showed up in profiles when done for every stream (12.6% of
 * the CPU under ebench's keep-alive load, a LeaseKeepAlive stream per renewal). A unary call's
 * context watches the stream's close itself once asked; a stream's (and a Connect call's) is told
 * by `closed()` from the caller's own close handler.
 *
 * A class, not an object literal with a getter: each literal's getter is a new closure stored in
 * a new hidden class, which V8's young-generation collections keep alive (hidden classes are freed
 * only by a full collection), and with it the call's stream and headers: every call's objects were
 * promoted to the old generation (about 400 bytes a call, 1.3 KB per put with the rest), which set
 * the length of each scavenge and the put p99 (docs/benchmarks.md, "What each call left behind").
 */
export class LazyContext implements CallContext {
  readonly headers: Readonly<Record<string, string>>;
  readonly tlsCommonName: string | undefined;
  #stream: H2Stream;
  #controller: AbortController | null = null;
  /** Whether the stream's closing is told by `closed()` (its onclose is the caller's). */
  #told: boolean;

  constructor(stream: H2Stream, peer: PeerInfo, told = false) {
    this.headers = stream.headers;
    this.tlsCommonName = peer.tlsCommonName;
    this.#stream = stream;
    this.#told = told;
  }

  get signal(): AbortSignal {
    if (this.#controller === null) {
      const c = new AbortController();
      this.#controller = c;
      if (this.#stream.closed) c.abort();
      else if (!this.#told) this.#stream.onclose = () => c.abort();
    }
    return this.#controller.signal;
  }

  /** The stream closed: aborts the signal if a handler asked for one. */
  closed(): void {
    this.#controller?.abort();
  }
}

function lazyContext(stream: H2Stream, peer: PeerInfo): CallContext {
  return new LazyContext(stream, peer);
}

function reportInternal(options: GrpcOptions, stream: H2Stream, e: unknown) {
  if (!(e instanceof EtcdError)) options.onInternalError?.(stream.headers[":path"] ?? "", e);
}

function respondUnary(stream: H2Stream, payload: Uint8Array | ChunkedMessage): void {
  if (stream.closed) {
    if (!(payload instanceof Uint8Array)) payload.close();
    return;
  }
  stream.respond(RESPONSE_HEADERS);
  if (!(payload instanceof Uint8Array)) {
    respondChunked(stream, payload)
      .catch(() => stream.reset(ErrorCode.INTERNAL_ERROR))
      .finally(() => payload.close());
    return;
  }
  stream.write(encodeGrpcFrame(payload));
  stream.end(OK_TRAILERS);
}

/**
 * Writes a large response as it is encoded: the gRPC prefix with the planned size, then each
 * chunk, waiting whenever the client has not taken the previous ones (flow control) and letting
 * other work in between chunks.
 */
async function respondChunked(stream: H2Stream, message: ChunkedMessage): Promise<void> {
  const prefix = new Uint8Array(GRPC_PREFIX_BYTES);
  new DataView(prefix.buffer).setUint32(1, message.size);
  // Blocked from a write that returned false until the stream drains (which may happen while
  // this writer pauses, before it waits).
  let blocked = false;
  let waiting: (() => void) | null = null;
  const wake = () => {
    blocked = false;
    const w = waiting;
    waiting = null;
    w?.();
  };
  stream.ondrain = wake;
  const previousOnclose = stream.onclose;
  stream.onclose = () => {
    previousOnclose?.();
    wake();
  };
  const slicer = new Slicer();
  let written = 0;
  blocked = !stream.write(prefix);
  for (const chunk of message.chunks()) {
    if (blocked && !stream.closed) await new Promise<void>((resolve) => (waiting = resolve));
    if (stream.closed) return;
    written += chunk.length;
    blocked = !stream.write(chunk);
    await slicer.pause();
  }
  assert(written === message.size, "chunked response size planned");
  stream.end(OK_TRAILERS);
}

function serveStream(
  // deno-lint-ignore no-explicit-any
  method: StreamMethod<any, any>,
  options: GrpcOptions,
  stream: H2Stream,
  peer: PeerInfo,
  stats: MethodStats | undefined,
): void {
  const startedMs = callStarted(stats, stream.headers);
  const reader = new GrpcFrameDecoder();
  // Most streams end without their handler asking for a signal (a lease keep-alive per stream,
  // as etcd's KeepAliveOnce opens): made on demand, as for unary calls.
  const context = new LazyContext(stream, peer, true);
  const queue: Message[] = [];
  let ended = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  let drained: (() => void)[] = [];
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const release = () => {
    const waiters = drained;
    drained = [];
    for (const w of waiters) w();
  };
  stream.onclose = () => {
    context.closed();
    ended = true;
    notify();
    release();
  };
  stream.ondrain = release;
  stream.ondata = (chunk) => {
    try {
      reader.push(chunk);
      const max = options.maxRecvBytes;
      for (let p = nextMessage(reader, max); p !== null; p = nextMessage(reader, max)) {
        messageReceived(stats, p.length);
        queue.push(fromBinary(method.input, p));
      }
      stream.consumed(chunk.length);
    } catch (e) {
      failure = e;
    }
    notify();
  };
  stream.onend = () => {
    ended = true;
    notify();
  };
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
  /** Whether a frame of `size` bytes may go out (the headers sent first); counts it. */
  const open = (size: number): boolean => {
    if (stream.closed || stream.localEnded) return false;
    if (!stream.headersSent) stream.respond(RESPONSE_HEADERS);
    messageSent(stats, size - GRPC_PREFIX_BYTES);
    return true;
  };
  /** Back-pressure: a write the stream could not take waits until the client takes it. */
  const written = (taken: boolean): Promise<void> =>
    taken ? Promise.resolve() : new Promise((resolve) => drained.push(resolve));
  const sendFrame = (frame: Uint8Array): Promise<void> =>
    open(frame.length) ? written(stream.write(frame)) : Promise.resolve();
  const sendFrameWith = (
    size: number,
    fill: (into: Uint8Array, at: number) => void,
  ): Promise<void> => open(size) ? written(stream.writeWith(size, fill)) : Promise.resolve();
  const sendFrameWithNow = (
    size: number,
    fill: (into: Uint8Array, at: number) => void,
  ): boolean => open(size) ? stream.writeWith(size, fill) : true;
  const whenDrained = (): Promise<void> =>
    stream.closed ? Promise.resolve() : new Promise((resolve) => drained.push(resolve));
  const send = Object.assign(
    (res: Message): Promise<void> => sendFrame(encodeGrpcFrame(toBinary(method.output, res))),
    {
      frame: sendFrame,
      frameWith: sendFrameWith,
      frameWithNow: sendFrameWithNow,
      drained: whenDrained,
    },
  );
  const finish = (code: GrpcCodeValue, message: string) => {
    callHandled(stats, code, startedMs);
    if (stream.closed || stream.localEnded) return;
    if (!stream.headersSent) sendError(stream, code, message);
    else stream.end(code === GrpcCode.OK ? OK_TRAILERS : statusBlock(code, message, false));
  };
  method.handle(requests(), send, context).then(
    () => finish(GrpcCode.OK, ""),
    (e) => {
      reportInternal(options, stream, e);
      const s = toStatus(e);
      finish(s.code, s.message);
    },
  );
}
