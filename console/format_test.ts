import assert from "node:assert/strict";
import { hexDump, keyLabel, kubernetesType, leaseHex, lineDiff, showValue } from "./format.ts";

const enc = new TextEncoder();

Deno.test("showValue picks JSON, YAML, text, hex for binary, and recognises Kubernetes values", () => {
  assert.deepEqual(showValue(enc.encode('{"a":1,"b":[true]}')), {
    kind: "json",
    text: '{\n  "a": 1,\n  "b": [\n    true\n  ]\n}',
    note: undefined,
  });
  const pod = showValue(enc.encode('{"apiVersion":"v1","kind":"Pod","metadata":{}}'));
  assert.equal(pod.kind, "json");
  assert.equal(pod.note, "Kubernetes object: apiVersion v1, kind Pod");
  assert.equal(showValue(enc.encode("name: x\nitems:\n  - 1\n")).kind, "yaml");
  assert.equal(showValue(enc.encode("hello: world, said the key")).kind, "text");
  assert.equal(showValue(enc.encode("{not json")).kind, "text");
  assert.equal(showValue(enc.encode("plain words")).text, "plain words");
  assert.equal(showValue(new Uint8Array(0)).kind, "empty");
  const binary = showValue(new Uint8Array([0xff, 0x00, 0x41]));
  assert.equal(binary.kind, "binary");
  assert.equal(binary.text, "00000000  ff 00 41" + " ".repeat(39) + "  ..A");
  // Valid UTF-8 with control characters is binary too.
  assert.equal(showValue(new Uint8Array([0x41, 0x01, 0x42])).kind, "binary");

  // Kubernetes' protobuf envelope: "k8s\0", runtime.Unknown{typeMeta{apiVersion, kind}, raw}.
  const field = (n: number, bytes: Uint8Array) => [n * 8 + 2, bytes.length, ...bytes];
  const typeMeta = new Uint8Array([
    ...field(1, enc.encode("apps/v1")),
    ...field(2, enc.encode("Deployment")),
  ]);
  const objectMeta = new Uint8Array([
    ...field(1, enc.encode("web")),
    ...field(3, enc.encode("prod")),
  ]);
  const raw = new Uint8Array([...field(1, objectMeta), ...field(2, new Uint8Array([1, 2, 3]))]);
  const unknown = new Uint8Array([...field(1, typeMeta), ...field(2, raw)]);
  const value = new Uint8Array([0x6b, 0x38, 0x73, 0x00, ...unknown]);
  assert.deepEqual(kubernetesType(value), {
    apiVersion: "apps/v1",
    kind: "Deployment",
    namespace: "prod",
    name: "web",
  });
  const shown = showValue(value);
  assert.equal(shown.kind, "kubernetes");
  assert.equal(shown.note, "Kubernetes object: apiVersion apps/v1, kind Deployment, prod/web");
  assert.equal(kubernetesType(new Uint8Array([0x6b, 0x38, 0x73, 0x00, 0x0a, 0x7f])), null);
});

Deno.test("hexDump: offsets, 16 bytes a line, bounded", () => {
  const bytes = Uint8Array.from({ length: 40 }, (_, i) => 0x30 + (i % 10));
  const lines = hexDump(bytes, 32).split("\n");
  assert.equal(lines.length, 3);
  assert.ok(lines[1].startsWith("00000010  36 37 38 39"));
  assert.equal(lines[2], "… 8 more bytes");
});

Deno.test("keyLabel: UTF-8 keys as they are, other bytes escaped", () => {
  assert.equal(keyLabel(enc.encode("/a/ключ")), "/a/ключ");
  assert.equal(keyLabel(new Uint8Array([0x61, 0xff, 0x00])), "a\\xff\\x00");
});

Deno.test("lineDiff marks removed and added lines", () => {
  assert.deepEqual(lineDiff("a\nb\nc", "a\nx\nc\nd"), ["  a", "- b", "+ x", "  c", "+ d"]);
  assert.deepEqual(lineDiff("same", "same"), ["  same"]);
});

Deno.test("leaseHex: 16 digits as etcdctl prints lease IDs, leading zeros kept", () => {
  assert.equal(leaseHex(0x0f54a248c6d78003n), "0f54a248c6d78003");
  assert.equal(leaseHex(0x694d7c1b5ea1b004n), "694d7c1b5ea1b004");
  assert.equal(leaseHex(1n), "0000000000000001");
  // Lease IDs are int64 in the API: a negative one as Go's %016x prints it.
  assert.equal(leaseHex(-1n), "-000000000000001");
});
