import assert from "node:assert/strict";
import { prettyYaml } from "./yaml.ts";

Deno.test("prettyYaml re-indents a mapping, keeps comments, refuses what is not YAML", () => {
  assert.equal(
    prettyYaml("kind: Config   # a comment\nitems:\n    -   name: a\n        port: 80\n"),
    "kind: Config # a comment\nitems:\n  - name: a\n    port: 80",
  );
  assert.equal(prettyYaml("a: [1, 2\nb: }"), null);
});
