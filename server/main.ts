/**
 * `detcd`: an etcd 3.4-compatible member. Flags, ETCD_* variables and --config-file as etcd's.
 *
 *   deno run -A server/main.ts --name infra0 --data-dir infra0.etcd ...
 */
import { SERVER_VERSION } from "../core/node/mod.ts";
import { ConfigError, resolveConfig, toServerConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { startServer } from "./server.ts";
import { usage } from "./usage.ts";

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = await resolveConfig(Deno.args, Deno.env.toObject());
  } catch (e) {
    if (e instanceof ConfigError) {
      if (e.showUsage) {
        console.error(e.message);
        console.error(usage);
      } else {
        console.error(`etcdmain: error verifying flags, ${e.message}. See 'etcd --help'.`);
      }
      return e.exitCode;
    }
    throw e;
  }
  if (parsed.action === "help") {
    console.log(usage);
    return 0;
  }
  if (parsed.action === "version") {
    console.log(`etcd Version: ${SERVER_VERSION}`);
    console.log("Git SHA: detcd");
    console.log(`Go Version: deno ${Deno.version.deno}`);
    console.log(
      `Go OS/Arch: ${Deno.build.os}/${Deno.build.arch === "x86_64" ? "amd64" : Deno.build.arch}`,
    );
    return 0;
  }
  let config;
  try {
    config = toServerConfig(parsed.values);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`etcdmain: error verifying flags, ${e.message}. See 'etcd --help'.`);
      return e.exitCode;
    }
    throw e;
  }
  const logger = createLogger({ format: config.logger, level: config.logLevel });
  for (const used of parsed.envUsed) {
    logger.info("flags/flag.go:113", "recognized and used environment variable", {
      variable: used,
    });
  }
  for (const unknown of parsed.envUnknown) {
    logger.warn("flags/flag.go:105", "unrecognized environment variable", { environment: unknown });
  }
  logger.info("etcdmain/etcd.go:73", "Running: ", { args: ["detcd", ...Deno.args] });
  let running;
  try {
    running = await startServer(config, logger, undefined, {
      onRemoved: () => {
        logger.warn(
          "etcdserver/server.go:1182",
          "the member has been permanently removed from the cluster; shutting down",
        );
        // etcd exits once it applied its own removal; give the reply to the caller a moment.
        setTimeout(() => Deno.exit(0), 200);
      },
      // A broken invariant: the member already logged why and refuses everything; exit as etcd
      // panics (exit status 2), so a supervisor restarts it from its durable state.
      onFatal: () => Deno.exit(2),
    });
  } catch (e) {
    logger.error("etcdmain/etcd.go:271", "failed to start etcd", {
      error: e instanceof Error ? e.message : String(e),
    });
    return 1;
  }
  const server = running;
  return await new Promise<number>((resolve) => {
    const shutdown = (signal: Deno.Signal) => {
      logger.info("osutil/interrupt_unix.go:64", "received signal; shutting down", { signal });
      server.stop().then(() => resolve(0), () => resolve(1));
    };
    Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
  });
}

Deno.exit(await main());
