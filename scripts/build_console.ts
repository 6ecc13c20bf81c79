/**
 * Builds the web console: bundles console/app.ts (and what it imports: connect-web, protobuf-es,
 * the generated services) for the browser with `deno bundle`, and writes console/assets.json,
 * the files the member serves under /ui/ (committed: see docs/adr/0011-web-console.md).
 *
 * Usage: deno task build:console
 */
const root = new URL("..", import.meta.url).pathname;
const out = await Deno.makeTempDir({ prefix: "detcd-console-" });
try {
  const bundle = new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform=browser",
      "--minify",
      `--config=${root}deno.json`,
      "-o",
      `${out}/app.js`,
      `${root}console/app.ts`,
    ],
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  });
  const status = await bundle.output();
  if (!status.success) Deno.exit(status.code || 1);
  const assets = {
    "index.html": await Deno.readTextFile(`${root}console/index.html`),
    "app.css": await Deno.readTextFile(`${root}console/app.css`),
    "app.js": await Deno.readTextFile(`${out}/app.js`),
  };
  const text = JSON.stringify(assets, null, 0) + "\n";
  await Deno.writeTextFile(`${root}console/assets.json`, text);
  console.log(`console/assets.json: ${text.length} bytes (app.js ${assets["app.js"].length})`);
} finally {
  await Deno.remove(out, { recursive: true });
}
