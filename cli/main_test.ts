import assert from "node:assert/strict";
import { runCli } from "./main.ts";
import { BufferSink, bytesSource, StdinReader } from "./io.ts";

async function run(args: string[], env: [string, string][] = []) {
  const stdout = new BufferSink();
  const stderr = new BufferSink();
  const code = await runCli(args, {
    stdout,
    stderr,
    stdin: new StdinReader(bytesSource("")),
    env,
    now: () => new Date(0),
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

Deno.test("version prints etcdctl's version lines", async () => {
  assert.deepEqual(await run(["version"]), {
    code: 0,
    stdout: "etcdctl version: 3.4.23\nAPI version: 3.4\n",
    stderr: "",
  });
});

Deno.test("unknown commands suggest close names in etcdctl's registration order", async () => {
  const r = await run(["e"]);
  assert.equal(r.code, 1);
  const msg =
    'unknown command "e" for "etcdctl"\n\nDid you mean this?\n\tget\n\tdel\n\tendpoint\n\telect\n';
  assert.equal(r.stderr, `Error: ${msg}\nRun 'etcdctl --help' for usage.\nError: ${msg}\n`);
});

Deno.test("a bad flag prints the error, usage on stdout, and the error again", async () => {
  const r = await run(["get", "k", "--bogus"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "Error: unknown flag: --bogus\n\nError: unknown flag: --bogus\n");
  assert.match(
    r.stdout,
    /^NAME:\n\tget - Gets the key or a range of keys\n\nUSAGE:\n\tetcdctl get \[options\] <key> \[range_end\] \[flags\]\n/,
  );
});

Deno.test("commands are found by unique prefix, and group commands show help", async () => {
  const v = await run(["vers"]);
  assert.equal(v.stdout, "etcdctl version: 3.4.23\nAPI version: 3.4\n");
  const m = await run(["member", "bogus"]);
  assert.equal(m.code, 0);
  assert.match(m.stdout, /^NAME:\n\tmember - Membership related commands\n/);
});

Deno.test("ETCDCTL_API other than 3 is refused", async () => {
  const r = await run(["get", "k"], [["ETCDCTL_API", "5"]]);
  assert.deepEqual(r, { code: 1, stdout: "", stderr: "unsupported API version 5\n" });
});

Deno.test("an unknown output format exits 4 before any request", async () => {
  const r = await run(["get", "k", "-w", "yaml"], [["ETCDCTL_ENDPOINTS", "127.0.0.1:1"]]);
  assert.deepEqual(r, { code: 4, stdout: "", stderr: "Error: unsupported output format\n" });
});

Deno.test("unrecognised ETCDCTL_ variables warn; shadowed ones are fatal", async () => {
  const r = await run(["get", "k", "-w", "yaml"], [["ETCDCTL_BOGUS", "1"]]);
  assert.match(
    r.stderr,
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} W \| pkg\/flags: unrecognized environment variable ETCDCTL_BOGUS=1\n/,
  );
  const f = await run(["get", "k", "-w", "json"], [["ETCDCTL_WRITE_OUT", "fields"]]);
  assert.equal(f.code, 1);
  assert.match(
    f.stderr,
    /C \| pkg\/flags: conflicting environment variable "ETCDCTL_WRITE_OUT" is shadowed by corresponding command-line flag/,
  );
});
