/**
 * A client worker: serves client connections on a port shared with the other workers
 * (SO_REUSEPORT) and forwards every call to the main thread, where the node is. HTTP/2 and
 * framing cost far more CPU than applying a request; this spreads them over the cores.
 */
/// <reference lib="deno.worker" />
import type { DescMethod } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { EtcdError, type GrpcCodeValue } from "../core/errors.ts";
import { type AnyMethod, type CallContext, type MethodTable, tokenOf } from "./grpc.ts";
import { listenClients, type PlainResponse } from "./listener.ts";
import { createLogger } from "./logger.ts";
import { etcdServiceDescriptors } from "./service_descriptors.ts";
import type {
  CallMessage,
  FromWorker,
  PlainMessage,
  ReplyMessage,
  ToWorker,
} from "./worker_protocol.ts";

const pending = new Map<number, { resolve: (r: ReplyMessage) => void }>();
let nextId = 1;
let outbox: (CallMessage | PlainMessage)[] = [];

function post(message: FromWorker): void {
  self.postMessage(message);
}

function flush(): void {
  const calls = outbox;
  outbox = [];
  post({ kind: "calls", calls });
}

function send(call: Omit<CallMessage, "id"> | Omit<PlainMessage, "id">): Promise<ReplyMessage> {
  const id = nextId++;
  if (outbox.length === 0) queueMicrotask(flush);
  outbox.push({ id, ...call } as CallMessage | PlainMessage);
  return new Promise((resolve) => pending.set(id, { resolve }));
}

async function remote(path: string, payload: Uint8Array, ctx: CallContext): Promise<Uint8Array> {
  const reply = await send({ path, payload, token: tokenOf(ctx) });
  if ("payload" in reply) return reply.payload;
  if ("code" in reply) throw EtcdError.fromStatus(reply.code as GrpcCodeValue, reply.message);
  throw new Error("unexpected reply");
}

function remoteTable(paths: string[]): MethodTable {
  const methods = new Map<string, DescMethod>();
  for (const service of etcdServiceDescriptors) {
    for (const m of service.methods as DescMethod[]) {
      methods.set(`/${service.typeName}/${m.name}`, m);
    }
  }
  const table: MethodTable = new Map();
  for (const path of paths) {
    const m = methods.get(path);
    if (!m) continue;
    const method: AnyMethod = {
      kind: "unary",
      input: m.input,
      output: m.output,
      raw: (payload, ctx) => remote(path, payload, ctx),
      // The Connect/gRPC-Web path hands us messages: encode, forward, decode.
      handle: async (req, ctx) =>
        fromBinary(m.output, await remote(path, toBinary(m.input, req), ctx)),
    };
    table.set(path, method);
  }
  return table;
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.kind === "replies") {
    for (const reply of message.replies) {
      const waiter = pending.get(reply.id);
      pending.delete(reply.id);
      waiter?.resolve(reply);
    }
    return;
  }
  const logger = createLogger({ format: message.logFormat, level: message.logLevel });
  try {
    const server = await listenClients({
      host: message.host,
      port: message.port,
      table: remoteTable(message.unaryPaths),
      http1Routes: async (plainPath, plainMethod) => {
        const reply = await send({ plainPath, plainMethod });
        return "plain" in reply ? reply.plain as PlainResponse | null : null;
      },
      maxRecvBytes: message.maxRecvBytes,
      logger,
      reusePort: true,
    });
    post({ kind: "ready", port: (server.address() as { port: number }).port });
  } catch (e) {
    post({ kind: "ready", error: e instanceof Error ? e.message : String(e) });
  }
};
