/**
 * Derives detcd's copies of etcd's v3 API protos from the Debian package
 * `golang-etcd-server-dev`, keeping only the wire contract: syntax, package, imports of sibling
 * API files, messages, enums and services. gogoproto and google.api options are Go/gateway
 * concerns and are dropped, as are comments; field names and numbers are untouched, and
 * `tests/proto_descriptor_test.ts` checks that field by field against the originals.
 *
 * Usage: deno run -A scripts/import_protos.ts [etcd source root]
 */
const root = Deno.args[0] ?? "/usr/share/gocode/src/go.etcd.io/etcd";

/** Source file in etcd's tree → our path under proto/. */
export const apiProtos: Record<string, string> = {
  "mvcc/mvccpb/kv.proto": "mvccpb/kv.proto",
  "auth/authpb/auth.proto": "authpb/auth.proto",
  "etcdserver/etcdserverpb/rpc.proto": "etcdserverpb/rpc.proto",
  "etcdserver/api/v3election/v3electionpb/v3election.proto": "v3electionpb/v3election.proto",
  "etcdserver/api/v3lock/v3lockpb/v3lock.proto": "v3lockpb/v3lock.proto",
};

const importMap: Record<string, string> = {
  "etcd/mvcc/mvccpb/kv.proto": "mvccpb/kv.proto",
  "etcd/auth/authpb/auth.proto": "authpb/auth.proto",
  "etcd/etcdserver/etcdserverpb/rpc.proto": "etcdserverpb/rpc.proto",
};

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
}

/** Removes `option (x) = {...};` blocks, `option (x) = v;` lines and `[(...)]` field options. */
function stripOptions(text: string): string {
  let out = text.replace(/option\s*\([^)]*\)[^;{]*=\s*\{[^}]*\}\s*;/g, "");
  out = out.replace(/option\s*\([^)]*\)[^;]*;/g, "");
  out = out.replace(/option\s+go_package[^;]*;/g, "");
  out = out.replace(/\s*\[\s*\([^\]]*\]/g, "");
  return out;
}

function rewriteImports(text: string): string {
  return text.replace(/import\s+"([^"]+)";/g, (_all, path: string) => {
    const mapped = importMap[path];
    return mapped ? `import "${mapped}";` : "";
  });
}

/** Re-indents by brace depth and drops blank runs, so the output is stable and readable. */
function normalize(text: string): string {
  const lines: string[] = [];
  let depth = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") {
      if (lines.length > 0 && lines[lines.length - 1] !== "") lines.push("");
      continue;
    }
    if (line.startsWith("}")) depth--;
    lines.push("  ".repeat(Math.max(depth, 0)) + line);
    depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length +
      (line.startsWith("}") ? 1 : 0);
  }
  const joined = lines.join("\n").replace(/\{\n\n/g, "{\n").replace(/\n\n(\s*\})/g, "\n$1")
    .replace(/\)\s*\{\s*\}/g, ");");
  return joined.trim() + "\n";
}

if (import.meta.main) {
  const here = new URL("../proto/", import.meta.url).pathname;
  for (const [source, target] of Object.entries(apiProtos)) {
    const text = await Deno.readTextFile(`${root}/${source}`);
    const header = `// Wire contract of etcd 3.4 (${source}), options and comments removed.\n` +
      `// Regenerate with: deno run -A scripts/import_protos.ts\n`;
    const body = normalize(rewriteImports(stripOptions(stripComments(text))));
    const path = `${here}${target}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, header + body);
    console.log(`wrote proto/${target}`);
  }
}
