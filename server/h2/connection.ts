/**
 * The server side of one HTTP/2 connection (RFC 9113, h2c with prior knowledge) over a node:net
 * socket, written for gRPC. It replaces Deno's node:http2 on the client port: that one is built
 * on nghttp2, whose assertions abort the whole process when a client vanishes with streams in
 * flight. Here every failure stays inside its connection: malformed input is a connection error
 * (GOAWAY, then close), a vanished client just closes its streams, and nothing throws out of a
 * socket callback.
 *
 * Output is built into one staging buffer per connection and written once per event-loop turn
 * (headers, data and trailers of all replies produced together leave in one write), which is
 * what made the old corked node:http2 path fast. Every buffer is bounded: the header block, the
 * partial frame being read, request bytes held by unfinished streams, queued response bytes.
 */

import type * as net from "node:net";
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW_SIZE,
  encodeSettings,
  ErrorCode,
  Flag,
  FRAME_HEADER_LENGTH,
  FrameType,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW_SIZE,
  readUint31,
  readUint32,
  Setting,
  writeFrameHeader,
  writeUint32,
} from "./frames.ts";
import { HpackDecoder, HpackError } from "./hpack.ts";

/** Limits and the stream callback of an HTTP/2 server connection. */
export interface H2Options {
  /** Called once per new stream, when its request header block is complete. */
  onStream: (stream: H2Stream) => void;
  /** SETTINGS_MAX_CONCURRENT_STREAMS we announce and enforce (REFUSED_STREAM above it). */
  maxConcurrentStreams?: number;
  /** Largest decoded request header list (RFC 9113 §6.5.2); also bounds the encoded block. */
  maxHeaderListBytes?: number;
  /** Receive window of each stream (our SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindowBytes?: number;
  /** Receive window of the connection. */
  connectionWindowBytes?: number;
  /** Response bytes a connection may queue (flow control, unread socket) before it is cut. */
  maxOutputBytes?: number;
  /** Request bytes unfinished streams of one connection may hold before it is cut. */
  maxHeldInputBytes?: number;
}

/** A connection error: GOAWAY with this code, then close. */
class ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

const EMPTY = new Uint8Array(0);
/**
 * A staging buffer's size: 64 KiB and room for frame headers, so that two of a snapshot's 32 KiB
 * chunks (32,813 bytes each as three DATA frames of 16 KiB) go out in one socket write.
 */
const STAGING_BYTES = 66 * 1024;
/** Staging buffers that grew past this are not reused after a flush. */
const STAGING_KEEP_BYTES = 1 << 20;
/**
 * Staging buffers kept for reuse once written: as many as can be in the socket at once (a writer
 * waits once SOCKET_HIGH_WATER bytes are, so ~16 of 64 KiB) and two more, so that a stream kept at
 * that mark (a snapshot) takes a spare for every flush instead of a new buffer.
 */
const SPARE_STAGING = 18;
/** A flush of at least 1/HANDOFF_FRACTION of the staging buffer hands the buffer itself over. */
const HANDOFF_FRACTION = 4;
/** Once this much output waits in the socket, writers are told to wait for 'drain'. */
const SOCKET_HIGH_WATER = 1 << 20;
/** Buffers of queued frames kept for reuse per connection, and the largest kept. */
const PENDING_POOL_SIZE = 4;
const PENDING_POOL_MAX_BYTES = 256 * 1024;
/** A stream whose queued output exceeds this tells its writer to wait. */
const STREAM_HIGH_WATER = 64 * 1024;

/**
 * One request/response exchange. Callbacks are plain properties (set them in `onStream`); they
 * are invoked from socket events, and anything they throw resets this stream only.
 */
export class H2Stream {
  /** Request body bytes as they arrive (views on received buffers, never reused). */
  ondata: ((chunk: Uint8Array) => void) | null = null;
  /** The client finished its request (END_STREAM). */
  onend: (() => void) | null = null;
  /** The stream is gone: finished, reset by either side, or the connection closed. Once. */
  onclose: (() => void) | null = null;
  /** Queued output was sent after `write` returned false. */
  ondrain: (() => void) | null = null;
  /** Whether response headers went out. */
  headersSent = false;
  /** Whether the client ended its side. */
  remoteEnded = false;
  /** Whether we ended our side (or reset the stream). */
  localEnded = false;
  /** Whether the stream is gone. */
  closed = false;
  /** The client's RST_STREAM error code, if it reset the stream. */
  resetCode: number | null = null;

  /** @internal Bytes we may still send (client's stream window). */
  sendWindow: number;
  /** @internal Bytes the client may still send us. */
  recvWindow: number;
  /** @internal Received bytes not yet acknowledged with WINDOW_UPDATE. */
  recvUnacked = 0;
  /** @internal Request bytes held by the application. */
  held = 0;
  /** @internal Output waiting for flow-control window. */
  pending: Uint8Array[] = [];
  /** @internal Sum of `pending`. */
  pendingBytes = 0;
  /** @internal End the stream once `pending` drains; with these trailers if set. */
  pendingEnd = false;
  /** @internal Trailers for a deferred end. */
  pendingTrailers: Uint8Array | null = null;
  /** @internal `write` returned false; call `ondrain` when writable again. */
  needDrain = false;

  readonly #conn: H2Connection;

  constructor(
    conn: H2Connection,
    /** The stream identifier (odd: client-initiated). */
    readonly id: number,
    /** Request headers, names lower case; repeated names joined with ", ". */
    readonly headers: Record<string, string>,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.#conn = conn;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Sends response headers (an HPACK block, see encodeHeaders); `endStream` for trailers-only. */
  respond(block: Uint8Array, endStream = false): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    this.#conn.emitHeaders(this.id, block, endStream);
    if (endStream) this.#conn.localEnd(this);
  }

  /**
   * Queues response body bytes (after `respond`); they leave as the client's flow-control
   * windows allow. Returns false when the writer should wait for `ondrain`.
   */
  write(data: Uint8Array): boolean {
    if (this.closed || this.localEnded || !this.headersSent) return false;
    return this.#conn.writeData(this, data);
  }

  /**
   * As write() for `size` bytes that `fill` writes at `into[at..]`: straight into the
   * connection's output when the windows allow (no buffer of its own), else into a new buffer
   * that is queued as write() would queue it.
   */
  writeWith(size: number, fill: (into: Uint8Array, at: number) => void): boolean {
    if (this.closed || this.localEnded || !this.headersSent) return false;
    return this.#conn.writeDataWith(this, size, fill);
  }

  /** Ends the response: trailers (an HPACK block) if given, else an empty END_STREAM DATA. */
  end(trailers?: Uint8Array): void {
    if (this.closed || this.localEnded) return;
    if (!this.headersSent) {
      if (trailers === undefined) return this.reset(ErrorCode.INTERNAL_ERROR);
      this.respond(trailers, true);
      return;
    }
    if (this.pending.length > 0) {
      this.pendingEnd = true;
      this.pendingTrailers = trailers ?? null;
      return;
    }
    this.#conn.finish(this, trailers ?? null);
  }

  /** Abandons the stream with RST_STREAM. */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.#conn.resetStream(this, code);
  }

  /** Tells the connection that `n` request bytes are no longer held (streaming readers). */
  consumed(n: number): void {
    this.#conn.release(this, Math.min(n, this.held));
  }
}

/**
 * Serves HTTP/2 on one socket whose first bytes are the client connection preface. Create it
 * when the socket is handed over; it sends our SETTINGS at once.
 */
export class H2Connection {
  readonly #decoder: HpackDecoder;
  readonly #streams = new Map<number, H2Stream>();
  readonly #maxConcurrentStreams: number;
  readonly #maxHeaderListBytes: number;
  readonly #streamWindow: number;
  readonly #connectionWindow: number;
  readonly #maxOutputBytes: number;
  readonly #maxHeldInputBytes: number;
  #lastStreamId = 0;
  #prefaceSeen = false;
  #settingsSeen = false;
  #leftover: Uint8Array | null = null;
  // Header block being continued (CONTINUATION frames).
  #contStreamId = 0;
  #contEndStream = false;
  #contParts: Uint8Array[] = [];
  #contBytes = 0;
  // Peer settings and windows.
  #peerInitialWindow = DEFAULT_WINDOW_SIZE;
  #peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  #sendWindow = DEFAULT_WINDOW_SIZE;
  #recvWindow: number;
  #recvUnacked = 0;
  #held = 0;
  // Output.
  #staging = new Uint8Array(STAGING_BYTES);
  /** Staging buffers the socket has written, for the next flushes. */
  readonly #spareStaging: Uint8Array<ArrayBuffer>[] = [];
  /**
   * Buffers a frame filled while its stream waits for flow-control window is queued in, given
   * back once sent (see #pendingBuffer): a snapshot streams hundreds of MB through here, most
   * chunks waiting for the client's window, and a new buffer each was ~125 MB/s of external
   * memory that made V8 run full collections of a large member's heap mid-snapshot.
   */
  readonly #pendingPool: Uint8Array<ArrayBuffer>[] = [];
  /** The ArrayBuffers of the pool's buffers (queued ones included). */
  readonly #pooled = new WeakSet<ArrayBufferLike>();
  #stagingLength = 0;
  #flushScheduled = false;
  #queuedBytes = 0;
  readonly #blocked = new Set<H2Stream>();
  readonly #drainWaiters = new Set<H2Stream>();
  #goawaySent = false;
  #goawayReceived = false;
  #ending = false;
  /** Whether the connection is finished (error, close, or shut down with no streams left). */
  closed = false;

  readonly #socket: net.Socket;
  readonly #options: H2Options;

  constructor(socket: net.Socket, options: H2Options) {
    this.#socket = socket;
    this.#options = options;
    this.#maxConcurrentStreams = options.maxConcurrentStreams ?? 1000;
    this.#maxHeaderListBytes = options.maxHeaderListBytes ?? 256 * 1024;
    this.#streamWindow = options.streamWindowBytes ?? 4 * 1024 * 1024;
    this.#connectionWindow = options.connectionWindowBytes ?? 16 * 1024 * 1024;
    this.#maxOutputBytes = options.maxOutputBytes ?? 64 * 1024 * 1024;
    this.#maxHeldInputBytes = options.maxHeldInputBytes ?? 64 * 1024 * 1024;
    this.#recvWindow = this.#connectionWindow;
    this.#decoder = new HpackDecoder(4096, this.#maxHeaderListBytes);
    socket.on("data", (chunk: Uint8Array) => this.#onSocketData(chunk));
    socket.on("close", () => this.#onSocketGone());
    socket.on("error", () => {
      this.#onSocketGone();
      socket.destroy();
    });
    socket.on("drain", () => this.#onSocketDrain());
    this.#emit(
      FrameType.SETTINGS,
      0,
      0,
      encodeSettings([
        [Setting.MAX_CONCURRENT_STREAMS, this.#maxConcurrentStreams],
        [Setting.INITIAL_WINDOW_SIZE, this.#streamWindow],
        [Setting.MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE],
        [Setting.MAX_HEADER_LIST_SIZE, this.#maxHeaderListBytes],
      ]),
    );
    if (this.#connectionWindow > DEFAULT_WINDOW_SIZE) {
      this.#emitWindowUpdate(0, this.#connectionWindow - DEFAULT_WINDOW_SIZE);
    }
  }

  /** Open streams (for tests and diagnostics). */
  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * Graceful shutdown: GOAWAY(NO_ERROR) so the client opens no more streams, then close once
   * the streams in flight are done.
   */
  shutdown(): void {
    if (this.closed || this.#goawaySent) return;
    this.#sendGoaway(ErrorCode.NO_ERROR);
    this.#flush();
    if (this.#streams.size === 0) this.#endSocket();
  }

  // -------------------------------------------------------------------------------------------
  // Input

  #onSocketData(chunk: Uint8Array): void {
    if (this.closed) return;
    try {
      this.#receive(chunk);
    } catch (e) {
      if (e instanceof ConnectionError) this.#fail(e.code);
      else this.#fail(ErrorCode.INTERNAL_ERROR);
    }
  }

  #receive(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.#leftover !== null) {
      buf = new Uint8Array(this.#leftover.length + chunk.length);
      buf.set(this.#leftover);
      buf.set(chunk, this.#leftover.length);
      this.#leftover = null;
    }
    let pos = 0;
    if (!this.#prefaceSeen) {
      const n = Math.min(buf.length, CLIENT_PREFACE.length);
      for (let i = 0; i < n; i++) {
        if (buf[i] !== CLIENT_PREFACE[i]) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "");
      }
      if (buf.length < CLIENT_PREFACE.length) {
        this.#leftover = buf.slice();
        return;
      }
      this.#prefaceSeen = true;
      pos = CLIENT_PREFACE.length;
    }
    while (!this.closed && buf.length - pos >= FRAME_HEADER_LENGTH) {
      const length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (length > DEFAULT_MAX_FRAME_SIZE) {
        throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "frame too large");
      }
      const end = pos + FRAME_HEADER_LENGTH + length;
      if (end > buf.length) break;
      const type = buf[pos + 3];
      const flags = buf[pos + 4];
      const streamId = readUint31(buf, pos + 5);
      if (!this.#settingsSeen) {
        // The preface ends with a SETTINGS frame (RFC 9113 §3.4); anything else is not HTTP/2.
        if (type !== FrameType.SETTINGS || (flags & Flag.ACK) !== 0) {
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "preface without SETTINGS");
        }
        this.#settingsSeen = true;
      }
      this.#onFrame(type, flags, streamId, buf.subarray(pos + FRAME_HEADER_LENGTH, end));
      pos = end;
    }
    if (!this.closed && pos < buf.length) this.#leftover = buf.slice(pos);
    this.#flushSoon();
  }

  #onFrame(type: number, flags: number, id: number, payload: Uint8Array): void {
    if (this.#contStreamId !== 0 && type !== FrameType.CONTINUATION) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION");
    }
    switch (type) {
      case FrameType.DATA:
        return this.#onData(flags, id, payload);
      case FrameType.HEADERS:
        return this.#onHeaders(flags, id, payload);
      case FrameType.PRIORITY:
        if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on 0");
        if (payload.length !== 5) this.#emitRst(id, ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.RST_STREAM:
        return this.#onRstStream(id, payload);
      case FrameType.SETTINGS:
        return this.#onSettings(flags, id, payload);
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
      case FrameType.PING:
        if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "PING on a stream");
        if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING");
        if ((flags & Flag.ACK) === 0) this.#emit(FrameType.PING, Flag.ACK, 0, payload);
        return;
      case FrameType.GOAWAY:
        if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream");
        if (payload.length < 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY");
        this.#goawayReceived = true;
        if (this.#streams.size === 0) this.#endSocket();
        return;
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(id, payload);
      case FrameType.CONTINUATION:
        return this.#onContinuation(flags, id, payload);
      default:
        return; // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  }

  #onData(flags: number, id: number, payload: Uint8Array): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    if (id > this.#lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "idle");
    const length = payload.length;
    if (length > this.#recvWindow) {
      throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window exceeded");
    }
    // Connection-level window: everything received counts, even for streams already closed.
    this.#recvWindow -= length;
    this.#recvUnacked += length;
    if (this.#recvUnacked >= this.#connectionWindow >>> 1) {
      this.#emitWindowUpdate(0, this.#recvUnacked);
      this.#recvWindow += this.#recvUnacked;
      this.#recvUnacked = 0;
    }
    let data = payload;
    if (flags & Flag.PADDED) {
      if (length < 1 || payload[0] >= length) {
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "bad padding");
      }
      data = payload.subarray(1, length - payload[0]);
    }
    const stream = this.#streams.get(id);
    if (stream === undefined) return; // Closed by us: the client had not seen it yet.
    if (stream.remoteEnded) return this.resetStream(stream, ErrorCode.STREAM_CLOSED);
    if (length > stream.recvWindow) return this.resetStream(stream, ErrorCode.FLOW_CONTROL_ERROR);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    stream.recvWindow -= length;
    stream.recvUnacked += length;
    if (!endStream && stream.recvUnacked >= this.#streamWindow >>> 1) {
      this.#emitWindowUpdate(id, stream.recvUnacked);
      stream.recvWindow += stream.recvUnacked;
      stream.recvUnacked = 0;
    }
    if (data.length > 0) {
      stream.held += data.length;
      this.#held += data.length;
      if (this.#held > this.#maxHeldInputBytes) {
        throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "too much request data held");
      }
      const ondata = stream.ondata;
      if (ondata !== null) {
        try {
          ondata(data);
        } catch {
          this.resetStream(stream, ErrorCode.INTERNAL_ERROR);
        }
      }
    }
    if (endStream) this.#remoteEnd(stream);
  }

  #onHeaders(flags: number, id: number, payload: Uint8Array): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    let start = 0;
    let end = payload.length;
    if (flags & Flag.PADDED) {
      if (end < 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "bad padding");
      start = 1;
      end -= payload[0];
    }
    if (flags & Flag.PRIORITY) start += 5;
    if (start > end) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "bad padding");
    const block = payload.subarray(start, end);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (flags & Flag.END_HEADERS) return this.#onHeaderBlock(id, endStream, block);
    this.#contStreamId = id;
    this.#contEndStream = endStream;
    this.#contParts = [block];
    this.#contBytes = block.length;
    this.#checkHeaderBlockSize();
  }

  #onContinuation(flags: number, id: number, payload: Uint8Array): void {
    if (this.#contStreamId === 0 || id !== this.#contStreamId) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION");
    }
    this.#contParts.push(payload);
    this.#contBytes += payload.length;
    this.#checkHeaderBlockSize();
    if ((flags & Flag.END_HEADERS) === 0) return;
    const block = new Uint8Array(this.#contBytes);
    let o = 0;
    for (const part of this.#contParts) {
      block.set(part, o);
      o += part.length;
    }
    this.#contStreamId = 0;
    this.#contParts = [];
    this.#contBytes = 0;
    this.#onHeaderBlock(id, this.#contEndStream, block);
  }

  #checkHeaderBlockSize(): void {
    if (this.#contBytes > this.#maxHeaderListBytes) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large");
    }
  }

  #onHeaderBlock(id: number, endStream: boolean, block: Uint8Array): void {
    let fields;
    try {
      // Always decoded, even for streams we drop: the HPACK state must stay in step.
      fields = this.#decoder.decode(block);
    } catch (e) {
      if (e instanceof HpackError) {
        throw new ConnectionError(ErrorCode.COMPRESSION_ERROR, e.message);
      }
      throw e;
    }
    if ((id & 1) === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "even stream id");
    const existing = this.#streams.get(id);
    if (existing !== undefined) {
      // Request trailers: must end the stream.
      if (existing.remoteEnded) return this.resetStream(existing, ErrorCode.STREAM_CLOSED);
      if (!endStream) return this.resetStream(existing, ErrorCode.PROTOCOL_ERROR);
      return this.#remoteEnd(existing);
    }
    if (id <= this.#lastStreamId) return; // A stream we closed already; its leftovers are dropped.
    this.#lastStreamId = id;
    if (this.#goawaySent) return; // Streams above our GOAWAY's last id are ignored (§6.8).
    if (this.#streams.size >= this.#maxConcurrentStreams) {
      return this.#emitRst(id, ErrorCode.REFUSED_STREAM);
    }
    const headers: Record<string, string> = {};
    let regular = false;
    for (const { name, value } of fields) {
      if (name.charCodeAt(0) === 0x3a) {
        // Pseudo-headers come first and only the request ones are allowed (§8.3).
        if (
          regular ||
          (name !== ":method" && name !== ":path" && name !== ":scheme" &&
            name !== ":authority") ||
          headers[name] !== undefined
        ) {
          return this.#emitRst(id, ErrorCode.PROTOCOL_ERROR);
        }
      } else {
        regular = true;
        if (name !== name.toLowerCase()) return this.#emitRst(id, ErrorCode.PROTOCOL_ERROR);
      }
      const prior = headers[name];
      headers[name] = prior === undefined ? value : `${prior}, ${value}`;
    }
    if (headers[":method"] === undefined || headers[":path"] === undefined) {
      return this.#emitRst(id, ErrorCode.PROTOCOL_ERROR);
    }
    const stream = new H2Stream(
      this,
      id,
      headers,
      this.#peerInitialWindow,
      this.#streamWindow,
    );
    this.#streams.set(id, stream);
    try {
      this.#options.onStream(stream);
    } catch {
      this.resetStream(stream, ErrorCode.INTERNAL_ERROR);
      return;
    }
    if (endStream) this.#remoteEnd(stream);
  }

  #remoteEnd(stream: H2Stream): void {
    if (stream.closed || stream.remoteEnded) return;
    stream.remoteEnded = true;
    if (stream.localEnded) {
      this.#closeStream(stream);
      return;
    }
    const onend = stream.onend;
    if (onend !== null) {
      try {
        onend();
      } catch {
        this.resetStream(stream, ErrorCode.INTERNAL_ERROR);
      }
    }
  }

  #onRstStream(id: number, payload: Uint8Array): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on 0");
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM");
    if (id > this.#lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "idle");
    const stream = this.#streams.get(id);
    if (stream === undefined) return;
    stream.resetCode = readUint32(payload, 0);
    stream.localEnded = true;
    this.#closeStream(stream);
  }

  #onSettings(flags: number, id: number, payload: Uint8Array): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "ACK");
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "len");
    for (let i = 0; i < payload.length; i += 6) {
      const key = (payload[i] << 8) | payload[i + 1];
      const value = readUint32(payload, i + 2);
      switch (key) {
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH");
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW_SIZE) {
            throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE");
          }
          const delta = value - this.#peerInitialWindow;
          this.#peerInitialWindow = value;
          for (const stream of this.#streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW_SIZE) {
              throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "window overflow");
            }
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) {
            throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE");
          }
          this.#peerMaxFrameSize = value;
          break;
        default:
          // HEADER_TABLE_SIZE: our encoder never uses the dynamic table. Others: nothing to do.
          break;
      }
    }
    this.#emit(FrameType.SETTINGS, Flag.ACK, 0, EMPTY);
    this.#drainAll();
  }

  #onWindowUpdate(id: number, payload: Uint8Array): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW");
    const increment = readUint31(payload, 0);
    if (id === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "increment 0");
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW_SIZE) {
        throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "window overflow");
      }
      this.#drainAll();
      return;
    }
    if (id > this.#lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "idle");
    const stream = this.#streams.get(id);
    if (stream === undefined) return;
    if (increment === 0) return this.resetStream(stream, ErrorCode.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW_SIZE) {
      return this.resetStream(stream, ErrorCode.FLOW_CONTROL_ERROR);
    }
    this.#drain(stream);
  }

  // -------------------------------------------------------------------------------------------
  // Streams

  /** @internal See H2Stream.writeWith. */
  writeDataWith(
    stream: H2Stream,
    size: number,
    fill: (into: Uint8Array, at: number) => void,
  ): boolean {
    if (stream.pending.length > 0 || size > stream.sendWindow || size > this.#sendWindow) {
      const data = this.#pendingBuffer(size);
      fill(data, 0);
      const more = this.writeData(stream, data);
      // Sent whole at once, or the stream was reset: the buffer is free again.
      if (stream.pending.at(-1)?.buffer !== data.buffer) this.#givePendingBack(data);
      return more;
    }
    if (size > this.#peerMaxFrameSize) {
      this.#emitDataWith(stream.id, size, fill);
      stream.sendWindow -= size;
      this.#sendWindow -= size;
      return this.#roomAfterWrite(stream);
    }
    const at = this.#reserve(FRAME_HEADER_LENGTH + size);
    writeFrameHeader(this.#staging, at, size, FrameType.DATA, 0, stream.id);
    fill(this.#staging, at + FRAME_HEADER_LENGTH);
    stream.sendWindow -= size;
    this.#sendWindow -= size;
    this.#flushSoon();
    return this.#roomAfterWrite(stream);
  }

  /** A buffer of `size` bytes for a queued frame: from the pool when one is large enough. */
  #pendingBuffer(size: number): Uint8Array {
    const pool = this.#pendingPool;
    for (let i = 0; i < pool.length; i++) {
      if (pool[i].length >= size) {
        const buffer = pool[i];
        pool[i] = pool[pool.length - 1];
        pool.pop();
        return buffer.subarray(0, size);
      }
    }
    if (size > PENDING_POOL_MAX_BYTES) return new Uint8Array(size);
    const buffer = new Uint8Array(size);
    this.#pooled.add(buffer.buffer);
    return buffer;
  }

  /** Gives a queued frame's buffer back to the pool once its last byte was sent. */
  #givePendingBack(chunk: Uint8Array): void {
    if (!this.#pooled.has(chunk.buffer) || this.#pendingPool.length >= PENDING_POOL_SIZE) return;
    this.#pendingPool.push(new Uint8Array(chunk.buffer as ArrayBuffer));
  }

  /** @internal Queues or sends response body bytes; see H2Stream.write. */
  writeData(stream: H2Stream, data: Uint8Array): boolean {
    let rest = data;
    if (stream.pending.length === 0) {
      const n = Math.max(0, Math.min(rest.length, stream.sendWindow, this.#sendWindow));
      if (n > 0) {
        this.#emitData(stream.id, n === rest.length ? rest : rest.subarray(0, n), false);
        stream.sendWindow -= n;
        this.#sendWindow -= n;
        rest = rest.subarray(n);
      }
    } else if (this.#queuedBytes + this.#socketBacklog() > this.#maxOutputBytes) {
      // A writer ignoring back-pressure: give up on this stream rather than grow without bound.
      this.resetStream(stream, ErrorCode.ENHANCE_YOUR_CALM);
      return false;
    }
    if (rest.length > 0) {
      stream.pending.push(rest);
      stream.pendingBytes += rest.length;
      this.#queuedBytes += rest.length;
      this.#blocked.add(stream);
    }
    this.#flushSoon();
    return this.#roomAfterWrite(stream);
  }

  /**
   * Whether a writer may go on after a write to `stream`; if not, it is told to wait ('drain'
   * when its queued bytes or, with none queued, the socket's backlog go down).
   */
  #roomAfterWrite(stream: H2Stream): boolean {
    if (stream.pendingBytes < STREAM_HIGH_WATER && this.#socketBacklog() < SOCKET_HIGH_WATER) {
      return true;
    }
    stream.needDrain = true;
    if (stream.pendingBytes === 0) this.#drainWaiters.add(stream);
    return false;
  }

  /** @internal Sends the end of a stream whose output is all out. */
  finish(stream: H2Stream, trailers: Uint8Array | null): void {
    if (trailers !== null) this.emitHeaders(stream.id, trailers, true);
    else this.#emitData(stream.id, EMPTY, true);
    this.localEnd(stream);
  }

  /** @internal Our side ended; a client still sending is told to stop (as grpc-go does). */
  localEnd(stream: H2Stream): void {
    stream.localEnded = true;
    if (!stream.remoteEnded) this.#emitRst(stream.id, ErrorCode.NO_ERROR);
    this.#closeStream(stream);
  }

  /** @internal Resets a stream from our side. */
  resetStream(stream: H2Stream, code: number): void {
    if (stream.closed) return;
    stream.localEnded = true;
    this.#emitRst(stream.id, code);
    this.#closeStream(stream);
  }

  /** @internal Request bytes the application no longer holds. */
  release(stream: H2Stream, n: number): void {
    stream.held -= n;
    this.#held -= n;
  }

  #closeStream(stream: H2Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    this.#drainWaiters.delete(stream);
    this.#queuedBytes -= stream.pendingBytes;
    this.#held -= stream.held;
    stream.held = 0;
    stream.pending = [];
    stream.pendingBytes = 0;
    const onclose = stream.onclose;
    stream.ondata =
      stream.onend =
      stream.onclose =
      stream.ondrain =
        null;
    if (onclose !== null) {
      try {
        onclose();
      } catch {
        // The stream is gone already; nothing left to reset.
      }
    }
    if ((this.#goawaySent || this.#goawayReceived) && this.#streams.size === 0) this.#endSocket();
  }

  #drainAll(): void {
    for (const stream of this.#blocked) {
      if (this.#sendWindow <= 0) return;
      this.#drain(stream);
    }
  }

  #drain(stream: H2Stream): void {
    while (stream.pending.length > 0) {
      const chunk = stream.pending[0];
      const n = Math.min(chunk.length, stream.sendWindow, this.#sendWindow);
      if (n <= 0) break;
      if (n === chunk.length) {
        stream.pending.shift();
        this.#emitData(stream.id, chunk, false);
        this.#givePendingBack(chunk);
      } else {
        this.#emitData(stream.id, chunk.subarray(0, n), false);
        stream.pending[0] = chunk.subarray(n);
      }
      stream.sendWindow -= n;
      this.#sendWindow -= n;
      stream.pendingBytes -= n;
      this.#queuedBytes -= n;
    }
    this.#flushSoon();
    if (stream.pending.length > 0) return;
    this.#blocked.delete(stream);
    if (stream.pendingEnd) {
      stream.pendingEnd = false;
      this.finish(stream, stream.pendingTrailers);
      return;
    }
    if (stream.needDrain) {
      if (this.#socketBacklog() < SOCKET_HIGH_WATER) this.#notifyDrain(stream);
      else this.#drainWaiters.add(stream);
    }
  }

  #notifyDrain(stream: H2Stream): void {
    stream.needDrain = false;
    this.#drainWaiters.delete(stream);
    const ondrain = stream.ondrain;
    if (ondrain === null) return;
    try {
      ondrain();
    } catch {
      this.resetStream(stream, ErrorCode.INTERNAL_ERROR);
    }
  }

  #onSocketDrain(): void {
    if (this.closed) return;
    for (const stream of [...this.#drainWaiters]) {
      if (stream.pendingBytes === 0) this.#notifyDrain(stream);
    }
  }

  #onSocketGone(): void {
    if (this.closed && this.#streams.size === 0) return;
    this.closed = true;
    this.#leftover = null;
    this.#contParts = [];
    for (const stream of [...this.#streams.values()]) {
      stream.localEnded = true;
      this.#closeStream(stream);
    }
  }

  /** Connection error: GOAWAY with `code`, then close; every stream is closed. */
  #fail(code: number): void {
    if (this.closed) return;
    this.#sendGoaway(code);
    this.#flush();
    this.#onSocketGone();
    this.#endSocket();
  }

  #sendGoaway(code: number): void {
    this.#goawaySent = true;
    const payload = new Uint8Array(8);
    writeUint32(payload, 0, this.#lastStreamId);
    writeUint32(payload, 4, code);
    this.#emit(FrameType.GOAWAY, 0, 0, payload);
  }

  #endSocket(): void {
    this.#flush();
    this.closed = true;
    const socket = this.#socket;
    if (socket.destroyed || this.#ending) return;
    this.#ending = true;
    try {
      socket.end(() => socket.destroy());
    } catch {
      socket.destroy();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Output

  #socketBacklog(): number {
    return this.#socket.writableLength + this.#stagingLength;
  }

  #reserve(n: number): number {
    if (
      this.#stagingLength + n > this.#staging.length &&
      this.#stagingLength * HANDOFF_FRACTION >= this.#staging.length
    ) {
      // Full enough to hand the buffer over: write it out and go on in a spare, rather than
      // grow it (a new buffer, twice the size, per flush of a snapshot's stream).
      this.#writeStaged();
    }
    const at = this.#stagingLength;
    if (at + n > this.#staging.length) {
      const grown = new Uint8Array(Math.max(this.#staging.length * 2, at + n));
      grown.set(this.#staging.subarray(0, at));
      this.#staging = grown;
    }
    this.#stagingLength = at + n;
    return at;
  }

  #emit(type: number, flags: number, id: number, payload: Uint8Array): void {
    const at = this.#reserve(FRAME_HEADER_LENGTH + payload.length);
    writeFrameHeader(this.#staging, at, payload.length, type, flags, id);
    this.#staging.set(payload, at + FRAME_HEADER_LENGTH);
    this.#flushSoon();
  }

  #emitRst(id: number, code: number): void {
    const at = this.#reserve(FRAME_HEADER_LENGTH + 4);
    writeFrameHeader(this.#staging, at, 4, FrameType.RST_STREAM, 0, id);
    writeUint32(this.#staging, at + FRAME_HEADER_LENGTH, code);
    this.#flushSoon();
  }

  #emitWindowUpdate(id: number, increment: number): void {
    const at = this.#reserve(FRAME_HEADER_LENGTH + 4);
    writeFrameHeader(this.#staging, at, 4, FrameType.WINDOW_UPDATE, 0, id);
    writeUint32(this.#staging, at + FRAME_HEADER_LENGTH, increment);
    this.#flushSoon();
  }

  /** @internal A header block as HEADERS (+ CONTINUATION when over the peer's frame size). */
  emitHeaders(id: number, block: Uint8Array, endStream: boolean): void {
    const max = this.#peerMaxFrameSize;
    const end = endStream ? Flag.END_STREAM : 0;
    if (block.length <= max) {
      this.#emit(FrameType.HEADERS, end | Flag.END_HEADERS, id, block);
      return;
    }
    this.#emit(FrameType.HEADERS, end, id, block.subarray(0, max));
    for (let o = max; o < block.length; o += max) {
      const last = o + max >= block.length;
      this.#emit(
        FrameType.CONTINUATION,
        last ? Flag.END_HEADERS : 0,
        id,
        block.subarray(o, Math.min(o + max, block.length)),
      );
    }
  }

  #emitData(id: number, data: Uint8Array, endStream: boolean): void {
    const max = this.#peerMaxFrameSize;
    if (data.length <= max) {
      this.#emit(FrameType.DATA, endStream ? Flag.END_STREAM : 0, id, data);
      return;
    }
    for (let o = 0; o < data.length; o += max) {
      const last = o + max >= data.length;
      this.#emit(
        FrameType.DATA,
        last && endStream ? Flag.END_STREAM : 0,
        id,
        data.subarray(o, Math.min(o + max, data.length)),
      );
    }
  }

  /**
   * DATA frames of the peer's frame size carrying the `size` bytes `fill` writes, filled once in
   * place in the output, then each frame's part moved up past its header: no buffer of its own and
   * no view per frame (a snapshot's 32 KiB chunks are three frames each, 11,000 per 1M keys).
   */
  #emitDataWith(id: number, size: number, fill: (into: Uint8Array, at: number) => void): void {
    const max = this.#peerMaxFrameSize;
    const frames = Math.ceil(size / max);
    const at = this.#reserve(frames * FRAME_HEADER_LENGTH + size);
    const staging = this.#staging;
    fill(staging, at + FRAME_HEADER_LENGTH);
    // Part k was filled at `from`; it goes 9k bytes further, after its header. Last part first:
    // each moves into room the parts after it have left, and its header over bytes already moved.
    for (let k = frames - 1; k >= 0; k--) {
      const from = at + FRAME_HEADER_LENGTH + k * max;
      const length = Math.min(max, size - k * max);
      const frameAt = at + k * (FRAME_HEADER_LENGTH + max);
      if (k > 0) staging.copyWithin(frameAt + FRAME_HEADER_LENGTH, from, from + length);
      writeFrameHeader(staging, frameAt, length, FrameType.DATA, 0, id);
    }
    this.#flushSoon();
  }

  #flushSoon(): void {
    if (this.#flushScheduled || this.#stagingLength === 0) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Writes everything staged in one socket write; writers waiting for room hear of it. */
  #flush(): void {
    if (!this.#writeStaged()) return;
    // Writers told to wait because staged bytes (not the socket) passed the high-water mark get
    // no 'drain' event when the socket took everything at once: wake them here.
    if (this.#drainWaiters.size > 0 && this.#socketBacklog() < SOCKET_HIGH_WATER) {
      this.#onSocketDrain();
    }
  }

  /**
   * Writes everything staged in one socket write, waking no writer (safe in the middle of
   * staging a frame); false when there was nothing to write or the socket is gone.
   */
  #writeStaged(): boolean {
    if (this.#stagingLength === 0) return false;
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) {
      this.#stagingLength = 0;
      return false;
    }
    // A large flush hands the staging buffer itself to the socket, and a spare one (given back
    // once the socket has written it) takes its place: no copy, and no new buffer per flush (a
    // snapshot streams hundreds of MB through here; a buffer per flush was external memory the
    // collector counted, and ran full collections of the member's heap for). A small one is
    // copied out: a slow client's queued writes must not each hold a whole staging buffer.
    const used = this.#staging;
    const length = this.#stagingLength;
    this.#stagingLength = 0;
    let out: Uint8Array;
    let giveBack: (() => void) | undefined;
    if (length * HANDOFF_FRACTION >= used.length) {
      out = used.subarray(0, length);
      this.#staging = this.#spareStaging.pop() ?? new Uint8Array(STAGING_BYTES);
      giveBack = () => {
        if (used.length <= STAGING_KEEP_BYTES && this.#spareStaging.length < SPARE_STAGING) {
          this.#spareStaging.push(used);
        }
      };
    } else {
      out = used.slice(0, length);
      if (used.length > STAGING_KEEP_BYTES) this.#staging = new Uint8Array(STAGING_BYTES);
    }
    try {
      socket.write(out, giveBack);
    } catch {
      socket.destroy();
      return false;
    }
    if (socket.writableLength > this.#maxOutputBytes) {
      // The client lets us send but does not read: cut it off.
      socket.destroy();
      return false;
    }
    return true;
  }
}
