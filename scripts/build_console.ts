/**
 * Builds the web console: bundles console/app.ts (and what it imports: connect-web, protobuf-es,
 * the generated services) for the browser with `deno bundle`, and writes console/assets.json,
 * the files the member serves under /ui/ (committed: see docs/adr/0011-web-console.md).
 *
 * Usage: deno task build:console
 */
const root = new URL("..", import.meta.url).pathname;

/** The text of console/assets.json as the sources make it now. */
export async function buildConsoleAssets(): Promise<string> {
  const out = await Deno.makeTempDir({ prefix: "detcd-console-" });
  try {
    // The page, and YAML's pretty-printer as a module of its own that the page imports only
    // when it shows a YAML value (most values are not, and it is as large as the rest).
    for (const name of ["app", "yaml"]) {
      const bundle = await new Deno.Command(Deno.execPath(), {
        args: [
          "bundle",
          "--quiet",
          "--platform=browser",
          "--minify",
          `--config=${root}deno.json`,
          "-o",
          `${out}/${name}.js`,
          `${root}console/${name}.ts`,
        ],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!bundle.success) {
        throw new Error(`deno bundle failed: ${new TextDecoder().decode(bundle.stderr)}`);
      }
    }
    const assets = {
      "index.html": await Deno.readTextFile(`${root}console/index.html`),
      "app.css": await Deno.readTextFile(`${root}console/app.css`),
      "app.js": await Deno.readTextFile(`${out}/app.js`),
      "yaml.js": await Deno.readTextFile(`${out}/yaml.js`),
    };
    return JSON.stringify(assets) + "\n";
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

if (import.meta.main) {
  const text = await buildConsoleAssets();
  await Deno.writeTextFile(`${root}console/assets.json`, text);
  console.log(`console/assets.json: ${text.length} bytes`);
}
