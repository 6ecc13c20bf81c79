import assert from "node:assert/strict";
import { RangeRequestSchema, TxnRequestSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import {
  decodeGoBase64,
  GatewayJsonError,
  messageFromJson,
  messageToJsonText,
  readJsonValue,
} from "./gateway_json.ts";

/** Go's words for each body, as etcd 3.4.23's gateway answered them (tests/gateway_test.ts). */
const SYNTAX: [string, string][] = [
  ["notjson", "invalid character 'o' in literal null (expecting 'u')"],
  ['{"key" "x"}', "invalid character '\"' after object key"],
  ['{"key":"x",}', "invalid character '}' looking for beginning of object key string"],
  ['{"key":"x" "y":1}', "invalid character '\"' after object key:value pair"],
  ["{key:1}", "invalid character 'k' looking for beginning of object key string"],
  ['{"key":tru}', "invalid character '}' in literal true (expecting 'e')"],
  ['{"key":"\\q"}', "invalid character 'q' in string escape code"],
  ['{"limit":-}', "invalid character '}' in numeric literal"],
  ['{"limit":1.}', "invalid character '}' after decimal point in numeric literal"],
  ['{"limit":1e}', "invalid character '}' in exponent of numeric literal"],
  ['{"key":[1,2}', "invalid character '}' after array element"],
  ['{"key":"x"', "unexpected EOF"],
];

Deno.test("readJsonValue: Go's encoding/json syntax errors", () => {
  for (const [text, message] of SYNTAX) {
    assert.throws(() => readJsonValue(text), (e) => {
      assert.ok(e instanceof GatewayJsonError);
      assert.equal(e.message, message, text);
      return true;
    });
  }
});

Deno.test("readJsonValue: one value at a time, null at the end, numbers kept as text", () => {
  const text = ' {"a":1} {"b":[true,null,"x"]}  ';
  const first = readJsonValue(text)!;
  assert.equal(first.node.kind, "object");
  const second = readJsonValue(text, first.end)!;
  assert.deepEqual(second.node, {
    kind: "object",
    entries: new Map([["b", {
      kind: "array",
      items: [{ kind: "bool", value: true }, { kind: "null" }, { kind: "string", value: "x" }],
    }]]),
  });
  assert.equal(readJsonValue(text, second.end), null);
  assert.deepEqual(readJsonValue("7587899359044395020")!.node, {
    kind: "number",
    text: "7587899359044395020",
  });
});

Deno.test("decodeGoBase64: padding required, Go's error offsets", () => {
  assert.deepEqual(decodeGoBase64("Zm9v"), new TextEncoder().encode("foo"));
  assert.deepEqual(decodeGoBase64("Zg=="), new Uint8Array([0x66]));
  assert.deepEqual(decodeGoBase64("Zm\n9v"), new TextEncoder().encode("foo"));
  const offset = (text: string) => {
    try {
      decodeGoBase64(text);
      return "ok";
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.equal(offset("!!"), "illegal base64 data at input byte 0");
  assert.equal(offset("Zm9"), "illegal base64 data at input byte 0");
  assert.equal(offset("Zg="), "illegal base64 data at input byte 3");
  assert.equal(offset("Zm9v=="), "illegal base64 data at input byte 4");
});

Deno.test("messageFromJson / messageToJsonText: jsonpb's names, 64-bit integers, enums, oneofs", () => {
  const range = messageFromJson(
    RangeRequestSchema,
    readJsonValue(
      '{"key":"Zm9v","rangeEnd":"AA==","limit":"9007199254740993","sort_order":"DESCEND","x":1}',
    )!.node,
  );
  assert.equal(
    messageToJsonText(RangeRequestSchema, range),
    '{"key":"Zm9v","range_end":"AA==","limit":"9007199254740993","sort_order":"DESCEND"}',
  );
  const txn = messageFromJson(
    TxnRequestSchema,
    readJsonValue('{"success":[{"request_put":{"key":"PD4m","value":"eA=="}}]}')!.node,
  );
  assert.equal(
    messageToJsonText(TxnRequestSchema, txn),
    '{"success":[{"request_put":{"key":"PD4m","value":"eA=="}}]}',
  );
  assert.throws(
    () => messageFromJson(RangeRequestSchema, readJsonValue('{"limit":1.5}')!.node),
    /json: cannot unmarshal number 1.5 into Go value of type int64/,
  );
  assert.throws(
    () => messageFromJson(RangeRequestSchema, readJsonValue('{"sort_order":"NOPE"}')!.node),
    /unknown value "NOPE" for enum etcdserverpb.RangeRequest_SortOrder/,
  );
});
