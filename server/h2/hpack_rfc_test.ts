/**
 * HPACK (RFC 7541) as server/h2 decodes and encodes it: the Appendix B Huffman code and the
 * Appendix C examples, table size accounting, malformed input, and the literal-only encoder.
 */
import { assertEquals, assertThrows } from "../../core/testing.ts";
import {
  encodeLiteralBlock,
  type HeaderField,
  HpackDecoder,
  HpackError,
  huffmanCodes,
  huffmanDecode,
  huffmanLengths,
  stripScheme,
} from "./hpack.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function pairs(fields: HeaderField[]): [string, string][] {
  return fields.map((f) => [f.name, f.value]);
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
