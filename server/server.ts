import { workerSnapshotBody } from "./snapshot_writer.ts";
import { PACED_SLICE_MS, Slicer } from "./slicer.ts";
import { Counter } from "../core/metrics.ts";
import { renderMetrics } from "./metrics.ts";
import { checkInitialHashKV, startCorruptionMonitor } from "./corruption.ts";
import { callsStartedTotal, enableHandlingTimeHistogram } from "./grpc_metrics.ts";
import { startIdleTrim } from "./idle_trim.ts";
import { startSnapshotStandby } from "./snapshot_standby.ts";
import { parseCompactionRetention, startCompactor } from "./compactor.ts";
import { createTokenProvider } from "./auth_tokens.ts";
import { selfCert, type SelfCertLog } from "./self_cert.ts";
import { WorkerPasswordHasher } from "./auth_hasher.ts";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import type { Logger } from "../core/log.ts";
import { create } from "@bufbuild/protobuf";
import {
  AlarmType,
  HashKVRequestSchema,
  LeaseTimeToLiveRequestSchema,
  LeaseTimeToLiveResponseSchema,
  RangeRequestSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import {
  clusterVersion,
  EtcdNode,
  idHex,
  memberId,
  parseInitialCluster,
  SERVER_VERSION,
} from "../core/node/mod.ts";
import type { Disk } from "../core/storage/mod.ts";
import type { ServerConfig } from "./config.ts";
import { DenoDisk } from "../platform/mod.ts";
import {
  type ClientTls,
  hostPort,
  type Http1Routes,
  listenClients,
  type PlainResponse,
} from "./listener.ts";
import {
  fetchPeerHashKV,
  fetchPeerVersion,
  fetchRemoteCluster,
  listenPeers,
  loadPeerTls,
  PeerCalls,
  type PeerHandler,
  type PeerTls,
  PeerTransport,
  type RemoteMember,
} from "./peer/mod.ts";
import { addConsoleServices, consoleRoute } from "./console_service.ts";
import { etcdServices } from "./services.ts";
import { WorkerPool } from "./worker_pool.ts";

/** etcd lets gRPC messages exceed --max-request-bytes by this much before gRPC itself refuses. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/**
 * Client workers per client URL, from DETCD_CLIENT_WORKERS; 0 (the default until the
 * benchmark says otherwise) serves clients on the main thread. See docs/adr/0002-transport.md.
 */
function defaultClientWorkers(): number {
  const fromEnv = Deno.env.get("DETCD_CLIENT_WORKERS");
  return fromEnv !== undefined && /^\d+$/.test(fromEnv) ? Number(fromEnv) : 0;
}

/** A running member. */
export interface RunningServer {
  node: EtcdNode;
  /** "host:port" of each client listener, in flag order. */
  clientAddresses: string[];
  /** Stops listening, lets writes in flight become durable, closes the WAL. */
  stop(): Promise<void>;
}

/** etcd's plain HTTP endpoints on the client port, answered from the node. */
export function http1Routes(node: EtcdNode, options: { webConsole?: boolean } = {}): Http1Routes {
  const json = (body: unknown): PlainResponse => ({
    status: 200,
    contentType: "application/json",
    body: JSON.stringify(body),
  });
  // Go's http.Error: plain text, no sniffing, a newline after the message.
  const httpError = (status: number, message: string, headers: Record<string, string> = {}) => ({
    status,
    contentType: "text/plain; charset=utf-8",
    body: `${message}\n`,
    headers: { "X-Content-Type-Options": "nosniff", ...headers },
  });
  const methodNotAllowed = () => httpError(405, "Method Not Allowed", { Allow: "GET" });
  return (target, method) => {
    const url = new URL(target, "http://localhost");
    switch (url.pathname) {
      case "/health": {
        if (method !== "GET") return methodNotAllowed();
        return checkHealth(node, new Set(url.searchParams.getAll("exclude"))).then((healthy) =>
          healthy
            ? { status: 200, contentType: "text/plain; charset=utf-8", body: '{"health":"true"}' }
            : httpError(503, '{"health":"false"}')
        );
      }
      case "/livez":
      case "/readyz": {
        if (method !== "GET") return methodNotAllowed();
        const kind = url.pathname.slice(1) as "livez" | "readyz";
        return runProbe(node, kind, url.searchParams).then(({ healthy, text }) =>
          healthy
            ? { status: 200, contentType: "text/plain; charset=utf-8", body: text }
            : httpError(503, text.replace(/\n$/, ""))
        );
      }
      case "/version":
        if (method !== "GET") return methodNotAllowed();
        return json({ etcdserver: SERVER_VERSION, etcdcluster: clusterVersion });
      case "/metrics":
        return {
          status: 200,
          contentType: "text/plain; version=0.0.4; charset=utf-8",
          body: renderMetrics(node),
        };
      default:
        return options.webConsole ? consoleRoute(url.pathname, method) : null;
    }
  };
}

/**
 * A --listen-metrics-urls listener: /metrics and /health only (etcd's HandleMetricsHealth), over
 * TLS with the client port's certificate for an https:// URL; anything else is Go's 404.
 */
async function listenMetrics(
  url: string,
  routes: Http1Routes,
  tlsSettings: ClientTls | null,
): Promise<net.Server> {
  const { host, port } = hostPort(url);
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    const plain = path === "/metrics" || path === "/health"
      ? await routes(req.url ?? "", req.method ?? "GET")
      : null;
    if (plain === null) {
      res.writeHead(404, {
        "Content-Type": "text/plain; charset=utf-8",
        "X-Content-Type-Options": "nosniff",
      });
      res.end("404 page not found\n");
      return;
    }
    res.writeHead(plain.status, { "Content-Type": plain.contentType, ...plain.headers });
    res.end(plain.body);
  };
  if (url.startsWith("https://") && tlsSettings === null) {
    throw new Error(`${url}: an https metrics URL needs the client TLS flags (--cert-file)`);
  }
  const server = url.startsWith("https://")
    ? https.createServer({ cert: tlsSettings!.cert, key: tlsSettings!.key }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

/**
 * etcd 3.4's /health: unhealthy with a raised alarm (unless named in `?exclude=`), without a
 * leader, or when a quorum read does not succeed within a second.
 */
async function checkHealth(node: EtcdNode, excluded: Set<string>): Promise<boolean> {
  const healthy = await checkHealthOnce(node, excluded);
  (healthy ? healthSuccesses : healthFailures).inc();
  return healthy;
}

const healthSuccesses = new Counter(
  "etcd_server_health_success",
  "The total number of successful health checks",
);
const healthFailures = new Counter(
  "etcd_server_health_failures",
  "The total number of failed health checks",
);
healthSuccesses.touch();
healthFailures.touch();

async function checkHealthOnce(node: EtcdNode, excluded: Set<string>): Promise<boolean> {
  if (node.alarmList().some((a) => !excluded.has(AlarmType[a.alarm]))) return false;
  if (node.leader === 0n) return false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      node.range(create(RangeRequestSchema, { key: new TextEncoder().encode("health") })),
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("timeout")), 1000)),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** A read used as a probe: true when it answers within a second. */
async function probeRead(node: EtcdNode, serializable: boolean): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      node.range(
        create(RangeRequestSchema, {
          key: new Uint8Array([0]),
          keysOnly: true,
          limit: 1n,
          serializable,
        }),
      ),
      new Promise((_, reject) =>
        timer = setTimeout(() => reject(new Error("context deadline exceeded")), 1000)
      ),
    ]);
    return null;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // etcd's probes pass a read refused by auth: the member itself answered.
    if (/user name is empty|permission denied/.test(message)) return null;
    return message;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * etcd 3.5's /livez and /readyz: named checks run in order (livez: serializable_read; readyz:
 * data_corruption, serializable_read, linearizable_read), `?exclude=<check>` skips one,
 * `?verbose` lists every check; "ok" when all pass, else 503 with the list and "<kind> check
 * failed".
 */
async function runProbe(
  node: EtcdNode,
  kind: "livez" | "readyz",
  query: URLSearchParams,
): Promise<{ healthy: boolean; text: string }> {
  const checks: [string, () => Promise<string | null>][] = kind === "livez"
    ? [["serializable_read", () => probeRead(node, true)]]
    : [
      [
        "data_corruption",
        () =>
          Promise.resolve(
            node.alarmList().some((a) => a.alarm === AlarmType.CORRUPT)
              ? "alarm activated: CORRUPT"
              : null,
          ),
      ],
      ["serializable_read", () => probeRead(node, true)],
      ["linearizable_read", () => probeRead(node, false)],
    ];
  const excluded = new Set(query.getAll("exclude"));
  let lines = "";
  let healthy = true;
  for (const [name, check] of checks) {
    if (excluded.has(name)) {
      lines += `[+]${name} excluded: ok\n`;
      continue;
    }
    const failure = await check();
    if (failure === null) lines += `[+]${name} ok\n`;
    else {
      healthy = false;
      lines += `[-]${name} failed: ${failure}\n`;
    }
  }
  if (!healthy) return { healthy, text: `${lines}${kind} check failed\n` };
  if (!query.has("verbose")) return { healthy, text: "ok" };
  return { healthy, text: `${lines}${kind} check passed\n` };
}

/** Opens the member's data dir and starts serving clients (and holding the peer port). */
/** etcd's SelfCert log lines ("created cert file", "created key file"). */
function selfCertLogger(logger: Logger): SelfCertLog {
  return (msg, path) =>
    logger.info(`transport/listener.go:${msg === "created key file" ? 228 : 207}`, msg, { path });
}

export async function startServer(
  config: ServerConfig,
  logger: Logger,
  disk: Disk = new DenoDisk(),
  options: {
    clientWorkers?: number;
    onRemoved?: () => void;
    /** The member stopped after a broken invariant (already logged). */
    onFatal?: (error: Error) => void;
  } = {},
): Promise<RunningServer> {
  const clientWorkers = options.clientWorkers ?? defaultClientWorkers();
  logger.info("embed/etcd.go:117", "configuring peer listeners", {
    "listen-peer-urls": config.listenPeerUrls,
  });
  const peerFlags = { ...config.peerTls };
  let peerSelfSigned = false;
  if (peerFlags.autoTls) {
    if (peerFlags.certFile !== "" || peerFlags.keyFile !== "") {
      logger.warn("embed/config.go:807", "ignoring peer auto TLS since certs given");
    } else {
      const made = await selfCert(
        `${config.dataDir}/fixtures/peer`,
        config.listenPeerUrls,
        selfCertLogger(logger),
      );
      peerFlags.certFile = made.certFile;
      peerFlags.keyFile = made.keyFile;
      peerSelfSigned = true;
    }
  }
  const peerTls = loadPeerTls(
    peerFlags,
    [...config.listenPeerUrls, ...config.initialAdvertisePeerUrls],
    (path) => Deno.readFileSync(path),
    peerSelfSigned,
  );
  if (peerTls !== null) {
    logger.info("embed/etcd.go:476", "starting with peer TLS", {
      "tls-info": `cert = ${peerFlags.certFile}, key = ${peerFlags.keyFile}, ` +
        `trusted-ca = ${peerFlags.trustedCaFile}, ` +
        `client-cert-auth = ${peerFlags.clientCertAuth}, crl-file = ${peerFlags.crlFile}`,
      "cipher-suites": config.cipherSuites ? config.cipherSuites.split(",") : [],
    });
  }
  logger.info("embed/etcd.go:127", "configuring client listeners", {
    "listen-client-urls": config.listenClientUrls,
  });
  const clientTls = await loadClientTls(config, logger);
  const compactionMode = config.autoCompactionMode ?? "periodic";
  // Parsed before anything starts, as etcd does (a bad value ends the start-up).
  const compactionRetention = parseCompactionRetention(
    compactionMode,
    config.autoCompactionRetention ?? "0",
  );
  let node: EtcdNode | null = null;
  // Made once per node: the peer side asks for it with every Raft message it receives.
  let handlerOfNode: { node: EtcdNode; handler: PeerHandler } | null = null;
  const handler = (): PeerHandler | null => {
    const n = node;
    if (n === null) return null;
    if (handlerOfNode?.node !== n) handlerOfNode = { node: n, handler: peerHandlerOf(n) };
    return handlerOfNode.handler;
  };
  const peerHandlerOf = (n: EtcdNode): PeerHandler => {
    return {
      clusterId: () => n.clusterId,
      memberId: () => n.memberId,
      members: () => n.memberInfos(),
      isRemoved: (id) => n.isRemovedMember(id),
      step: (m) => n.step(m),
      receiveSnapshot: (m, size, chunks) => n.receiveSnapshot(m, size, chunks),
      reportUnreachable: (id) => n.reportUnreachable(id),
      reportSnapshot: (id, ok) => n.reportSnapshot(id, ok),
      reportPeerDown: (id) => n.reportPeerDown(id),
      promote: async (id) => {
        await n.memberPromote(id);
      },
      leaseRenew: (id) => n.leaseRenewLocal(id),
      hashKV: async (revision) => {
        const r = await n.hashKV(create(HashKVRequestSchema, { revision }));
        return { hash: r.hash, revision: r.header!.revision, compactRevision: r.compactRevision };
      },
      leaseTimeToLive: async (id) => {
        const r = await n.leaseTimeToLiveLocal(
          create(LeaseTimeToLiveRequestSchema, { ID: id, keys: true }),
        );
        return r.TTL === -1n ? null : { ttl: r.TTL, grantedTtl: r.grantedTTL, keys: r.keys };
      },
      peerUrls: () => config.initialAdvertisePeerUrls,
      learnSender: (id, urls) => {
        if (id !== n.memberId && !n.isRemovedMember(id)) transport.addRemote(id, urls);
      },
    };
  };
  const transport = new PeerTransport(handler, logger, peerTls);
  // Follower → leader lease calls, on one multiplexed stream per leader.
  const calls = new PeerCalls(handler, peerTls);
  const initializedBefore = await EtcdNode.isInitialized(config, disk);
  let join: { clusterId: bigint; memberId: bigint } | undefined;
  if (config.initialClusterState === "existing" && !(await EtcdNode.isInitialized(config, disk))) {
    const joined = await joinExistingCluster(config, peerTls);
    join = { clusterId: joined.clusterId, memberId: joined.memberId };
    // The log will tell this member who its peers are, but it must reach them to receive it.
    for (const m of joined.members) {
      if (m.id !== joined.memberId) transport.addPeer(m.id, m.peerUrls);
    }
  }
  if (
    config.initialClusterState === "new" && !(await EtcdNode.isInitialized(config, disk)) &&
    parseInitialCluster(config.initialCluster).length > 1
  ) {
    await refuseIfBootstrapped(config, peerTls);
  }
  let tokens;
  try {
    tokens = await createTokenProvider({
      authToken: config.authToken,
      authTokenTtlSeconds: config.authTokenTtlSeconds,
      waitApplied: (index) => node === null ? Promise.resolve(false) : node.waitApplied(index),
      logger,
    });
  } catch (e) {
    logger.warn("etcdserver/server.go:573", "failed to create token provider", {
      error: (e as Error).message,
    });
    throw e;
  }
  // bcrypt runs in worker threads, created on first use (a member without auth starts none).
  const hasher = new WorkerPasswordHasher();
  const walSegmentBytes = config.walSegmentBytes ?? walSegmentBytesFromEnv();
  const opened = await EtcdNode.open({ ...config, walSegmentBytes }, disk, logger, {
    auth: { tokens, hasher, bcryptCost: config.bcryptCost, logger },
    transport,
    nowMs: () => Date.now(),
    monotonicMs: () => performance.now(),
    defer: (run) => setImmediate(run),
    pause: (() => {
      const slicer = new Slicer();
      return () => slicer.pause();
    })(),
    pacedPause: (() => {
      const slicer = new Slicer(PACED_SLICE_MS);
      return () => slicer.pause();
    })(),
    // A follower's snapshot written by a worker from the store's files (the event loop only
    // hands it to the socket); a store in memory is encoded on the event loop.
    snapshotBody: async (view, head) => {
      const body = await workerSnapshotBody(
        view,
        head,
        (e) =>
          logger.warn("detcd/snapshot_writer.ts", "snapshot worker failed to start", {
            error: e instanceof Error ? e.message : String(e),
          }),
      );
      if (body !== null) {
        logger.info("detcd/snapshot_writer.ts", "a worker writes the snapshot", {
          "snapshot-size": body.size,
        });
      }
      return body;
    },
    seed: Math.floor(Math.random() * 2 ** 32),
    join,
    onRemoved: options.onRemoved,
    onFatal: options.onFatal,
    forwardPromote: (leader, id) => {
      const peerUrls = node?.memberInfos().find((m) => m.id === leader)?.peerUrls ?? [];
      return calls.promote(peerUrls, id, 5000);
    },
    forwardLeaseRenew: (leader, id) => {
      const peerUrls = node?.memberInfos().find((m) => m.id === leader)?.peerUrls ?? [];
      return calls.renewLease(peerUrls, id, 5000);
    },
    forwardLeaseTimeToLive: async (leader, req) => {
      const peerUrls = node?.memberInfos().find((m) => m.id === leader)?.peerUrls ?? [];
      const t = await calls.leaseTimeToLive(peerUrls, req.ID, 5000);
      return create(LeaseTimeToLiveResponseSchema, {
        ID: req.ID,
        TTL: t.ttl,
        grantedTTL: t.ttl === -1n ? 0n : t.grantedTtl,
        keys: req.keys ? t.keys : [],
      });
    },
  });
  node = opened;
  const fetchHashKV = (url: string, revision: bigint) =>
    fetchPeerHashKV(url, revision, opened.requestTimeoutMs, peerTls);
  if (config.initialCorruptCheck && initializedBefore) {
    // Before this member serves peers or clients, as etcd's CheckInitialHashKV.
    try {
      await checkInitialHashKV(opened, fetchHashKV, logger, opened.requestTimeoutMs);
    } catch (e) {
      await opened.stop().catch(() => {});
      transport.close();
      calls.close();
      hasher.close();
      throw e;
    }
  }
  const ticker = setInterval(() => opened.tick(), opened.heartbeatIntervalMs);
  const stopIdleTrim = startIdleTrim(
    { revision: () => opened.revision, calls: callsStartedTotal },
    (ms, revision) =>
      logger.debug(
        "server/idle_trim.ts",
        "gave the C heap's free memory back after writes stopped",
        {
          took: `${ms.toFixed(1)}ms`,
          revision,
        },
      ),
  );
  const stopSnapshotStandby = startSnapshotStandby({
    revision: () => opened.revision,
    calls: callsStartedTotal,
    keyCount: () => opened.keyCount,
  });
  const stopCorruptionMonitor = (config.corruptCheckTimeMs ?? 0) > 0
    ? startCorruptionMonitor(opened, config.corruptCheckTimeMs!, fetchHashKV, logger)
    : null;
  const compactor = startCompactor(opened, compactionMode, compactionRetention, logger, {
    revisionIntervalMs: revisionCompactionIntervalMs(),
  });
  if (config.metrics === "extensive") enableHandlingTimeHistogram();
  const table = etcdServices(opened, {
    maxRequestBytes: config.maxRequestBytes,
    progressNotifyIntervalMs: config.watchProgressNotifyIntervalMs,
    electionTimeoutMs: opened.electionTimeoutMs,
  }, logger);
  const webConsole = config.webConsole ?? true;
  if (webConsole) {
    addConsoleServices(opened, table, (url) => fetchPeerVersion(url, 1000, peerTls));
  }
  const routes = http1Routes(opened, { webConsole });
  const servers: net.Server[] = [];
  const pools: WorkerPool[] = [];
  const clientAddresses: string[] = [];
  const secureAddresses: boolean[] = [];
  let peers: { close(): void } | null = null;
  const shutdown = async () => {
    stopIdleTrim();
    stopSnapshotStandby();
    compactor?.stop();
    stopCorruptionMonitor?.();
    for (const s of servers) s.close();
    for (const p of pools) p.stop();
    // The node still ticks and talks to peers while it hands leadership over.
    await opened.stop();
    clearInterval(ticker);
    peers?.close();
    transport.close();
    calls.close();
    hasher.close();
  };
  try {
    peers = await listenPeers(config.listenPeerUrls, handler, logger, peerTls);
    await opened.waitReady();
    if (clientTls !== null) {
      const flags = config.clientTls!;
      logger.info("embed/etcd.go:719", "starting with client TLS", {
        "tls-info":
          `cert = ${flags.certFile}, key = ${flags.keyFile}, trusted-ca = ${flags.trustedCaFile}, client-cert-auth = ${flags.clientCertAuth}, crl-file = ${flags.crlFile}`,
        "cipher-suites": config.cipherSuites ? config.cipherSuites.split(",") : [],
      });
    }
    logger.info("embed/etcd.go:247", "now serving peer/client/metrics", {
      "local-member-id": idHex(opened.memberId),
      "initial-advertise-peer-urls": config.initialAdvertisePeerUrls,
      "listen-peer-urls": config.listenPeerUrls,
      "advertise-client-urls": config.advertiseClientUrls,
      "listen-client-urls": config.listenClientUrls,
      "listen-metrics-urls": config.listenMetricsUrls ?? [],
    });
    for (const url of config.listenMetricsUrls ?? []) {
      servers.push(await listenMetrics(url, routes, clientTls));
    }
    // An address listed as both http:// and https:// is one port speaking both, as in etcd.
    const plainHosts = new Set(
      config.listenClientUrls.filter((u) => u.startsWith("http://")).map((u) => new URL(u).host),
    );
    const secureHosts = new Set(
      config.listenClientUrls.filter((u) => u.startsWith("https://")).map((u) => new URL(u).host),
    );
    for (const url of config.listenClientUrls) {
      const { host, port } = hostPort(url);
      const maxRecvBytes = config.maxRequestBytes + GRPC_OVERHEAD_BYTES;
      const secure = url.startsWith("https://");
      const both = plainHosts.has(new URL(url).host) && secureHosts.has(new URL(url).host);
      if (both && !secure) continue; // served by its https:// URL's listener
      // TLS connections are served on the main thread (client workers carry plain ports only).
      if (clientWorkers > 0 && !secure) {
        const pool = await WorkerPool.start({
          count: clientWorkers,
          host,
          port,
          maxRecvBytes,
          table,
          http1Routes: routes,
          logger,
          logFormat: config.logger,
          logLevel: config.logLevel,
        });
        pools.push(pool);
        clientAddresses.push(`${host}:${pool.port}`);
        secureAddresses.push(false);
        continue;
      }
      const server = await listenClients({
        host,
        port,
        table,
        http1Routes: routes,
        maxRecvBytes,
        logger,
        tls: secure ? clientTls! : undefined,
        alsoPlain: both,
        authEnabled: () => opened.auth.store.enabled,
      });
      servers.push(server);
      const address = `${host}:${(server.address() as net.AddressInfo).port}`;
      if (both) {
        clientAddresses.push(address);
        secureAddresses.push(false);
      }
      clientAddresses.push(address);
      secureAddresses.push(secure);
    }
  } catch (e) {
    await shutdown();
    throw e;
  }
  logger.info("embed/serve.go:97", "ready to serve client requests");
  clientAddresses.forEach((address, i) => {
    if (secureAddresses[i]) {
      logger.info("embed/serve.go:201", "serving client traffic securely", { address });
    } else {
      logger.info(
        "embed/serve.go:145",
        "serving client traffic insecurely; this is strongly discouraged!",
        { address },
      );
    }
  });
  return { node: opened, clientAddresses, stop: shutdown };
}

/**
 * The client port's TLS material, read once at start (null when no client URL is https://),
 * with etcd's checks and warnings (embed/etcd.go configureClientListeners).
 */
async function loadClientTls(config: ServerConfig, logger: Logger): Promise<ClientTls | null> {
  const flags = config.clientTls === undefined ? undefined : { ...config.clientTls };
  if (flags?.autoTls) {
    if (flags.certFile !== "" || flags.keyFile !== "") {
      logger.warn("embed/config.go:784", "ignoring client auto TLS since certs given");
    } else if (config.listenClientUrls.some((u) => u.startsWith("https://"))) {
      const made = await selfCert(
        `${config.dataDir}/fixtures/client`,
        config.listenClientUrls,
        selfCertLogger(logger),
      );
      flags.certFile = made.certFile;
      flags.keyFile = made.keyFile;
    }
  }
  const hasCert = flags !== undefined && (flags.certFile !== "" || flags.keyFile !== "");
  for (const url of config.listenClientUrls) {
    const scheme = new URL(url).protocol;
    if (scheme === "http:") {
      if (hasCert) {
        logger.warn(
          "embed/etcd.go:625",
          "scheme is HTTP while key and cert files are present; ignoring key and cert files",
          { "client-url": url },
        );
      }
      if (flags?.clientCertAuth) {
        logger.warn(
          "embed/etcd.go:632",
          "scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL",
          { "client-url": url },
        );
      }
    } else if (scheme === "https:") {
      if (!hasCert) {
        throw new Error(
          `TLS key/cert (--cert-file, --key-file) must be provided for client url ${url} with HTTPS scheme`,
        );
      }
    } else {
      throw new Error(`detcd does not serve ${scheme} URLs: ${url}`);
    }
  }
  const secure = config.listenClientUrls.filter((u) => u.startsWith("https://"));
  if (secure.length === 0 || flags === undefined) return null;
  const read = async (flag: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new Error(`${flag} ${path}: ${(e as Error).message}`);
    }
  };
  return {
    cert: await read("--cert-file", flags.certFile),
    key: await read("--key-file", flags.keyFile),
    ca: flags.trustedCaFile !== ""
      ? await read("--trusted-ca-file", flags.trustedCaFile)
      : undefined,
    // Read once now so that a missing list fails at start; connections read it again each time.
    crlFile: flags.crlFile !== ""
      ? (await read("--client-crl-file", flags.crlFile), flags.crlFile)
      : undefined,
    clientCertAuth: flags.clientCertAuth,
  };
}

/**
 * The WAL's segment size (etcd: 64 MiB, fixed; detcd: DEFAULT_SEGMENT_BYTES). DETCD_WAL_SEGMENT_BYTES
 * makes it small so that real-process tests see segments roll (not an etcd setting).
 */
function walSegmentBytesFromEnv(): number | undefined {
  const v = Number(Deno.env.get("DETCD_WAL_SEGMENT_BYTES") ?? "");
  return Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

/**
 * etcd checks revision-mode retention every 5 minutes; DETCD_REVISION_COMPACTION_INTERVAL_MS
 * shortens that for tests (not an etcd setting).
 */
function revisionCompactionIntervalMs(): number | undefined {
  const v = Number(Deno.env.get("DETCD_REVISION_COMPACTION_INTERVAL_MS") ?? "");
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

/**
 * A new member with an empty data dir whose peers already know it as started (it has client URLs
 * there): its data dir was lost, and starting it as new would fork the cluster. etcd refuses with
 * "member <id> has already been bootstrapped".
 */
async function refuseIfBootstrapped(
  config: ServerConfig,
  peerTls: PeerTls | null,
): Promise<void> {
  const initial = parseInitialCluster(config.initialCluster);
  const self = memberId(config.initialAdvertisePeerUrls, config.initialClusterToken);
  const urls = initial.filter((m) => m.name !== config.name).flatMap((m) => m.peerUrls).sort();
  for (const url of urls) {
    try {
      const remote = await fetchRemoteCluster(url, 1000, peerTls);
      const known = remote.members.find((m) => m.id === self);
      if (known && known.clientUrls.length > 0) {
        throw new Error(`member ${idHex(self)} has already been bootstrapped`);
      }
      return;
    } catch (e) {
      if (e instanceof Error && e.message.endsWith("has already been bootstrapped")) throw e;
      // peer not up yet (the usual case when a cluster starts): nothing to check there
    }
  }
}

/**
 * `--initial-cluster-state existing` on an empty data dir: ask the other members listed in
 * --initial-cluster for the cluster, check that --initial-cluster describes it, and take the
 * member ID the cluster gave the peer URLs of this member's entry there (etcd's
 * ValidateClusterAndAssignIDs).
 */
async function joinExistingCluster(
  config: ServerConfig,
  peerTls: PeerTls | null,
): Promise<{ clusterId: bigint; memberId: bigint; members: RemoteMember[] }> {
  const initial = parseInitialCluster(config.initialCluster);
  const urls = initial.filter((m) => m.name !== config.name).flatMap((m) => m.peerUrls).sort();
  let existing: { clusterId: bigint; members: RemoteMember[] } | null = null;
  for (const url of urls) {
    try {
      existing = await fetchRemoteCluster(url, 2000, peerTls);
      break;
    } catch {
      // try the next one
    }
  }
  if (existing === null) {
    throw new Error(
      "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs",
    );
  }
  const describe = () =>
    `{ClusterID:${idHex(existing!.clusterId)} Members:[${
      existing!.members.map((m) =>
        `&{ID:${idHex(m.id)} RaftAttributes:{PeerURLs:[${
          m.peerUrls.join(" ")
        }] IsLearner:${m.isLearner}} Attributes:{Name:${m.name} ClientURLs:[${
          m.clientUrls.join(" ")
        }]}}`
      ).join(" ")
    }] RemovedMemberIDs:[]}`;
  if (existing.members.length !== initial.length) {
    throw new Error(`error validating peerURLs ${describe()}: member count is unequal`);
  }
  const same = (a: readonly string[], b: readonly string[]) =>
    [...a].sort().join(",") === [...b].sort().join(",");
  for (const m of existing.members) {
    if (!initial.some((l) => same(l.peerUrls, m.peerUrls))) {
      throw new Error(
        `error validating peerURLs ${describe()}: PeerURLs: no match found for existing member ` +
          `(${idHex(m.id)}, [${m.peerUrls.join(" ")}]), last resolver error (<nil>)`,
      );
    }
  }
  // Like etcd, the member is the one whose peer URLs its own --initial-cluster entry names (what
  // `member add` printed), not its --initial-advertise-peer-urls, which are not checked on join.
  const own = initial.find((m) => m.name === config.name);
  if (!own) {
    throw new Error(
      `couldn't find local name "${config.name}" in the initial cluster configuration`,
    );
  }
  const self = existing.members.find((m) => same(m.peerUrls, own.peerUrls));
  if (!self) throw new Error(`member ${config.name} has no match in the existing cluster`);
  return { clusterId: existing.clusterId, memberId: self.id, members: existing.members };
}
