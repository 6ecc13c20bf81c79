/**
 * HPACK (RFC 7541) for detcd's HTTP/2 server: a full decoder (static and dynamic tables, size
 * updates, Huffman) for what clients send, and a literal-only encoder for what we send. Our
 * encoder never inserts into the peer's dynamic table, so our side of the compression state is
 * always empty and nothing needs to track the client's SETTINGS_HEADER_TABLE_SIZE.
 *
 * Verified against RFC 7541's examples in hpack_rfc_test.ts.
 */

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
  #entries: [string, string][] = [];
  #size = 0;
  #capacity: number;

  /**
   * @param maxTableSize the largest dynamic table the peer may use (the decoding side's
   *   SETTINGS_HEADER_TABLE_SIZE, 4096 by default); size updates above it are errors.
   * @param maxHeaderListBytes bound on one decoded block (RFC 7540 header list size: name + value
   *   + 32 per field); a block decoding to more is an error.
   */
  readonly #maxTableSize: number;
  readonly #maxHeaderListBytes: number;

  constructor(maxTableSize = 4096, maxHeaderListBytes = 256 * 1024) {
    this.#maxTableSize = maxTableSize;
    this.#maxHeaderListBytes = maxHeaderListBytes;
    this.#capacity = maxTableSize;
  }

  /** The dynamic table, newest first, as [name, value] pairs (for tests and diagnostics). */
  table(): [string, string][] {
    return this.#entries.slice().reverse();
  }

  /** The dynamic table's current size in RFC 7541 octets. */
  tableSize(): number {
    return this.#size;
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
        const [name, value] = this.#lookup(reader.integer(7));
        field = { name, value, sensitive: false };
      } else if (first & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        field = this.#literal(reader, 6, false);
        this.#add(field.name, field.value);
      } else if (first & 0x20) {
        // Dynamic table size update (§6.3): only at the start of a block.
        if (fields.length > 0) throw new HpackError("table size update after a header field");
        const size = reader.integer(5);
        if (size > this.#maxTableSize) throw new HpackError("table size update above the limit");
        this.#capacity = size;
        this.#evict(0);
        continue;
      } else {
        // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
        field = this.#literal(reader, 4, (first & 0x10) !== 0);
      }
      listBytes += field.name.length + field.value.length + ENTRY_OVERHEAD;
      if (listBytes > this.#maxHeaderListBytes) throw new HpackError("header list too large");
      fields.push(field);
    }
    return fields;
  }

  #literal(reader: Reader, prefixBits: number, sensitive: boolean): HeaderField {
    const index = reader.integer(prefixBits);
    const name = index === 0 ? reader.string() : this.#lookup(index)[0];
    return { name, value: reader.string(), sensitive };
  }

  #lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const dynamic = index - STATIC_TABLE.length - 1;
    if (dynamic >= this.#entries.length) throw new HpackError(`index ${index} out of range`);
    return this.#entries[this.#entries.length - 1 - dynamic];
  }

  #add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.#evict(size);
    // An entry larger than the table empties it and is not added (§4.4).
    if (size > this.#capacity) return;
    this.#entries.push([name, value]);
    this.#size += size;
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  #evict(room: number): void {
    let drop = 0;
    while (this.#size + room > this.#capacity && drop < this.#entries.length) {
      const [name, value] = this.#entries[drop++];
      this.#size -= name.length + value.length + ENTRY_OVERHEAD;
    }
    if (drop > 0) this.#entries.splice(0, drop);
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

/** The static table index of an exact (name, value) pair, for fully indexed encodings. */
const STATIC_PAIR_INDEX: ReadonlyMap<string, number> = (() => {
  const map = new Map<string, number>();
  STATIC_TABLE.forEach(([name, value], i) => {
    const key = `${name}\0${value}`;
    if (value !== "" && !map.has(key)) map.set(key, i + 1);
  });
  return map;
})();

/**
 * Encodes response headers or trailers: a static-table index where the exact pair is there
 * (`:status: 200`), otherwise a literal without indexing (static name index when available), no
 * Huffman. Names must be lower case; values are sent as UTF-8. The result never touches the
 * decoder's dynamic table, so blocks can be precomputed and reused on any connection.
 */
export function encodeHeaders(fields: Readonly<Record<string, string>>): Uint8Array {
  const out: number[] = [];
  const utf8 = new TextEncoder();
  for (const [name, value] of Object.entries(fields)) {
    const pair = STATIC_PAIR_INDEX.get(`${name}\0${value}`);
    if (pair !== undefined) {
      writeInteger(out, 0x80, 7, pair);
      continue;
    }
    const index = STATIC_NAME_INDEX.get(name);
    if (index !== undefined) writeInteger(out, 0x00, 4, index);
    else {
      out.push(0x00);
      writeString(out, name);
    }
    const bytes = utf8.encode(value);
    writeInteger(out, 0, 7, bytes.length);
    for (const b of bytes) out.push(b);
  }
  return Uint8Array.from(out);
}
