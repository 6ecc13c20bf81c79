import type { Logger } from "../core/log.ts";
import { invokeUnary, type MethodTable, toStatus } from "./grpc.ts";
import type { Http1Routes } from "./listener.ts";
import type { FromWorker, ReplyMessage, ToWorker, WorkerInit } from "./worker_protocol.ts";
import { noteCall } from "./grpc_metrics.ts";

/** Forwarded calls cannot be cancelled from the worker yet; handlers see a signal that never fires. */
const neverAborted = new AbortController().signal;

/** What the pool needs to start its workers. */
export interface WorkerPoolOptions {
  count: number;
  host: string;
  port: number;
  maxRecvBytes: number;
  table: MethodTable;
  http1Routes: Http1Routes;
  logger: Logger;
  logFormat: WorkerInit["logFormat"];
  logLevel: WorkerInit["logLevel"];
}

/**
 * Client workers sharing one client port, and the main-thread end of their calls: decode,
 * handle on the node, encode, reply. Replies produced in the same turn go back in one message.
 */
export class WorkerPool {
  #workers: Worker[] = [];
  /** The client port the workers share. */
  port: number;
  readonly #options: WorkerPoolOptions;

  private constructor(options: WorkerPoolOptions) {
    this.#options = options;
    this.port = options.port;
  }

  /**
   * Starts the workers and resolves once every one of them listens. The first binds first, so
   * that a request for port 0 gives all of them the same port.
   */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    try {
      pool.port = await pool.#spawn(options.port);
      await Promise.all(Array.from({ length: options.count - 1 }, () => pool.#spawn(pool.port)));
    } catch (e) {
      pool.stop();
      throw e;
    }
    return pool;
  }

  stop(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }

  #spawn(port: number): Promise<number> {
    const options = this.#options;
    const worker = new Worker(new URL("./client_worker.ts", import.meta.url).href, {
      type: "module",
      name: `client-${this.#workers.length}`,
    });
    this.#workers.push(worker);
    let outbox: ReplyMessage[] = [];
    const flush = () => {
      const replies = outbox;
      outbox = [];
      worker.postMessage({ kind: "replies", replies } satisfies ToWorker);
    };
    const reply = (r: ReplyMessage) => {
      if (outbox.length === 0) queueMicrotask(flush);
      outbox.push(r);
    };
    return new Promise((resolve, reject) => {
      worker.onerror = (e) => {
        e.preventDefault();
        options.logger.error("detcd/worker_pool.ts", "client worker failed", { error: e.message });
        reject(new Error(e.message));
      };
      worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.kind === "ready") {
          if (message.error) reject(new Error(message.error));
          else resolve(message.port ?? port);
          return;
        }
        for (const call of message.calls) {
          noteCall(); // the member's measure of quiet counts these too (server/idle_trim.ts)
          if ("plainPath" in call) {
            Promise.resolve(options.http1Routes(call.plainPath, call.plainMethod)).then(
              (plain) => reply({ id: call.id, plain }),
              () => reply({ id: call.id, plain: null }),
            );
            continue;
          }
          const method = options.table.get(call.path);
          if (!method || method.kind !== "unary") {
            reply({ id: call.id, code: 12, message: `unknown method ${call.path}` });
            continue;
          }
          const headers = call.token === undefined ? {} : { token: call.token };
          const ctx = { headers, signal: neverAborted };
          try {
            const result = invokeUnary(method, call.payload, ctx);
            if (result instanceof Promise) {
              result.then(
                (payload) => reply({ id: call.id, payload }),
                (e) => reply({ id: call.id, ...toStatus(e) }),
              );
            } else {
              reply({ id: call.id, payload: result });
            }
          } catch (e) {
            reply({ id: call.id, ...toStatus(e) });
          }
        }
      };
      worker.postMessage(
        {
          kind: "init",
          host: options.host,
          port,
          maxRecvBytes: options.maxRecvBytes,
          unaryPaths: [...options.table].filter(([, m]) => m.kind === "unary").map(([p]) => p),
          logFormat: options.logFormat,
          logLevel: options.logLevel,
        } satisfies ToWorker,
      );
    });
  }
}
