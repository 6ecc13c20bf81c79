/**
 * Accepts gRPC clients that put a URL scheme into HTTP/2's `:authority` pseudo-header.
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

// ---------------------------------------------------------------------------------------------
// HPACK (RFC 7541)

/** One header field. Name and value are binary strings: one character per octet (0..255). */
export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "never indexed" (RFC 7541 §6.2.3); re-encoded the same way. */
  sensitive: boolean;
}

/** A header block that cannot be decoded (RFC 7541 §2.3.3, §4.2, §5, §6: COMPRESSION_ERROR). */
export class HpackError extends Error {
  /** Makes an error with the given explanation. */
  constructor(message: string) {
    super(message);
    this.name = "HpackError";
  }
}

/** The static table, RFC 7541 Appendix A; index 1 is element 0. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/** The first static index of each name, for encoding a literal with an indexed name. */
const STATIC_NAME_INDEX: ReadonlyMap<string, number> = (() => {
  const map = new Map<string, number>();
  STATIC_TABLE.forEach(([name], i) => {
    if (!map.has(name)) map.set(name, i + 1);
  });
  return map;
})();

/**
 * Code lengths of the Huffman code of RFC 7541 Appendix B, symbols 0..255 then EOS (256). The code
 * is canonical (within one length, codes ascend with the symbol; shorter codes sort first), so the
 * lengths determine the codes; see {@link huffmanCodes}.
 */
// deno-fmt-ignore
const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;

/** The code lengths of RFC 7541 Appendix B (index = symbol, 256 = EOS). Exported for tests. */
export function huffmanLengths(): readonly number[] {
  return HUFFMAN_LENGTHS;
}

/**
 * The Huffman codes of RFC 7541 Appendix B (index = symbol, 256 = EOS), derived canonically from
 * {@link HUFFMAN_LENGTHS}. Exported for tests.
 */
export function huffmanCodes(): number[] {
  const codes = new Array<number>(HUFFMAN_LENGTHS.length).fill(0);
  let code = 0;
  for (let length = 1; length <= 30; length++) {
    for (let symbol = 0; symbol < HUFFMAN_LENGTHS.length; symbol++) {
      if (HUFFMAN_LENGTHS[symbol] === length) codes[symbol] = code++;
    }
    code *= 2;
  }
  return codes;
}

/**
 * The decoding tree as two child arrays: `tree[2n]` / `tree[2n+1]` are the 0 / 1 children of node
 * n; a positive value is a node, a negative one a leaf holding `-(symbol + 1)`, 0 nothing.
 */
const HUFFMAN_TREE: Int32Array = (() => {
  const codes = huffmanCodes();
  const tree = new Int32Array(2 * 2 * HUFFMAN_LENGTHS.length);
  let nodes = 1;
  for (let symbol = 0; symbol < codes.length; symbol++) {
    const length = HUFFMAN_LENGTHS[symbol];
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + (Math.floor(codes[symbol] / 2 ** bit) & 1);
      if (bit === 0) tree[slot] = -(symbol + 1);
      else {
        if (tree[slot] === 0) tree[slot] = nodes++;
        node = tree[slot];
      }
    }
  }
  return tree;
})();

/** Decodes a Huffman-coded string literal (RFC 7541 §5.2) into a binary string. */
export function huffmanDecode(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil((bytes.length * 8) / 5));
  let length = 0;
  let node = 0;
  let pendingBits = 0;
  let pendingOnes = true;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1;
      const next = HUFFMAN_TREE[2 * node + one];
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === EOS) throw new HpackError("Huffman string contains EOS");
        out[length++] = symbol;
        node = 0;
        pendingBits = 0;
        pendingOnes = true;
      } else if (next === 0) {
        throw new HpackError("invalid Huffman code");
      } else {
        node = next;
        pendingBits++;
        if (one === 0) pendingOnes = false;
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (the most significant bits of EOS).
  if (pendingBits > 7 || !pendingOnes) throw new HpackError("invalid Huffman padding");
  return binaryString(out.subarray(0, length));
}

/** Octets to a binary string (one char per octet; not TextDecoder's "latin1", which is cp1252). */
function binaryString(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(bytes.length, i + 4096)));
  }
  return s;
}

/** RFC 7541 §4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;

/** A reading position in one header block. */
class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  /** An integer with an N-bit prefix (RFC 7541 §5.1); values above 2^28 are refused. */
  integer(prefixBits: number): number {
    if (this.pos >= this.bytes.length) throw new HpackError("truncated integer");
    const max = (1 << prefixBits) - 1;
    let value = this.bytes[this.pos++] & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.bytes.length) throw new HpackError("truncated integer");
      const byte = this.bytes[this.pos++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if ((byte & 0x80) === 0) break;
      if (shift > 21) throw new HpackError("integer too large");
    }
    return value;
  }

  /** A string literal (RFC 7541 §5.2), Huffman-decoded if flagged. */
  string(): string {
    if (this.pos >= this.bytes.length) throw new HpackError("truncated string");
    const huffman = (this.bytes[this.pos] & 0x80) !== 0;
    const length = this.integer(7);
    if (length > this.bytes.length - this.pos) throw new HpackError("truncated string");
    const raw = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return huffman ? huffmanDecode(raw) : binaryString(raw);
  }
}

/**
 * An HPACK decoder (RFC 7541 §3): the static table, a dynamic table with size accounting,
 * evictions and size updates, integer and string literals including Huffman coding. One decoder
 * per connection direction; blocks must be fed in the order they were sent.
 */
export class HpackDecoder {
  /** Dynamic table entries, oldest first (the newest has the lowest dynamic index, 62). */
  private entries: [string, string][] = [];
  private size = 0;
  private capacity: number;

  /**
   * @param maxTableSize the largest dynamic table the peer may use (the decoding side's
   *   SETTINGS_HEADER_TABLE_SIZE, 4096 by default); size updates above it are errors.
   * @param maxHeaderListBytes bound on one decoded block (RFC 7540 header list size: name + value
   *   + 32 per field); a block decoding to more is an error.
   */
  constructor(
    private readonly maxTableSize = 4096,
    private readonly maxHeaderListBytes = 256 * 1024,
  ) {
    this.capacity = maxTableSize;
  }

  /** The dynamic table, newest first, as [name, value] pairs (for tests and diagnostics). */
  table(): [string, string][] {
    return this.entries.slice().reverse();
  }

  /** The dynamic table's current size in RFC 7541 octets. */
  tableSize(): number {
    return this.size;
  }

  /**
   * Decodes one complete header block. After an error the table may be half-updated: the
   * connection it belongs to cannot continue (COMPRESSION_ERROR).
   */
  decode(block: Uint8Array): HeaderField[] {
    const reader = new Reader(block);
    const fields: HeaderField[] = [];
    let listBytes = 0;
    while (reader.pos < block.length) {
      const first = block[reader.pos];
      let field: HeaderField;
      if (first & 0x80) {
        // Indexed header field (§6.1).
        const [name, value] = this.lookup(reader.integer(7));
        field = { name, value, sensitive: false };
      } else if (first & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        field = this.literal(reader, 6, false);
        this.add(field.name, field.value);
      } else if (first & 0x20) {
        // Dynamic table size update (§6.3): only at the start of a block.
        if (fields.length > 0) throw new HpackError("table size update after a header field");
        const size = reader.integer(5);
        if (size > this.maxTableSize) throw new HpackError("table size update above the limit");
        this.capacity = size;
        this.evict(0);
        continue;
      } else {
        // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
        field = this.literal(reader, 4, (first & 0x10) !== 0);
      }
      listBytes += field.name.length + field.value.length + ENTRY_OVERHEAD;
      if (listBytes > this.maxHeaderListBytes) throw new HpackError("header list too large");
      fields.push(field);
    }
    return fields;
  }

  private literal(reader: Reader, prefixBits: number, sensitive: boolean): HeaderField {
    const index = reader.integer(prefixBits);
    const name = index === 0 ? reader.string() : this.lookup(index)[0];
    return { name, value: reader.string(), sensitive };
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const dynamic = index - STATIC_TABLE.length - 1;
    if (dynamic >= this.entries.length) throw new HpackError(`index ${index} out of range`);
    return this.entries[this.entries.length - 1 - dynamic];
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(size);
    // An entry larger than the table empties it and is not added (§4.4).
    if (size > this.capacity) return;
    this.entries.push([name, value]);
    this.size += size;
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    let drop = 0;
    while (this.size + room > this.capacity && drop < this.entries.length) {
      const [name, value] = this.entries[drop++];
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
    if (drop > 0) this.entries.splice(0, drop);
  }
}

/** Appends an integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the prefix's flags. */
function writeInteger(out: number[], first: number, prefixBits: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function writeString(out: number[], s: string): void {
  writeInteger(out, 0, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * Encodes fields with literal representations only: "without indexing", or "never indexed" for
 * sensitive fields; names from the static table where it has them; no Huffman coding. Such a
 * block neither reads nor changes the decoder's dynamic table.
 */
export function encodeLiteralBlock(fields: readonly HeaderField[]): Uint8Array {
  const out: number[] = [];
  for (const field of fields) {
    const flags = field.sensitive ? 0x10 : 0x00;
    const index = STATIC_NAME_INDEX.get(field.name);
    if (index !== undefined) writeInteger(out, flags, 4, index);
    else {
      out.push(flags);
      writeString(out, field.name);
    }
    writeString(out, field.value);
  }
  return Uint8Array.from(out);
}

/**
 * `http://127.0.0.1:2379` → `127.0.0.1:2379`: the part after `://` up to a path, query or
 * fragment. Values without `://` are returned unchanged.
 */
export function stripScheme(authority: string): string {
  const at = authority.indexOf("://");
  if (at < 0) return authority;
  const rest = authority.slice(at + 3);
  const end = rest.search(/[/?#]/);
  return end < 0 ? rest : rest.slice(0, end);
}

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
