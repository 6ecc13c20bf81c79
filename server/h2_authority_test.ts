import * as net from "node:net";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  AuthorityFilter,
  encodeLiteralBlock,
  filterAuthority,
  type HeaderField,
  HpackDecoder,
  HpackError,
  huffmanCodes,
  huffmanDecode,
  huffmanLengths,
  stripScheme,
} from "./h2_authority.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

const PREFACE = ascii("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out[0] = payload.length >>> 16;
  out[1] = (payload.length >>> 8) & 0xff;
  out[2] = payload.length & 0xff;
  out[3] = type;
  out[4] = flags;
  new DataView(out.buffer).setUint32(5, stream);
  out.set(payload, 9);
  return out;
}

const HEADERS = 1;
const DATA = 0;
const SETTINGS = 4;
const WINDOW_UPDATE = 8;
const CONTINUATION = 9;
const END_STREAM = 1;
const END_HEADERS = 4;
const PADDED = 8;
const PRIORITY = 0x20;

interface ParsedFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Uint8Array;
}

/** Splits server-bound bytes (after the preface) into frames. */
function parseFrames(bytes: Uint8Array): ParsedFrame[] {
  assertEquals(bytes.subarray(0, 24), PREFACE);
  const frames: ParsedFrame[] = [];
  let p = 24;
  while (p < bytes.length) {
    assert(p + 9 <= bytes.length, "truncated frame header");
    const length = (bytes[p] << 16) | (bytes[p + 1] << 8) | bytes[p + 2];
    assert(p + 9 + length <= bytes.length, "truncated frame");
    frames.push({
      type: bytes[p + 3],
      flags: bytes[p + 4],
      stream: new DataView(bytes.buffer, bytes.byteOffset).getUint32(p + 5) & 0x7fffffff,
      payload: bytes.slice(p + 9, p + 9 + length),
    });
    p += 9 + length;
  }
  return frames;
}

/** Header blocks of frames (HEADERS + CONTINUATION joined); checks the server's HPACK view. */
function headerBlocks(frames: ParsedFrame[]): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  let parts: Uint8Array[] | undefined;
  for (const f of frames) {
    if (f.type === HEADERS) {
      let start = 0;
      let end = f.payload.length;
      if (f.flags & PADDED) {
        start = 1;
        end -= f.payload[0];
      }
      if (f.flags & PRIORITY) start += 5;
      parts = [f.payload.subarray(start, end)];
    } else if (f.type === CONTINUATION) {
      assert(parts !== undefined, "CONTINUATION outside a block");
      parts.push(f.payload);
    } else {
      assert(parts === undefined, "a frame inside a header block");
      continue;
    }
    if (f.flags & END_HEADERS) {
      blocks.push(concat(parts));
      parts = undefined;
    }
  }
  return blocks;
}

function pairs(fields: HeaderField[]): [string, string][] {
  return fields.map((f) => [f.name, f.value]);
}

/** Feeds the filter in pieces of the given size; returns everything it handed on. */
function feed(filter: AuthorityFilter, bytes: Uint8Array, piece = bytes.length): Uint8Array {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += piece) {
    const o = filter.push(bytes.subarray(i, Math.min(bytes.length, i + piece)));
    if (o !== undefined) out.push(o.slice());
  }
  return concat(out);
}

// ---------------------------------------------------------------------------------------------
// Huffman code (RFC 7541 Appendix B)

Deno.test("the derived Huffman code matches Appendix B at its landmarks and is complete", () => {
  const codes = huffmanCodes();
  assertEquals(codes.length, 257);
  assertEquals(codes[0], 0x1ff8); // sym 0, 13 bits
  assertEquals(codes["0".charCodeAt(0)], 0x0); // 5 bits
  assertEquals(codes["a".charCodeAt(0)], 0x3);
  assertEquals(codes[" ".charCodeAt(0)], 0x14); // 6 bits
  assertEquals(codes["~".charCodeAt(0)], 0x1ffd);
  assertEquals(codes[255], 0x3ffffee);
  assertEquals(codes[256], 0x3fffffff); // EOS, 30 bits
  // Kraft equality: the lengths describe a complete prefix code (every bit string decodes).
  const lengths = huffmanLengths();
  assertEquals(lengths.reduce((sum, length) => sum + 2 ** (30 - length), 0), 2 ** 30);
});

Deno.test("Huffman decoding round-trips every octet", () => {
  const codes = huffmanCodes();
  const lengths = huffmanLengths();
  const bits: number[] = [];
  for (let symbol = 255; symbol >= 0; symbol--) {
    for (let bit = lengths[symbol] - 1; bit >= 0; bit--) {
      bits.push(Math.floor(codes[symbol] / 2 ** bit) & 1);
    }
  }
  while (bits.length % 8 !== 0) bits.push(1);
  const bytes = new Uint8Array(bits.length / 8);
  bits.forEach((b, i) => (bytes[i >> 3] |= b << (7 - (i & 7))));
  let expected = "";
  for (let symbol = 255; symbol >= 0; symbol--) expected += String.fromCharCode(symbol);
  assertEquals(huffmanDecode(bytes), expected);
});

Deno.test("Huffman decoding: C.4 strings, padding rules, EOS", () => {
  assertEquals(huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")), "www.example.com");
  assertEquals(huffmanDecode(hex("a8eb 1064 9cbf")), "no-cache");
  assertEquals(huffmanDecode(hex("25a8 49e9 5ba9 7d7f")), "custom-key");
  assertEquals(huffmanDecode(new Uint8Array()), "");
  // Padding that is not all ones.
  assertThrows(() => huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4fe")), HpackError, "padding");
  // 8 bits of padding (a whole 0xff byte after the string).
  assertThrows(() => huffmanDecode(hex("a8eb 1064 9cbf ff")), HpackError, "padding");
  // EOS itself (30 ones) inside the string.
  assertThrows(() => huffmanDecode(hex("ffff ffff")), HpackError, "EOS");
});

// ---------------------------------------------------------------------------------------------
// HPACK decoder (RFC 7541 Appendix C)

Deno.test("C.2: the four representations", () => {
  const d = new HpackDecoder();
  assertEquals(
    pairs(d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))),
    [
      ["custom-key", "custom-header"],
    ],
  );
  assertEquals(d.table(), [["custom-key", "custom-header"]]);
  assertEquals(d.tableSize(), 55);
  const e = new HpackDecoder();
  assertEquals(pairs(e.decode(hex("040c 2f73 616d 706c 652f 7061 7468"))), [
    [":path", "/sample/path"],
  ]);
  const never = e.decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
  assertEquals(never, [{ name: "password", value: "secret", sensitive: true }]);
  assertEquals(pairs(e.decode(hex("82"))), [[":method", "GET"]]);
  assertEquals(e.table(), []);
});

const REQUESTS: [string, string][][] = [
  [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
  [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ],
  [
    [":method", "GET"],
    [":scheme", "https"],
    [":path", "/index.html"],
    [":authority", "www.example.com"],
    ["custom-key", "custom-value"],
  ],
];
const REQUEST_TABLES: [[string, string][], number][] = [
  [[[":authority", "www.example.com"]], 57],
  [[["cache-control", "no-cache"], [":authority", "www.example.com"]], 110],
  [
    [["custom-key", "custom-value"], ["cache-control", "no-cache"], [
      ":authority",
      "www.example.com",
    ]],
    164,
  ],
];

Deno.test("C.3: requests without Huffman coding, one decoder", () => {
  const blocks = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
  ];
  const d = new HpackDecoder();
  blocks.forEach((block, i) => {
    assertEquals(pairs(d.decode(hex(block))), REQUESTS[i], `block ${i}`);
    assertEquals(d.table(), REQUEST_TABLES[i][0]);
    assertEquals(d.tableSize(), REQUEST_TABLES[i][1]);
  });
});

Deno.test("C.4: requests with Huffman coding, one decoder", () => {
  const blocks = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
  ];
  const d = new HpackDecoder();
  blocks.forEach((block, i) => {
    assertEquals(pairs(d.decode(hex(block))), REQUESTS[i], `block ${i}`);
    assertEquals(d.table(), REQUEST_TABLES[i][0]);
    assertEquals(d.tableSize(), REQUEST_TABLES[i][1]);
  });
});

const DATE_1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const URL_ = "https://www.example.com";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESPONSES: [string, string][][] = [
  [[":status", "302"], ["cache-control", "private"], ["date", DATE_1], ["location", URL_]],
  [[":status", "307"], ["cache-control", "private"], ["date", DATE_1], ["location", URL_]],
  [
    [":status", "200"],
    ["cache-control", "private"],
    ["date", DATE_2],
    ["location", URL_],
    ["content-encoding", "gzip"],
    ["set-cookie", COOKIE],
  ],
];
const RESPONSE_TABLES: [[string, string][], number][] = [
  [[["location", URL_], ["date", DATE_1], ["cache-control", "private"], [":status", "302"]], 222],
  [[[":status", "307"], ["location", URL_], ["date", DATE_1], ["cache-control", "private"]], 222],
  [[["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", DATE_2]], 215],
];

Deno.test("C.5: responses without Huffman coding, 256-octet table with evictions", () => {
  const blocks = [
    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a" +
    "3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "4803 3330 37c1 c0bf",
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04" +
    "677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49" +
    "553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
  ];
  const d = new HpackDecoder(256);
  blocks.forEach((block, i) => {
    assertEquals(pairs(d.decode(hex(block))), RESPONSES[i], `block ${i}`);
    assertEquals(d.table(), RESPONSE_TABLES[i][0]);
    assertEquals(d.tableSize(), RESPONSE_TABLES[i][1]);
  });
});

Deno.test("C.6: responses with Huffman coding, 256-octet table with evictions", () => {
  const blocks = [
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e" +
    "919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    "4883 640e ffc1 c0bf",
    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7" +
    "821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed" +
    "4ee5 b106 3d50 07",
  ];
  const d = new HpackDecoder(256);
  blocks.forEach((block, i) => {
    assertEquals(pairs(d.decode(hex(block))), RESPONSES[i], `block ${i}`);
    assertEquals(d.table(), RESPONSE_TABLES[i][0]);
    assertEquals(d.tableSize(), RESPONSE_TABLES[i][1]);
  });
});

Deno.test("HPACK: table size updates, oversized entries and decoding errors", () => {
  const d = new HpackDecoder();
  d.decode(hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));
  // A size update to 0 at the start of a block empties the table.
  assertEquals(pairs(d.decode(hex("20 82"))), [[":method", "GET"]]);
  assertEquals(d.table(), []);
  assertEquals(d.tableSize(), 0);
  // With a 0-octet table an incrementally indexed literal is decoded but not stored.
  assertEquals(pairs(d.decode(hex("4003 6162 6301 78"))), [["abc", "x"]]);
  assertEquals(d.table(), []);
  // Back to 4096 (0x3f e1 1f = 31 + 0x61 + 0x1f * 128), then a size update after a field.
  d.decode(hex("3fe1 1f"));
  assertThrows(() => d.decode(hex("82 20")), HpackError, "after a header field");
  for (
    const [block, why] of [
      ["80", "index 0"],
      ["be", "out of range"],
      ["3fe2 1f", "above the limit"], // 4097
      ["400a 6375", "truncated"],
      ["41", "truncated"],
      ["ff", "truncated"],
      ["ffff ffff ffff 7f", "too large"],
    ]
  ) {
    assertThrows(() => new HpackDecoder().decode(hex(block)), HpackError, why);
  }
  // The decoded header list is bounded: 100 references to one 100-octet entry.
  const big = new HpackDecoder(4096, 4000);
  const block = [0x40, 1, 0x61, 100, ...new Array<number>(100).fill(0x62)];
  for (let i = 0; i < 100; i++) block.push(0xbe);
  assertThrows(() => big.decode(Uint8Array.from(block)), HpackError, "too large");
});

Deno.test("literal-only encoding round-trips and never touches the dynamic table", () => {
  const fields: HeaderField[] = [
    { name: ":method", value: "POST", sensitive: false },
    { name: ":path", value: "/etcdserverpb.KV/Range", sensitive: false },
    { name: "x-binary", value: "\u0000\u00ff\u0080", sensitive: false },
    { name: "authorization", value: "secret-token", sensitive: true },
    { name: "a-long-one", value: "v".repeat(300), sensitive: false },
  ];
  const block = encodeLiteralBlock(fields);
  const d = new HpackDecoder(0);
  assertEquals(d.decode(block), fields);
  assertEquals(d.table(), []);
  // Static names are referenced by index: ":method" is 2 → 0x02, "authorization" 23 → 0x1f 0x08.
  assertEquals(block[0], 0x02);
});

Deno.test("stripScheme keeps host:port", () => {
  assertEquals(stripScheme("http://127.0.0.1:2379"), "127.0.0.1:2379");
  assertEquals(stripScheme("https://[::1]:2379/"), "[::1]:2379");
  assertEquals(stripScheme("unix://sock?x"), "sock");
  assertEquals(stripScheme("127.0.0.1:2379"), "127.0.0.1:2379");
});

// ---------------------------------------------------------------------------------------------
// The frame filter

/**
 * What etcdctl 3.4.23 sent for `--endpoints=http://127.0.0.1:23998 endpoint status`, captured on
 * the wire: preface, SETTINGS, SETTINGS ack, HEADERS (Huffman, incremental indexing), DATA.
 */
const ETCDCTL_STATUS = hex(
  "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000000000000000040100000000000077" +
    "0104000000018386459760a924882d9dcb6571afa066a925a87510ac6e48d36a3f41909d29aee30c044eae05c0" +
    "b86e0997df7b5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d833505b11f4089" +
    "9acac8b24d494f6a7f860beebcd38e5b408d25062d495875996ee5b1063d5f03332e34000005000100000001" +
    "0000000000",
);

const STATUS_FIELDS: [string, string][] = [
  [":method", "POST"],
  [":scheme", "http"],
  [":path", "/etcdserverpb.Maintenance/Status"],
  [":authority", "127.0.0.1:23998"],
  ["content-type", "application/grpc"],
  ["user-agent", "grpc-go/1.33.3"],
  ["te", "trailers"],
  ["grpc-timeout", "1978466u"],
  ["client-api-version", "3.4"],
];

/**
 * A second request on the same connection as grpc-go would send it after {@link ETCDCTL_STATUS}:
 * dynamic table references (62 client-api-version … 68 :path), a new grpc-timeout literal with an
 * indexed name (63) that is added to the table, then client-api-version at its shifted index (63).
 */
const SECOND_BLOCK = concat([
  hex("8386 c4c3 c2c1 c0"),
  hex("7f00"),
  Uint8Array.of(4),
  ascii("999u"),
  hex("bf"),
]);
const SECOND_FIELDS: [string, string][] = [
  ...STATUS_FIELDS.slice(0, 7),
  ["grpc-timeout", "999u"],
  ["client-api-version", "3.4"],
];

function secondRequest(): Uint8Array {
  return concat([
    frame(HEADERS, END_HEADERS, 3, SECOND_BLOCK),
    frame(DATA, END_STREAM, 3, new Uint8Array(5)),
    frame(WINDOW_UPDATE, 0, 0, hex("0000 1000")),
  ]);
}

/** Checks a rewritten stream: blocks decode on an empty table, which stays empty. */
function assertRewritten(out: Uint8Array, expected: [string, string][][]): ParsedFrame[] {
  const frames = parseFrames(out);
  const server = new HpackDecoder();
  const blocks = headerBlocks(frames);
  assertEquals(blocks.map((b) => pairs(server.decode(b))), expected);
  assertEquals(server.table(), []);
  return frames;
}

Deno.test("filter: etcdctl's scheme authority is rewritten, on later requests too", () => {
  const filter = new AuthorityFilter();
  const input = concat([ETCDCTL_STATUS, secondRequest()]);
  const out = feed(filter, input);
  assertEquals(filter.mode, "rewrite");
  const frames = assertRewritten(out, [STATUS_FIELDS, SECOND_FIELDS]);
  // Every other frame is handed through byte for byte, in order.
  const inFrames = parseFrames(input).filter((f) => f.type !== HEADERS);
  assertEquals(frames.filter((f) => f.type !== HEADERS), inFrames);
  assertEquals(frames.map((f) => [f.type, f.flags, f.stream]), [
    [SETTINGS, 0, 0],
    [SETTINGS, 1, 0],
    [HEADERS, END_HEADERS, 1],
    [DATA, END_STREAM, 1],
    [HEADERS, END_HEADERS, 3],
    [DATA, END_STREAM, 3],
    [WINDOW_UPDATE, 0, 0],
  ]);
});

Deno.test("filter: frames split anywhere, down to single bytes, give the same output", () => {
  const input = concat([ETCDCTL_STATUS, secondRequest()]);
  const whole = feed(new AuthorityFilter(), input);
  for (const piece of [1, 2, 3, 7, 9, 10, 50]) {
    const filter = new AuthorityFilter();
    assertEquals(feed(filter, input, piece), whole, `pieces of ${piece}`);
    assertEquals(filter.mode, "rewrite");
  }
});

/** A normal client's connection: the same request with `:authority: 127.0.0.1:23998`. */
function normalConnection(): Uint8Array {
  const block = concat([
    hex("8386 44"),
    Uint8Array.of(32),
    ascii("/etcdserverpb.Maintenance/Status"),
  ]);
  const authority = concat([hex("41"), Uint8Array.of(15), ascii("127.0.0.1:23998")]);
  return concat([
    PREFACE,
    frame(SETTINGS, 0, 0, new Uint8Array()),
    frame(HEADERS, END_HEADERS, 1, concat([block, authority])),
    frame(DATA, END_STREAM, 1, new Uint8Array(5)),
  ]);
}

Deno.test("filter: a normal connection passes untouched and the filter steps aside", () => {
  const input = normalConnection();
  for (const piece of [input.length, 1, 5, 33]) {
    const filter = new AuthorityFilter();
    assertEquals(feed(filter, input, piece), input, `pieces of ${piece}`);
    assertEquals(filter.mode, "passthrough");
    // From now on the very same chunk object comes back: nothing is parsed or copied.
    const later = hex("0000 0001 0000 0000 0100");
    assert(filter.push(later) === later);
  }
  // Until the end of the first header block the filter holds it back.
  const filter = new AuthorityFilter();
  const headersEnd = input.length - 14; // a 5-byte DATA frame follows the HEADERS frame
  assertEquals(filter.push(input.subarray(0, headersEnd - 1)), input.subarray(0, 33));
  assertEquals(filter.mode, "detect");
  assertEquals(filter.push(input.subarray(headersEnd - 1)), input.subarray(33));
  assertEquals(filter.mode, "passthrough");
});

Deno.test("filter: CONTINUATION, PADDED and PRIORITY in, re-split within the frame size out", () => {
  // The C.3 block 1 with the authority "http://www.example.com:80", padded and with priority,
  // split over HEADERS + 2 CONTINUATION frames; then a trailers block (END_STREAM) on stream 1.
  const authority = "http://www.example.com:80";
  const block = concat([hex("8286 8441"), Uint8Array.of(authority.length), ascii(authority)]);
  const priority = hex("8000 0003 0f");
  const first = concat([Uint8Array.of(3), priority, block.subarray(0, 5), new Uint8Array(3)]);
  const input = concat([
    PREFACE,
    frame(SETTINGS, 0, 0, new Uint8Array()),
    frame(HEADERS, PADDED | PRIORITY, 1, first),
    frame(CONTINUATION, 0, 1, block.subarray(5, 12)),
    frame(CONTINUATION, END_HEADERS, 1, block.subarray(12)),
    frame(DATA, 0, 1, ascii("hello")),
    // Trailers: :authority by dynamic index 62, then "x: a" as a literal without indexing.
    frame(HEADERS, END_HEADERS | END_STREAM, 1, hex("be 0001 7801 61")),
  ]);
  const expected: [string, string][][] = [
    [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com:80"]],
    [[":authority", "www.example.com:80"], ["x", "a"]],
  ];
  for (const maxFrameSize of [16384, 24]) {
    const filter = new AuthorityFilter({ maxFrameSize });
    const frames = assertRewritten(feed(filter, input, 4), expected);
    assertEquals(filter.mode, "rewrite");
    const headers = frames.filter((f) => f.type === HEADERS || f.type === CONTINUATION);
    for (const f of headers) assert(f.payload.length <= maxFrameSize, "frame size");
    // Priority kept on the first frame, padding gone, END_STREAM kept on the trailers.
    assertEquals(headers[0].flags & (PRIORITY | PADDED), PRIORITY);
    assertEquals(headers[0].payload.subarray(0, 5), priority);
    const trailers = frames.filter((f) => f.type === HEADERS)[1];
    assertEquals(trailers.flags & END_STREAM, END_STREAM);
    if (maxFrameSize === 24) assert(headers.length > 3, "split into CONTINUATION frames");
    assertEquals(frames.find((f) => f.type === DATA)?.payload, ascii("hello"));
  }
});

Deno.test("filter: a block larger than one frame is re-split at 16384 octets", () => {
  const big = "b".repeat(20000);
  const authority = "http://127.0.0.1:2379";
  const block = concat([
    hex("8386 8441"),
    Uint8Array.of(authority.length),
    ascii(authority),
    hex("4005"),
    ascii("x-big"),
  ]);
  // The value length 20000 as a 7-bit-prefix integer: 127, then 19873 in 7-bit groups.
  const length = [0x7f];
  for (let rest = 20000 - 127;; rest = Math.floor(rest / 128)) {
    if (rest < 128) {
      length.push(rest);
      break;
    }
    length.push((rest % 128) | 0x80);
  }
  const fullBlock = concat([block, Uint8Array.from(length), ascii(big)]);
  const input = concat([
    PREFACE,
    frame(HEADERS, 0, 1, fullBlock.subarray(0, 16384)),
    frame(CONTINUATION, END_HEADERS, 1, fullBlock.subarray(16384)),
  ]);
  const filter = new AuthorityFilter();
  const frames = assertRewritten(feed(filter, input, 1000), [[
    [":method", "POST"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "127.0.0.1:2379"],
    ["x-big", big],
  ]]);
  assertEquals(frames.map((f) => [f.type, f.payload.length <= 16384]), [
    [HEADERS, true],
    [CONTINUATION, true],
  ]);
  assertEquals(frames[0].payload.length, 16384);
});

Deno.test("filter: malformed input before the decision is handed through unchanged", () => {
  const settings = frame(SETTINGS, 0, 0, new Uint8Array());
  const cases: [string, Uint8Array][] = [
    ["stray CONTINUATION", frame(CONTINUATION, END_HEADERS, 1, hex("82"))],
    [
      "DATA inside a header block",
      concat([frame(HEADERS, 0, 1, hex("8286")), frame(DATA, 0, 1, hex("00"))]),
    ],
    [
      "CONTINUATION of another stream",
      concat([frame(HEADERS, 0, 1, hex("8286")), frame(CONTINUATION, END_HEADERS, 3, hex("84"))]),
    ],
    ["undecodable block", frame(HEADERS, END_HEADERS, 1, hex("80"))],
    ["bad Huffman", frame(HEADERS, END_HEADERS, 1, hex("4183 ffff ff"))],
    ["padding too long", frame(HEADERS, END_HEADERS | PADDED, 1, hex("0982"))],
    ["HEADERS on stream 0", frame(HEADERS, END_HEADERS, 0, hex("82"))],
    ["PUSH_PROMISE", frame(5, END_HEADERS, 1, hex("0000 0002 82"))],
    ["frame too large", frame(HEADERS, 0, 1, new Uint8Array(16385))],
    [
      "block too large",
      concat([
        frame(HEADERS, 0, 1, new Uint8Array(16000)),
        ...new Array<Uint8Array>(16).fill(frame(CONTINUATION, 0, 1, new Uint8Array(16000))),
      ]),
    ],
    [
      "endless empty CONTINUATION frames",
      concat([
        frame(HEADERS, 0, 1, hex("82")),
        ...new Array<Uint8Array>(30000).fill(frame(CONTINUATION, 0, 1, new Uint8Array())),
      ]),
    ],
    ["not HTTP/2 at all", ascii("GET / HTTP/1.1\r\n\r\n")],
  ];
  for (const [name, bad] of cases) {
    const input = concat([PREFACE, settings, bad, frame(DATA, 0, 1, ascii("tail"))]);
    for (const piece of input.length > 10000 ? [input.length, 1000] : [input.length, 1, 6]) {
      const filter = new AuthorityFilter();
      assertEquals(feed(filter, input, piece), input, `${name}, pieces of ${piece}`);
      assertEquals(filter.mode, "passthrough", name);
    }
  }
});

Deno.test("filter: malformed input in rewrite mode closes the connection", () => {
  const cases: [string, Uint8Array][] = [
    ["undecodable block", frame(HEADERS, END_HEADERS, 3, hex("c5"))],
    ["stray CONTINUATION", frame(CONTINUATION, END_HEADERS, 3, hex("82"))],
    ["PUSH_PROMISE", frame(5, END_HEADERS, 3, hex("0000 0002 82"))],
  ];
  for (const [name, bad] of cases) {
    const filter = new AuthorityFilter();
    assert(filter.push(ETCDCTL_STATUS) !== undefined);
    assertEquals(filter.mode, "rewrite");
    assertEquals(filter.push(bad), undefined, name);
    assertEquals(filter.mode, "closed", name);
    assertEquals(filter.push(hex("0000 0000 0000 0000 00")), undefined);
  }
});

Deno.test("filterAuthority on a socket: wraps 'data' until decided, then restores emit", () => {
  const received: Uint8Array[] = [];
  const normal = new net.Socket();
  normal.on("data", (chunk: Uint8Array) => received.push(chunk));
  filterAuthority(normal);
  assert(Object.hasOwn(normal, "emit"));
  const input = normalConnection();
  normal.emit("data", input.subarray(0, 30));
  normal.emit("data", input.subarray(30));
  assertEquals(concat(received), input);
  assert(!Object.hasOwn(normal, "emit"), "the filter removed itself");

  const rewritten: Uint8Array[] = [];
  const scheme = new net.Socket();
  scheme.on("data", (chunk: Uint8Array) => rewritten.push(chunk));
  filterAuthority(scheme);
  scheme.emit("data", ETCDCTL_STATUS);
  assertRewritten(concat(rewritten), [STATUS_FIELDS]);
  assert(Object.hasOwn(scheme, "emit"), "still filtering");
  let destroyed = false;
  scheme.destroy = function (this: net.Socket) {
    destroyed = true;
    return this;
  } as net.Socket["destroy"];
  scheme.emit("data", frame(HEADERS, END_HEADERS, 3, hex("80")));
  assert(destroyed, "a malformed block in rewrite mode destroys the socket");
  assert(!Object.hasOwn(scheme, "emit"));
});

Deno.test("filter: mutated connections never throw; undecided ones pass through unchanged", () => {
  let seed = 12345;
  const random = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const base = concat([ETCDCTL_STATUS, secondRequest()]);
  for (let round = 0; round < 3000; round++) {
    const input = base.slice();
    for (let k = 1 + random(4); k > 0; k--) input[24 + random(input.length - 24)] = random(256);
    const filter = new AuthorityFilter();
    const out: Uint8Array[] = [];
    for (let i = 0; i < input.length;) {
      const n = 1 + random(40);
      const o = filter.push(input.subarray(i, i + n));
      if (o !== undefined) out.push(o.slice());
      i += n;
    }
    if (filter.mode === "passthrough") assertEquals(concat(out), input, `round ${round}`);
  }
});
