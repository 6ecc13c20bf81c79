import assert from "node:assert/strict";
import { buildConsoleAssets } from "../scripts/build_console.ts";

Deno.test({
  name: "console/assets.json is what `deno task build:console` makes of the sources now",
  sanitizeResources: false,
  fn: async () => {
    const committed = await Deno.readTextFile(new URL("./assets.json", import.meta.url));
    const fresh = await buildConsoleAssets();
    const files = (text: string) => JSON.parse(text) as Record<string, string>;
    for (const [name, body] of Object.entries(files(fresh))) {
      assert.ok(
        files(committed)[name] === body,
        `console/assets.json's ${name} is stale: run deno task build:console`,
      );
    }
    assert.deepEqual(Object.keys(files(committed)).sort(), Object.keys(files(fresh)).sort());
  },
});
