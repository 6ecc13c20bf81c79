import assert from "node:assert/strict";
import { renderTable, title, wrapString } from "./table_writer.ts";

Deno.test("renderTable centers upper-cased headers and right-aligns cells", () => {
  const got = renderTable(["endpoint", "health", "took", "error"], [[
    "127.0.0.1:2379",
    "true",
    "4.4ms",
    "",
  ]]);
  const want = [
    "+----------------+--------+-------+-------+",
    "|    ENDPOINT    | HEALTH | TOOK  | ERROR |",
    "+----------------+--------+-------+-------+",
    "| 127.0.0.1:2379 |   true | 4.4ms |       |",
    "+----------------+--------+-------+-------+",
    "",
  ].join("\n");
  assert.equal(got, want);
});

Deno.test("renderTable wraps cells wider than 30 columns, padding short cells like tablewriter", () => {
  // tablewriter pads the extra lines of other cells with two spaces, even in a 1-wide column,
  // which shifts that row; etcdctl prints exactly this (checked against Go's tablewriter).
  const got = renderTable(["a", "error"], [[
    "x",
    "context deadline exceeded while waiting for things",
  ]]);
  const want = [
    "+---+--------------------------------+",
    "| A |             ERROR              |",
    "+---+--------------------------------+",
    "| x |      context deadline exceeded |",
    "|    |       while waiting for things |",
    "+---+--------------------------------+",
    "",
  ].join("\n");
  assert.equal(got, want);
});

Deno.test("wrapString keeps words longer than the limit whole", () => {
  assert.deepEqual(wrapString("aaaa bb cc", 5), ["aaaa", "bb cc"]);
  assert.deepEqual(wrapString("http://127.0.0.1:2380,http://127.0.0.1:12380", 30), [
    "http://127.0.0.1:2380,http://127.0.0.1:12380",
  ]);
});

Deno.test("title turns header names into tablewriter's headings", () => {
  assert.equal(title("raft applied index"), "RAFT APPLIED INDEX");
  assert.equal(title("is_learner"), "IS LEARNER");
  assert.equal(title("v1.2"), "V1.2");
});
