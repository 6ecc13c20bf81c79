import type { DescMethod, Message } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { type CallContext, type MethodTable, type PeerInfo, toStatus } from "./grpc.ts";
import { etcdServiceDescriptors } from "./service_descriptors.ts";
import { Console } from "../gen/detcdpb/console_pb.ts";

/**
 * The Connect protocol and gRPC-Web, for browsers and Connect clients, over connect-node's
 * adapter: the same method table as the lean gRPC path, so both always answer the same.
 */

function toConnectError(e: unknown): ConnectError {
  const s = toStatus(e);
  return new ConnectError(s.message, s.code as number as Code);
}

/** The verified client certificate's common name of the request's connection (see CallContext). */
const kTlsCommonName = createContextKey<string | undefined>(undefined);

function callContext(ctx: HandlerContext): CallContext {
  const headers: http2.IncomingHttpHeaders = {};
  ctx.requestHeader.forEach((v, k) => (headers[k] = v));
  return { headers, signal: ctx.signal, tlsCommonName: ctx.values.get(kTlsCommonName) };
}

/** Registers every method of the table that belongs to a known service descriptor. */
function register(router: ConnectRouter, table: MethodTable): void {
  for (const service of [...etcdServiceDescriptors, Console]) {
    for (const method of service.methods as DescMethod[]) {
      const impl = table.get(`/${service.typeName}/${method.name}`);
      if (!impl) continue;
      if (impl.kind === "unary") {
        router.rpc(
          method,
          (async (req: Message, ctx: HandlerContext) => {
            try {
              return await impl.handle(req, callContext(ctx));
            } catch (e) {
              throw toConnectError(e);
            }
          }) as never,
        );
      } else {
        router.rpc(
          method,
          async function* (input: AsyncIterable<Message> | Message, ctx: HandlerContext) {
            // A server-streaming call's handler is given its one request, the others a stream.
            const requests = method.methodKind === "server_streaming"
              ? (async function* () {
                yield input as Message;
              })()
              : input as AsyncIterable<Message>;
            const queue: Message[] = [];
            let wake: (() => void) | null = null;
            let done = false;
            let failure: unknown = null;
            impl.handle(requests, (res) => {
              queue.push(res);
              wake?.();
              return Promise.resolve();
            }, callContext(ctx)).then(
              () => (done = true),
              (e) => (failure = e),
            ).finally(() => wake?.());
            while (true) {
              if (queue.length > 0) {
                yield queue.shift()!;
                continue;
              }
              if (failure !== null) throw toConnectError(failure);
              if (done) return;
              await new Promise<void>((r) => (wake = r));
              wake = null;
            }
          } as never,
        );
      }
    }
  }
}

/**
 * An HTTP/1.1 request handler serving Connect and gRPC-Web for the table; `peerOf` tells what the
 * request's connection knows of its client (a TLS client certificate's common name).
 */
export function connectHandler(
  table: MethodTable,
  maxRecvBytes: number,
  fallback: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  peerOf?: (req: http.IncomingMessage) => PeerInfo | undefined,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return connectNodeAdapter({
    contextValues: (req) =>
      createContextValues().set(
        kTlsCommonName,
        peerOf?.(req as http.IncomingMessage)?.tlsCommonName,
      ),
    routes: (router) => register(router, table),
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: maxRecvBytes,
    fallback: fallback as never,
  }) as (req: http.IncomingMessage, res: http.ServerResponse) => void;
}
