import assert from "node:assert/strict";
import {
  compareBytes,
  hexDump,
  kubernetesType,
  levelPage,
  lineDiff,
  prefixEnd,
  showValue,
} from "./format.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

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
  const unknown = new Uint8Array([...field(1, typeMeta), ...field(2, new Uint8Array([1, 2, 3]))]);
  const value = new Uint8Array([0x6b, 0x38, 0x73, 0x00, ...unknown]);
  assert.deepEqual(kubernetesType(value), { apiVersion: "apps/v1", kind: "Deployment" });
  const shown = showValue(value);
  assert.equal(shown.kind, "kubernetes");
  assert.equal(shown.note, "Kubernetes object: apiVersion apps/v1, kind Deployment");
  assert.equal(kubernetesType(new Uint8Array([0x6b, 0x38, 0x73, 0x00, 0x0a, 0x7f])), null);
});

Deno.test("hexDump: offsets, 16 bytes a line, bounded", () => {
  const bytes = Uint8Array.from({ length: 40 }, (_, i) => 0x30 + (i % 10));
  const lines = hexDump(bytes, 32).split("\n");
  assert.equal(lines.length, 3);
  assert.ok(lines[1].startsWith("00000010  36 37 38 39"));
  assert.equal(lines[2], "… 8 more bytes");
});

Deno.test("prefixEnd as etcd's GetPrefixRangeEnd", () => {
  assert.deepEqual(prefixEnd(enc.encode("a/")), enc.encode("a0"));
  assert.deepEqual(prefixEnd(new Uint8Array([0x61, 0xff])), new Uint8Array([0x62]));
  assert.deepEqual(prefixEnd(new Uint8Array([0xff, 0xff])), new Uint8Array([0]));
});

/** A sorted key space answering bounded keys-only ranges, counting them. */
function space(keys: string[]) {
  const sorted = keys.map((k) => enc.encode(k)).sort(compareBytes);
  const calls: number[] = [];
  const page = (from: Uint8Array, end: Uint8Array, limit: number) => {
    assert.ok(limit > 0 && limit <= 100, "every range is bounded");
    calls.push(limit);
    const all = end.length === 1 && end[0] === 0;
    const start = from.length === 0 ? new Uint8Array([0]) : from;
    return Promise.resolve(
      sorted.filter((k) => compareBytes(k, start) >= 0 && (all || compareBytes(k, end) < 0))
        .slice(0, limit),
    );
  };
  return { page, calls };
}

Deno.test("levelPage lists a level's folders once each and its keys, a bounded page at a time", async () => {
  const keys = ["top"];
  for (let i = 0; i < 500; i++) keys.push(`/registry/pods/p${String(i).padStart(3, "0")}`);
  for (let i = 0; i < 3; i++) keys.push(`/registry/svc/s${i}`);
  keys.push("/registry/version");
  const { page, calls } = space(keys);
  const sep = "/".charCodeAt(0);
  const root = await levelPage(page, new Uint8Array(0), sep, new Uint8Array(0), 10);
  assert.deepEqual(root.entries.map((e) => `${e.kind}:${dec.decode(e.path)}`), [
    "folder:/",
    "key:top",
  ]);
  assert.equal(root.next, null);
  const prefix = enc.encode("/registry/");
  const level = await levelPage(page, prefix, sep, prefix, 10);
  assert.deepEqual(level.entries.map((e) => e.label), ["pods/", "svc/", "version"]);
  assert.equal(level.next, null);
  // A level of 500 keys, pages of 200: two full pages and a last one.
  const pods = enc.encode("/registry/pods/");
  const labels: string[] = [];
  let cursor: Uint8Array | null = pods;
  let pages = 0;
  while (cursor !== null) {
    const p: Awaited<ReturnType<typeof levelPage>> = await levelPage(page, pods, sep, cursor, 200);
    labels.push(...p.entries.map((e) => e.label));
    cursor = p.next;
    pages++;
  }
  assert.equal(pages, 3);
  assert.equal(labels.length, 500);
  assert.equal(new Set(labels).size, 500);
  assert.equal(labels[0], "p000");
  assert.equal(labels[499], "p499");
  assert.ok(calls.every((n) => n <= 100));
});

Deno.test("lineDiff marks removed and added lines", () => {
  assert.deepEqual(lineDiff("a\nb\nc", "a\nx\nc\nd"), ["  a", "- b", "+ x", "  c", "+ d"]);
  assert.deepEqual(lineDiff("same", "same"), ["  same"]);
});
