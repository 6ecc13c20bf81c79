/**
 * Accepts gRPC clients that put a URL scheme into HTTP/2's `:authority` pseudo-header.
 *
 * No longer wired into the client listener: detcd's own HTTP/2 server (server/h2) accepts such
 * an `:authority` as Go does. Kept for any node:http2 server that still needs it; its HPACK code
 * now lives in server/h2/hpack.ts.
 *
 * etcdctl 3.4 (grpc-go 1.33) given `--endpoints=http://127.0.0.1:2379` (and `endpoint status
 * --cluster`, which always dials the members' client URLs) sends `:authority: http://127.0.0.1:2379`.
 * Go's HTTP/2 server accepts that; Deno's `node:http2` rejects the stream as malformed before any
 * handler sees it, and the client fails with "transport is closing".
 *
 * The fix sits between the socket and `node:http2` on every h2c connection ({@link filterAuthority}).
 * It reads the client's frames up to the end of the first header block and decodes that block with
 * HPACK (RFC 7541). A normal client (no `://` in `:authority`) is then handed through untouched for
 * the rest of the connection: the filter removes itself, so the hot path costs nothing after the
 * first request. A client with a scheme puts the connection into rewrite mode: every later header
 * block is decoded against a mirror of the client's dynamic table and re-encoded with literal
 * representations that never touch the server's dynamic table (so the server's HPACK state stays
 * empty and consistent), with `:authority` reduced to `host:port`; all other frames pass unchanged.
 *
 * Every buffer is bounded. Malformed input before the decision is handed through as it came (so
 * `node:http2` rejects it as it would have); malformed input in rewrite mode closes the connection,
 * since the server's view of the header compression state could no longer be kept consistent.
 */

import type * as net from "node:net";

import { encodeLiteralBlock, HpackDecoder, HpackError, stripScheme } from "./h2/hpack.ts";

// The HPACK code lives in server/h2/hpack.ts; re-exported for existing users and tests.
export {
  encodeLiteralBlock,
  type HeaderField,
  HpackDecoder,
  HpackError,
  huffmanCodes,
  huffmanDecode,
  huffmanLengths,
  stripScheme,
} from "./h2/hpack.ts";

// ---------------------------------------------------------------------------------------------
// HTTP/2 frames, client to server (RFC 7540 §4.1, §6.2, §6.10)

const PREFACE_LENGTH = 24;
const FRAME_HEADER_LENGTH = 9;
const TYPE_HEADERS = 0x1;
const TYPE_PUSH_PROMISE = 0x5;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

/**
 * Where a connection stands: still reading up to the first header block, rewriting every header
 * block, handing everything through (the filter is done), or to be closed (malformed in rewrite).
 */
export type AuthorityFilterMode = "detect" | "rewrite" | "passthrough" | "closed";

/** Limits of an {@link AuthorityFilter}; the defaults match detcd's `node:http2` server. */
export interface AuthorityFilterOptions {
  /** Largest frame payload the server accepts (its SETTINGS_MAX_FRAME_SIZE); default 16384. */
  maxFrameSize?: number;
  /** The server's SETTINGS_HEADER_TABLE_SIZE: the largest dynamic table a client may use; 4096. */
  headerTableSize?: number;
  /**
   * Bound on one header block: its frames on the wire (headers and padding included) and,
   * separately, its decoded header list size; default 256 KiB.
   */
  maxHeaderBlockBytes?: number;
}

class Malformed extends Error {}

/**
 * The client-to-server byte filter of one h2c connection (see the module comment). Feed it the
 * client's bytes in order with {@link push}; hand what it returns to the HTTP/2 server. Chunks may
 * split frames anywhere.
 */
export class AuthorityFilter {
  /** Current mode; once "passthrough", {@link push} returns its input unchanged. */
  mode: AuthorityFilterMode = "detect";

  private readonly maxFrameSize: number;
  private readonly maxBlockBytes: number;
  private readonly decoder: HpackDecoder;

  private prefaceLeft = PREFACE_LENGTH;
  private readonly head = new Uint8Array(FRAME_HEADER_LENGTH);
  private headFilled = 0;
  /** Payload octets of a non-header frame still to hand through. */
  private passLeft = 0;
  /** Payload of the HEADERS / CONTINUATION frame being collected. */
  private frame: Uint8Array | undefined;
  private frameFilled = 0;
  private frameType = 0;
  private frameFlags = 0;
  private frameStream = 0;

  /** The header block in progress (between HEADERS and END_HEADERS). */
  private inBlock = false;
  private blockStream = 0;
  private blockEndStream = false;
  private blockPriority: Uint8Array | undefined;
  private fragments: Uint8Array[] = [];
  private blockWireBytes = 0;

  /** Detect mode: raw octets consumed but not yet handed on (the first block's frames). */
  private held: Uint8Array[] = [];
  private out: Uint8Array[] = [];

  /** Makes a filter for one connection, starting before the client's connection preface. */
  constructor(options: AuthorityFilterOptions = {}) {
    this.maxFrameSize = options.maxFrameSize ?? 16384;
    this.maxBlockBytes = options.maxHeaderBlockBytes ?? 256 * 1024;
    this.decoder = new HpackDecoder(options.headerTableSize ?? 4096, this.maxBlockBytes);
  }

  /**
   * Takes the next client bytes and returns what the server should see now (possibly nothing,
   * possibly `chunk` itself). After it returns, check {@link mode}: "closed" means the connection
   * must be destroyed.
   */
  push(chunk: Uint8Array): Uint8Array | undefined {
    if (this.mode === "passthrough") return chunk;
    if (this.mode === "closed") return undefined;
    this.out = [];
    let pos = 0;
    try {
      while (pos < chunk.length) {
        if (this.mode !== "detect" && this.mode !== "rewrite") {
          if (this.mode === "passthrough") this.out.push(chunk.subarray(pos));
          break;
        }
        if (this.prefaceLeft > 0) {
          const n = Math.min(this.prefaceLeft, chunk.length - pos);
          this.out.push(chunk.subarray(pos, pos + n));
          this.prefaceLeft -= n;
          pos += n;
        } else if (this.passLeft > 0) {
          const n = Math.min(this.passLeft, chunk.length - pos);
          this.out.push(chunk.subarray(pos, pos + n));
          this.passLeft -= n;
          pos += n;
        } else if (this.frame !== undefined) {
          const n = Math.min(this.frame.length - this.frameFilled, chunk.length - pos);
          this.frame.set(chunk.subarray(pos, pos + n), this.frameFilled);
          this.frameFilled += n;
          pos += n;
          if (this.frameFilled === this.frame.length) {
            const payload = this.frame;
            this.frame = undefined;
            this.onHeaderFrame(payload);
          }
        } else {
          const n = Math.min(FRAME_HEADER_LENGTH - this.headFilled, chunk.length - pos);
          this.head.set(chunk.subarray(pos, pos + n), this.headFilled);
          this.headFilled += n;
          pos += n;
          if (this.headFilled === FRAME_HEADER_LENGTH) {
            this.headFilled = 0;
            this.onFrameHead();
          }
        }
      }
    } catch (error) {
      if (!(error instanceof Malformed) && !(error instanceof HpackError)) throw error;
      if (this.mode === "detect") {
        // Not ours to judge: hand everything through as it came and let node:http2 decide.
        this.mode = "passthrough";
        this.out.push(...this.held, chunk.subarray(pos));
        this.held = [];
      } else {
        this.mode = "closed";
        this.out = [];
      }
    }
    const out = this.out;
    this.out = [];
    if (this.mode === "closed") return undefined;
    if (out.length === 0) return undefined;
    if (out.length === 1) return out[0];
    return concat(out);
  }

  private onFrameHead(): void {
    const h = this.head;
    const length = (h[0] << 16) | (h[1] << 8) | h[2];
    const type = h[3];
    const flags = h[4];
    const stream = ((h[5] & 0x7f) << 24 | (h[6] << 16) | (h[7] << 8) | h[8]) >>> 0;
    if (this.mode === "detect") this.held.push(h.slice());
    // Larger than the server accepts: node:http2 ends the connection (FRAME_SIZE_ERROR).
    if (length > this.maxFrameSize) throw new Malformed("frame larger than the server accepts");
    if (this.inBlock && (type !== TYPE_CONTINUATION || stream !== this.blockStream)) {
      throw new Malformed("expected CONTINUATION");
    }
    if (!this.inBlock && type === TYPE_CONTINUATION) throw new Malformed("stray CONTINUATION");
    // A client never sends PUSH_PROMISE; its header block would change the HPACK state.
    if (type === TYPE_PUSH_PROMISE) throw new Malformed("PUSH_PROMISE from a client");
    if (type === TYPE_HEADERS || type === TYPE_CONTINUATION) {
      if (type === TYPE_HEADERS) this.blockWireBytes = 0;
      this.blockWireBytes += FRAME_HEADER_LENGTH + length;
      if (this.blockWireBytes > this.maxBlockBytes) throw new Malformed("header block too large");
      this.frameType = type;
      this.frameFlags = flags;
      this.frameStream = stream;
      const payload = new Uint8Array(length);
      if (this.mode === "detect") this.held.push(payload);
      if (length === 0) this.onHeaderFrame(payload);
      else {
        this.frame = payload;
        this.frameFilled = 0;
      }
      return;
    }
    if (this.mode === "detect") {
      this.out.push(...this.held);
      this.held = [];
    } else this.out.push(h.slice());
    this.passLeft = length;
  }

  private onHeaderFrame(payload: Uint8Array): void {
    const flags = this.frameFlags;
    if (this.frameType === TYPE_HEADERS) {
      if (this.frameStream === 0) throw new Malformed("HEADERS on stream 0");
      let start = 0;
      let end = payload.length;
      let pad = 0;
      if (flags & FLAG_PADDED) {
        if (end < 1) throw new Malformed("PADDED without a pad length");
        pad = payload[0];
        start = 1;
      }
      let priority: Uint8Array | undefined;
      if (flags & FLAG_PRIORITY) {
        if (end - start < 5) throw new Malformed("PRIORITY without its fields");
        priority = payload.slice(start, start + 5);
        start += 5;
      }
      if (pad > end - start) throw new Malformed("padding longer than the payload");
      end -= pad;
      this.inBlock = true;
      this.blockStream = this.frameStream;
      this.blockEndStream = (flags & FLAG_END_STREAM) !== 0;
      this.blockPriority = priority;
      this.fragments = [payload.subarray(start, end)];
    } else {
      this.fragments.push(payload);
    }
    if (flags & FLAG_END_HEADERS) {
      this.inBlock = false;
      const block = this.fragments.length === 1 ? this.fragments[0] : concat(this.fragments);
      this.fragments = [];
      this.onBlock(block);
    }
  }

  private onBlock(block: Uint8Array): void {
    const fields = this.decoder.decode(block);
    if (this.mode === "detect") {
      const authority = fields.find((f) => f.name === ":authority");
      if (authority === undefined || !authority.value.includes("://")) {
        this.mode = "passthrough";
        this.out.push(...this.held);
        this.held = [];
        return;
      }
      this.mode = "rewrite";
      this.held = [];
    }
    for (const field of fields) {
      if (field.name === ":authority") field.value = stripScheme(field.value);
    }
    this.writeBlock(encodeLiteralBlock(fields));
  }

  /** Frames a re-encoded block as HEADERS + CONTINUATION within the server's frame size. */
  private writeBlock(block: Uint8Array): void {
    const priority = this.blockPriority;
    let flags = (this.blockEndStream ? FLAG_END_STREAM : 0) | (priority ? FLAG_PRIORITY : 0);
    let type = TYPE_HEADERS;
    let offset = 0;
    do {
      const prefix = type === TYPE_HEADERS && priority ? priority.length : 0;
      const n = Math.min(this.maxFrameSize - prefix, block.length - offset);
      const last = offset + n === block.length;
      if (last) flags |= FLAG_END_HEADERS;
      const frame = new Uint8Array(FRAME_HEADER_LENGTH + prefix + n);
      const length = prefix + n;
      frame[0] = length >>> 16;
      frame[1] = (length >>> 8) & 0xff;
      frame[2] = length & 0xff;
      frame[3] = type;
      frame[4] = flags;
      frame[5] = (this.blockStream >>> 24) & 0x7f;
      frame[6] = (this.blockStream >>> 16) & 0xff;
      frame[7] = (this.blockStream >>> 8) & 0xff;
      frame[8] = this.blockStream & 0xff;
      if (prefix > 0 && priority) frame.set(priority, FRAME_HEADER_LENGTH);
      frame.set(block.subarray(offset, offset + n), FRAME_HEADER_LENGTH + prefix);
      this.out.push(frame);
      offset += n;
      type = TYPE_CONTINUATION;
      flags = 0;
    } while (offset < block.length);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Puts an {@link AuthorityFilter} between an h2c socket and `node:http2`, which (measured in Deno
 * 2.9) consumes the socket through its 'data' events: the socket's `emit` is wrapped for 'data'
 * until the filter has seen the first header block. A normal client then gets the original `emit`
 * back (nothing stays in the path); a client with a scheme in `:authority` keeps the filter for
 * the connection's life; a malformed stream in rewrite mode destroys the socket.
 *
 * Call it before the socket is handed to the HTTP/2 server and before its first bytes flow.
 */
export function filterAuthority(socket: net.Socket, options?: AuthorityFilterOptions): void {
  const filter = new AuthorityFilter(options);
  const hadOwn = Object.hasOwn(socket, "emit");
  const original = socket.emit;
  const restore = () => {
    if (socket.emit !== wrapped) return;
    if (hadOwn) socket.emit = original;
    else delete (socket as { emit?: unknown }).emit;
  };
  const wrapped = function (this: net.Socket, event: string | symbol, ...args: unknown[]): boolean {
    const chunk = args[0];
    if (event !== "data" || !(chunk instanceof Uint8Array)) {
      return Reflect.apply(original, this, [event, ...args]) as boolean;
    }
    let out: Uint8Array | undefined;
    try {
      out = filter.push(chunk);
    } catch {
      filter.mode = "closed";
    }
    if (filter.mode === "passthrough") restore();
    else if (filter.mode === "closed") {
      restore();
      socket.destroy();
      return false;
    }
    if (out === undefined || out.length === 0) return false;
    return Reflect.apply(original, this, ["data", out]) as boolean;
  } as net.Socket["emit"];
  socket.emit = wrapped;
}
