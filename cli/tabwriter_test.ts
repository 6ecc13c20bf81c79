import assert from "node:assert/strict";
import { tabwriterFormat } from "./tabwriter.ts";

Deno.test("tabwriterFormat aligns tab-terminated cells to tab stops per column block", () => {
  const input =
    "NAME:\n\tget - Gets\n\nCOMMANDS:\n\tdel\tRemoves\n\trole revoke-permission\tRevokes\n\tget\tGets\n";
  const want =
    "NAME:\n\tget - Gets\n\nCOMMANDS:\n\tdel\t\t\tRemoves\n\trole revoke-permission\tRevokes\n\tget\t\t\tGets\n";
  assert.equal(tabwriterFormat(input), want);
});

Deno.test("tabwriterFormat starts a new column block after a line without that column", () => {
  const input = "      --a=1\tshort\n      --much-longer-flag-name=x\tu\n\n      --b\tv\n";
  const want = "      --a=1\t\t\tshort\n      --much-longer-flag-name=x\tu\n\n      --b\tv\n";
  assert.equal(tabwriterFormat(input), want);
});

Deno.test("tabwriterFormat counts runes, not bytes, and space padding works too", () => {
  assert.equal(
    tabwriterFormat("é\tx\nab\ty\n", { minWidth: 0, tabWidth: 8, padding: 1, padChar: " " }),
    "é  x\nab y\n",
  );
});
