import * as net from "node:net";
import type { Logger } from "../core/log.ts";
import { clusterVersion, EtcdNode, idHex, serverVersion } from "../core/node/mod.ts";
import type { Disk } from "../core/storage/mod.ts";
import type { ServerConfig } from "./config.ts";
import { DenoDisk } from "./deno_disk.ts";
import { hostPort, type Http1Routes, listenClients, type PlainResponse } from "./listener.ts";
import { etcdServices } from "./services.ts";
import { WorkerPool } from "./worker_pool.ts";

/** etcd lets gRPC messages exceed --max-request-bytes by this much before gRPC itself refuses. */
export const grpcOverheadBytes = 512 * 1024;

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
export function http1Routes(node: EtcdNode): Http1Routes {
  const json = (body: unknown): PlainResponse => ({
    status: 200,
    contentType: "application/json",
    body: JSON.stringify(body),
  });
  return (path) => {
    switch (path) {
      case "/health":
        return json({ health: "true" });
      case "/version":
        return json({ etcdserver: serverVersion, etcdcluster: clusterVersion });
      case "/metrics": {
        const status = node.status();
        return {
          status: 200,
          contentType: "text/plain; version=0.0.4",
          body: [
            "# TYPE etcd_server_has_leader gauge",
            "etcd_server_has_leader 1",
            "# TYPE etcd_server_is_leader gauge",
            "etcd_server_is_leader 1",
            "# TYPE etcd_mvcc_db_total_size_in_bytes gauge",
            `etcd_mvcc_db_total_size_in_bytes ${status.dbSize}`,
            "# TYPE etcd_debugging_mvcc_current_revision gauge",
            `etcd_debugging_mvcc_current_revision ${node.revision}`,
            "# TYPE etcd_server_proposals_applied_total gauge",
            `etcd_server_proposals_applied_total ${status.raftAppliedIndex}`,
            "",
          ].join("\n"),
        };
      }
      default:
        return null;
    }
  };
}

/** Opens the member's data dir and starts serving clients (and holding the peer port). */
export async function startServer(
  config: ServerConfig,
  logger: Logger,
  disk: Disk = new DenoDisk(),
  options: { clientWorkers?: number } = {},
): Promise<RunningServer> {
  const clientWorkers = options.clientWorkers ?? defaultClientWorkers();
  for (const url of [...config.listenClientUrls, ...config.listenPeerUrls]) {
    if (!url.startsWith("http://")) {
      throw new Error(
        `detcd does not serve ${new URL(url).protocol} URLs yet (TLS is planned): ${url}`,
      );
    }
  }
  logger.info("embed/etcd.go:117", "configuring peer listeners", {
    "listen-peer-urls": config.listenPeerUrls,
  });
  logger.info("embed/etcd.go:127", "configuring client listeners", {
    "listen-client-urls": config.listenClientUrls,
  });
  const node = await EtcdNode.open(config, disk, logger);
  const table = etcdServices(node);
  const routes = http1Routes(node);
  const servers: net.Server[] = [];
  const pools: WorkerPool[] = [];
  const clientAddresses: string[] = [];
  try {
    for (const url of config.listenPeerUrls) {
      // Peers are not served yet (single member); holding the port keeps etcd's conflicts visible.
      const { host, port } = hostPort(url);
      const peer = net.createServer((s) => s.destroy());
      await new Promise<void>((resolve, reject) => {
        peer.once("error", reject);
        peer.listen(port, host, () => resolve());
      });
      servers.push(peer);
      logger.info("embed/etcd.go:587", "serving peer traffic", { address: `${host}:${port}` });
    }
    logger.info("embed/etcd.go:247", "now serving peer/client/metrics", {
      "local-member-id": idHex(node.memberId),
      "initial-advertise-peer-urls": config.initialAdvertisePeerUrls,
      "listen-peer-urls": config.listenPeerUrls,
      "advertise-client-urls": config.advertiseClientUrls,
      "listen-client-urls": config.listenClientUrls,
      "listen-metrics-urls": [],
    });
    for (const url of config.listenClientUrls) {
      const { host, port } = hostPort(url);
      const maxRecvBytes = config.maxRequestBytes + grpcOverheadBytes;
      if (clientWorkers > 0) {
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
        continue;
      }
      const server = await listenClients({
        host,
        port,
        table,
        http1Routes: routes,
        maxRecvBytes,
        logger,
      });
      servers.push(server);
      const address = server.address() as net.AddressInfo;
      clientAddresses.push(`${host}:${address.port}`);
    }
  } catch (e) {
    for (const s of servers) s.close();
    for (const p of pools) p.stop();
    await node.stop();
    throw e;
  }
  logger.info("embed/serve.go:97", "ready to serve client requests");
  for (const address of clientAddresses) {
    logger.info(
      "embed/serve.go:145",
      "serving client traffic insecurely; this is strongly discouraged!",
      {
        address,
      },
    );
  }
  return {
    node,
    clientAddresses,
    async stop() {
      for (const s of servers) s.close();
      for (const p of pools) p.stop();
      await node.stop();
    },
  };
}
