/** CVE-2020-15113: the data directory and everything in it are private to the member's user. */
import { silentLogger } from "../core/log.ts";
import { resolveConfig, toServerConfig } from "../server/config.ts";
import { startServer } from "../server/server.ts";
import { assertEquals } from "../core/testing.ts";
import { freePort } from "./harness.ts";

Deno.test("CVE-2020-15113: data dir and member dirs are 0700, WAL, snapshot, revision and meta files 0600", async () => {
  const root = await Deno.makeTempDir();
  const dataDir = `${root}/node.etcd`;
  const peer = freePort();
  const config = toServerConfig(
    (await resolveConfig([
      `--data-dir=${dataDir}`,
      "--listen-client-urls=http://127.0.0.1:0",
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=default=http://127.0.0.1:${peer}`,
      "--snapshot-count=1",
    ], {})).values,
  );
  const server = await startServer(config, silentLogger);
  const { create } = await import("@bufbuild/protobuf");
  const { PutRequestSchema } = await import("../gen/etcdserverpb/rpc_pb.ts");
  await server.node.put(
    create(PutRequestSchema, { key: new Uint8Array([1]), value: new Uint8Array([2]) }),
  );
  await server.stop();
  try {
    const modes: Record<string, number> = {};
    const walk = async (dir: string) => {
      modes[dir.slice(root.length)] = (await Deno.stat(dir)).mode! & 0o777;
      for await (const e of Deno.readDir(dir)) {
        const path = `${dir}/${e.name}`;
        if (e.isDirectory) await walk(path);
        else modes[path.slice(root.length)] = (await Deno.stat(path)).mode! & 0o777;
      }
    };
    await walk(dataDir);
    const loose = Object.entries(modes).filter(([path, mode]) =>
      mode !==
        (/\.(wal|snap|rev)$|meta$/.test(path) ? 0o600 : 0o700)
    );
    assertEquals(loose, []);
    assertEquals(Object.keys(modes).some((p) => p.endsWith(".snap")), true);
    assertEquals(Object.keys(modes).some((p) => p.endsWith(".rev")), true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
