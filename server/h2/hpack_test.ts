import { assertEquals, assertThrows } from "../../core/testing.ts";
import { encodeHeaders, HpackDecoder, HpackError } from "./hpack.ts";

Deno.test("hpack: encodeHeaders round-trips through the decoder without touching its table", () => {
  const fields = {
    ":status": "200",
    "content-type": "application/grpc",
    "grpc-status": "3",
    "grpc-message": "etcdserver: key is not provided",
    "x-long": "v".repeat(300),
  };
  const block = encodeHeaders(fields);
  // `:status: 200` is static index 8, fully indexed.
  assertEquals(block[0], 0x88);
  const decoder = new HpackDecoder();
  assertEquals(
    decoder.decode(block).map((f) => [f.name, f.value]),
    Object.entries(fields),
  );
  assertEquals(decoder.tableSize(), 0);
  // UTF-8 values are sent as their bytes.
  const utf = new HpackDecoder().decode(encodeHeaders({ "x": "é" }));
  assertEquals(utf[0].value, "\xc3\xa9");
});

Deno.test("hpack: the decoder keeps the client's dynamic table across blocks and bounds lists", () => {
  const decoder = new HpackDecoder(4096, 100);
  // Literal with incremental indexing, new name "a: b"; then indexed 62.
  decoder.decode(new Uint8Array([0x40, 1, 0x61, 1, 0x62]));
  assertEquals(decoder.decode(new Uint8Array([0xbe])).map((f) => [f.name, f.value]), [["a", "b"]]);
  assertThrows(() => decoder.decode(new Uint8Array([0xbf])), HpackError);
  assertThrows(
    () => decoder.decode(new Uint8Array([0xbe, 0xbe, 0xbe, 0xbe])),
    HpackError,
    "header list too large",
  );
});
