/**
 * The gRPC layer on server/h2 streams: server streaming with back-pressure (a client that does
 * not read holds the handler's sends), client cancellation reaching the handler's AbortSignal.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import * as net from "node:net";
import { RangeRequestSchema, RangeResponseSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import { assert } from "../core/testing.ts";
import {
  type CallContext,
  handleGrpcStream,
  type MethodTable,
  type StreamMethod,
  type UnaryMethod,
} from "./grpc.ts";
import { encodeGrpcFrame } from "../core/wire/mod.ts";
import { H2Connection } from "./h2/mod.ts";
import { inTime } from "./_testing.ts";

Deno.test("grpc over server/h2: streaming back-pressure and cancellation", async () => {
  let sent = 0;
  let aborted = false;
  let finished: () => void = () => {};
  const done = new Promise<void>((r) => (finished = r));
  const method: StreamMethod<typeof RangeRequestSchema, typeof RangeResponseSchema> = {
    kind: "stream",
    input: RangeRequestSchema,
    output: RangeResponseSchema,
    async handle(requests, send, ctx) {
      ctx.signal.addEventListener("abort", () => (aborted = true));
      for await (const req of requests) {
        const count = Number(req.limit);
        for (let i = 0; i < count && !ctx.signal.aborted; i++) {
          await send(
            create(RangeResponseSchema, {
              count: BigInt(i),
              more: true,
              kvs: [{ key: new Uint8Array(1000) }],
            }),
          );
          sent++;
        }
      }
      finished();
    },
  };
  const table: MethodTable = new Map([["/t.T/S", method]]);
  const { session, server } = await serveGrpc(table, { initialWindowSize: 65535 });
  try {
    const req = session.request({
      ":method": "POST",
      ":path": "/t.T/S",
      "content-type": "application/grpc",
    });
    req.write(
      encodeGrpcFrame(
        toBinary(RangeRequestSchema, create(RangeRequestSchema, { limit: 100_000n })),
      ),
    );
    let received = 0;
    req.on("data", () => received++);
    req.pause();
    await new Promise((r) => setTimeout(r, 300));
    // The client reads nothing: the handler is held after about one window of messages.
    assert(sent > 10 && sent < 5000, `sent ${sent} while the client read nothing`);
    const held = sent;
    await new Promise((r) => setTimeout(r, 200));
    assert(sent - held < 100, `still sending: ${held} -> ${sent}`);
    req.resume();
    await new Promise((r) => setTimeout(r, 300));
    assert(sent > held + 100, `did not resume: ${held} -> ${sent}`);
    assert(received > 0);
    // Cancel: RST_STREAM(CANCEL) reaches the handler's signal and it returns.
    req.close(http2.constants.NGHTTP2_CANCEL);
    await done;
    assert(aborted);
    assert(sent < 100_000);
  } finally {
    session.destroy();
    server.close();
  }
});

Deno.test("grpc over server/h2: unary calls' contexts share one shape; the signal is made on demand", async () => {
  // Each call's context once was an object literal with a getter: a new closure and hidden class
  // per call, which kept every call's stream alive through young-generation collections (they
  // were all promoted). The getter now lives on a class's prototype.
  const contexts: CallContext[] = [];
  const method: UnaryMethod<typeof RangeRequestSchema, typeof RangeResponseSchema> = {
    kind: "unary",
    input: RangeRequestSchema,
    output: RangeResponseSchema,
    handle(req, ctx) {
      contexts.push(ctx);
      if (req.limit === 2n) assert(!ctx.signal.aborted, "a live call's signal is not aborted");
      return create(RangeResponseSchema, { count: req.limit });
    },
  };
  const table: MethodTable = new Map([["/t.T/U", method]]);
  const { session, server } = await serveGrpc(table);
  try {
    for (const limit of [1n, 2n]) {
      const req = session.request({
        ":method": "POST",
        ":path": "/t.T/U",
        "content-type": "application/grpc",
        "x-call": String(limit),
      });
      req.end(encodeGrpcFrame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { limit }))));
      req.resume();
      await new Promise((r) => req.on("close", r));
    }
    assert(contexts.length === 2, `${contexts.length} calls handled`);
    const [a, b] = contexts;
    assert(a.headers["x-call"] === "1" && b.headers["x-call"] === "2", "each call's headers");
    for (const ctx of contexts) {
      assert(
        Object.getOwnPropertyDescriptor(ctx, "signal") === undefined,
        "the signal getter is the prototype's, not one closure per call",
      );
    }
    assert(Object.getPrototypeOf(a) === Object.getPrototypeOf(b), "one shape for every call");
    // The first call's stream has closed: its signal, asked for now, is aborted already.
    assert(a.signal.aborted, "a finished call's signal reads as aborted");
  } finally {
    session.destroy();
    server.close();
  }
});

Deno.test("grpc over server/h2: a stream's signal is made only when its handler asks (keep-alive per stream)", async () => {
  // etcd's KeepAliveOnce opens a LeaseKeepAlive stream per renewal. Each stream once made an
  // AbortController and aborted it when the stream closed: a DOMException with a stack trace per
  // renewal, 12.6% of a member's CPU under ebench's keep-alive load.
  const contexts: CallContext[] = [];
  const method: StreamMethod<typeof RangeRequestSchema, typeof RangeResponseSchema> = {
    kind: "stream",
    input: RangeRequestSchema,
    output: RangeResponseSchema,
    async handle(requests, send, ctx) {
      contexts.push(ctx);
      for await (const req of requests) {
        await send(create(RangeResponseSchema, { count: req.limit }));
      }
    },
  };
  const table: MethodTable = new Map([["/t.T/S", method]]);
  const { session, server } = await serveGrpc(table);
  const Real = globalThis.AbortController;
  let made = 0;
  globalThis.AbortController = class extends Real {
    constructor() {
      super();
      made++;
    }
  };
  try {
    for (const limit of [1n, 2n, 3n]) {
      const req = session.request({
        ":method": "POST",
        ":path": "/t.T/S",
        "content-type": "application/grpc",
      });
      req.write(
        encodeGrpcFrame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { limit }))),
      );
      // One response, then the client goes away as KeepAliveOnce does.
      await inTime(new Promise((r) => req.once("data", r)), "no answer in 10 s");
      req.close(http2.constants.NGHTTP2_CANCEL);
      await new Promise((r) => req.on("close", r));
    }
    await new Promise((r) => setTimeout(r, 50));
    assert(contexts.length === 3, `${contexts.length} streams handled`);
    assert(made === 0, `${made} AbortControllers made for streams that never asked for a signal`);
    // Asked for after the stream closed, the signal reads as aborted.
    assert(contexts[0].signal.aborted, "a closed stream's signal is aborted");
  } finally {
    globalThis.AbortController = Real;
    session.destroy();
    server.close();
  }
});

/** A gRPC server of `table` on our HTTP/2 connection, on a loopback port, and a client session. */
async function serveGrpc(
  table: MethodTable,
  settings?: http2.Settings,
): Promise<{ session: http2.ClientHttp2Session; server: net.Server }> {
  const server = net.createServer((socket) =>
    new H2Connection(socket, {
      onStream: (s) => handleGrpcStream(table, { maxRecvBytes: 1 << 20 }, s),
    })
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return { session: http2.connect(`http://127.0.0.1:${port}`, { settings }), server };
}
