/**
 * The Connect protocol on server/h2 streams (what a browser on a TLS port speaks): a unary call's
 * answer, and its errors as Connect maps them (HTTP status and the code's name in a JSON body);
 * a server stream's end-of-stream envelope carrying the error.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import * as net from "node:net";
import { RangeRequestSchema, RangeResponseSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { EtcdError, GrpcCode } from "../core/errors.ts";
import type { MethodTable, StreamMethod, UnaryMethod } from "./grpc.ts";
import { handleConnectStream, isConnectRequest } from "./connect_h2.ts";
import { H2Connection } from "./h2/mod.ts";

async function call(
  port: number,
  path: string,
  contentType: string,
  body: Uint8Array,
): Promise<{ status: number; type: string; body: Uint8Array }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const req = session.request({ ":method": "POST", ":path": path, "content-type": contentType });
    req.end(body);
    const chunks: Uint8Array[] = [];
    const headers = await new Promise<http2.IncomingHttpHeaders>((r) => req.on("response", r));
    req.on("data", (c: Uint8Array) => chunks.push(c));
    await new Promise((r) => req.on("end", r));
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return { status: Number(headers[":status"]), type: String(headers["content-type"]), body: all };
  } finally {
    session.close();
  }
}

Deno.test("connect over server/h2: a unary answer, errors as Connect maps them, a stream's end", async () => {
  const range: UnaryMethod<typeof RangeRequestSchema, typeof RangeResponseSchema> = {
    kind: "unary",
    input: RangeRequestSchema,
    output: RangeResponseSchema,
    handle(req) {
      if (req.limit === 7n) throw new EtcdError(GrpcCode.PermissionDenied, "no, not you");
      return create(RangeResponseSchema, { count: req.limit + 1n });
    },
  };
  const watch: StreamMethod<typeof RangeRequestSchema, typeof RangeResponseSchema> = {
    kind: "stream",
    input: RangeRequestSchema,
    output: RangeResponseSchema,
    async handle(requests, send) {
      for await (const req of requests) {
        await send(create(RangeResponseSchema, { count: req.limit }));
      }
      throw new EtcdError(GrpcCode.Unavailable, "gone");
    },
  };
  const table: MethodTable = new Map<
    string,
    UnaryMethod<never, never> | StreamMethod<never, never>
  >(
    [["/t.T/Range", range as never], ["/t.T/Watch", watch as never]],
  );
  const server = net.createServer((socket) =>
    new H2Connection(socket, {
      onStream: (s) => {
        assert(isConnectRequest(s.headers), "a Connect request");
        handleConnectStream(table, 1 << 20, s, {});
      },
    })
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const dec = new TextDecoder();
  const enc = new TextEncoder();
  try {
    const ok = await call(
      port,
      "/t.T/Range",
      "application/json",
      enc.encode(JSON.stringify({ limit: "41" })),
    );
    assertEquals([ok.status, JSON.parse(dec.decode(ok.body))], [200, { count: "42" }]);
    const denied = await call(
      port,
      "/t.T/Range",
      "application/proto",
      toBinary(RangeRequestSchema, create(RangeRequestSchema, { limit: 7n })),
    );
    assertEquals(
      [denied.status, denied.type, JSON.parse(dec.decode(denied.body))],
      [403, "application/json", { code: "permission_denied", message: "no, not you" }],
    );
    const missing = await call(port, "/t.T/Nope", "application/json", enc.encode("{}"));
    assertEquals([missing.status, JSON.parse(dec.decode(missing.body)).code], [
      501,
      "unimplemented",
    ]);
    // A server stream: one message envelope, then the end-of-stream envelope (flag 2) with the error.
    const request = enc.encode(JSON.stringify({ limit: "5" }));
    const framed = new Uint8Array(5 + request.length);
    new DataView(framed.buffer).setUint32(1, request.length);
    framed.set(request, 5);
    const streamed = await call(port, "/t.T/Watch", "application/connect+json", framed);
    assertEquals(streamed.status, 200);
    const view = new DataView(streamed.body.buffer, streamed.body.byteOffset);
    const first = view.getUint32(1);
    assertEquals(JSON.parse(dec.decode(streamed.body.subarray(5, 5 + first))), { count: "5" });
    assertEquals(streamed.body[5 + first], 2);
    assertEquals(JSON.parse(dec.decode(streamed.body.subarray(10 + first))), {
      error: { code: "unavailable", message: "gone" },
    });
  } finally {
    server.close();
  }
});
