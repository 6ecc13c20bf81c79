import { assertEquals, assertRejects, assertThrows } from "../core/testing.ts";
import { ConfigError, parseArgs, resolveConfig, toServerConfig } from "./config.ts";

Deno.test("flags follow Go's flag rules: -f v, --f=v, bare booleans", () => {
  const { set } = parseArgs([
    "-name",
    "a",
    "--data-dir=/x",
    "--force-new-cluster",
    "--debug=false",
  ]);
  assertEquals(Object.fromEntries(set), {
    "name": "a",
    "data-dir": "/x",
    "force-new-cluster": "true",
    "debug": "false",
  });
});

Deno.test("unknown flags, missing arguments and stray words fail like etcd", () => {
  const cases: [string[], string, number][] = [
    [["--foo"], "flag provided but not defined: -foo", 2],
    [["--data-dir"], "flag needs an argument: -data-dir", 2],
    [["extra"], "'extra' is not a valid flag", 1],
    [["--snapshot-count", "many"], `invalid value "many" for flag -snapshot-count: parse error`, 2],
  ];
  for (const [args, message, code] of cases) {
    const e = assertThrows(() => parseArgs(args), ConfigError) as ConfigError;
    assertEquals([e.message, e.exitCode], [message, code], args.join(" "));
  }
});

Deno.test("ETCD_* variables fill what flags left unset; flags win; unknown ones are reported", async () => {
  const parsed = await resolveConfig(["--name", "fromflag"], {
    ETCD_NAME: "fromenv",
    ETCD_MAX_TXN_OPS: "7",
    ETCD_NOPE: "1",
    HOME: "/root",
  });
  assertEquals(parsed.values.get("name"), "fromflag");
  assertEquals(parsed.values.get("max-txn-ops"), "7");
  assertEquals(parsed.envUsed, ["ETCD_MAX_TXN_OPS=7"]);
  assertEquals(parsed.envUnknown, ["ETCD_NOPE=1"]);
});

Deno.test("a config file wins over flags and environment, with etcd's YAML keys", async () => {
  const yaml = [
    "name: 'etcd4'",
    "data-dir: '/data'",
    'listen-client-urls: "http://127.0.0.1:12379"',
    'initial-cluster: "etcd1=http://127.0.0.1:2380,etcd4=http://127.0.0.1:12380"',
    "initial-cluster-state: 'existing'",
    "max-request-bytes: 1000",
  ].join("\n");
  const parsed = await resolveConfig(
    ["--config-file", "/etc/etcd.conf", "--name", "ignored"],
    { ETCD_DATA_DIR: "/ignored" },
    () => Promise.resolve(yaml),
  );
  const c = toServerConfig(parsed.values);
  assertEquals(c.name, "etcd4");
  assertEquals(c.dataDir, "/data");
  assertEquals(c.listenClientUrls, ["http://127.0.0.1:12379"]);
  assertEquals(c.initialClusterState, "existing");
  assertEquals(c.maxRequestBytes, 1000);
});

Deno.test("defaults are etcd's: default.etcd, 1.5 MiB requests, 128 txn ops", async () => {
  const c = toServerConfig((await resolveConfig([], {})).values);
  assertEquals(c.dataDir, "default.etcd");
  assertEquals(c.maxRequestBytes, 1572864);
  assertEquals(c.maxTxnOps, 128);
  assertEquals(c.listenClientUrls, ["http://localhost:2379"]);
  assertEquals(c.initialCluster, "default=http://localhost:2380");
});

Deno.test("a bad URL or cluster state is refused", async () => {
  await assertRejects(
    async () =>
      toServerConfig((await resolveConfig(["--listen-client-urls", "ftp://x:1"], {})).values),
    ConfigError,
    "URL scheme must be http",
  );
  await assertRejects(
    async () =>
      toServerConfig((await resolveConfig(["--initial-cluster-state", "old"], {})).values),
    ConfigError,
    "initial-cluster-state",
  );
});

Deno.test("TLS options detcd does not enforce yet are refused, not ignored", async () => {
  for (
    const args of [
      ["--peer-cert-allowed-hostname=host"],
      ["--client-cert-allowed-hostname=host"],
      ["--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
    ]
  ) {
    const { values } = await resolveConfig(args, {});
    let message = "";
    try {
      toServerConfig(values);
    } catch (e) {
      message = (e as Error).message;
    }
    assertEquals(message, `${args[0].split("=")[0]} is not supported by detcd yet`);
  }
});
