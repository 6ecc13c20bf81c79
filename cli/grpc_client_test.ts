import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  decodeGrpcMessage,
  endpointScheme,
  FrameDecoder,
  GrpcConnection,
  GrpcError,
  hostOf,
  parseEndpoint,
} from "./grpc_client.ts";
import { processCreds } from "./etcd_client.ts";
import { encodeGrpcFrame } from "../core/wire/mod.ts";
import {
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  KV,
  PutRequestSchema,
  RangeRequestSchema,
  RangeResponseSchema,
  Watch,
  WatchRequestSchema,
  WatchResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";

const enc = new TextEncoder();

Deno.test("FrameDecoder reassembles length-prefixed messages across chunk boundaries", () => {
  const a = encodeGrpcFrame(enc.encode("hello"));
  const b = encodeGrpcFrame(new Uint8Array(0));
  const all = new Uint8Array([...a, ...b]);
  const d = new FrameDecoder();
  assert.deepEqual(d.push(all.subarray(0, 3)), []);
  const got = d.push(all.subarray(3));
  assert.deepEqual(got.map((m) => new TextDecoder().decode(m)), ["hello", ""]);
  assert.equal(d.hasPartial(), false);
  assert.throws(() => new FrameDecoder().push(new Uint8Array([1, 0, 0, 0, 0])), GrpcError);
});

Deno.test("grpc-message is percent-decoded as UTF-8", () => {
  assert.equal(
    decodeGrpcMessage("etcdserver: key is not provided"),
    "etcdserver: key is not provided",
  );
  assert.equal(decodeGrpcMessage("a%20b%C3%A9%25"), "a bé%");
});

Deno.test("parseEndpoint accepts host:port and http(s) URLs", () => {
  assert.deepEqual(parseEndpoint("127.0.0.1:2379"), { authority: "127.0.0.1:2379", secure: false });
  assert.deepEqual(parseEndpoint("http://127.0.0.1:2379"), {
    authority: "127.0.0.1:2379",
    secure: false,
  });
  assert.deepEqual(parseEndpoint("https://h:1/"), { authority: "h:1", secure: true });
});

/** A tiny gRPC server on node:http2 whose behaviour each test scripts per method path. */
async function withServer(
  handler: (
    path: string,
    stream: http2.ServerHttp2Stream,
    body: () => Promise<Uint8Array[]>,
  ) => void,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const chunks: Uint8Array[] = [];
    const decoder = new FrameDecoder();
    const msgs: Uint8Array[] = [];
    let ended = false;
    const waiters: (() => void)[] = [];
    stream.on("data", (c: Uint8Array) => {
      chunks.push(c);
      msgs.push(...decoder.push(new Uint8Array(c)));
      for (const w of waiters.splice(0)) w();
    });
    stream.on("end", () => {
      ended = true;
      for (const w of waiters.splice(0)) w();
    });
    const body = async () => {
      while (!ended) await new Promise<void>((r) => waiters.push(r));
      return msgs;
    };
    handler(String(headers[":path"]), stream, body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    await fn(port);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

Deno.test({
  name: "GrpcConnection: unary calls, trailers-only errors, HTTP errors and deadlines",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withServer(async (path, stream, body) => {
      if (path === "/etcdserverpb.KV/Range") {
        const [req] = await body();
        const key = fromBinary(RangeRequestSchema, req).key;
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
          waitForTrailers: true,
        });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        const resp = create(RangeResponseSchema, { count: BigInt(key.length) });
        stream.end(encodeGrpcFrame(toBinary(RangeResponseSchema, resp)));
      } else if (path === "/etcdserverpb.KV/Put") {
        await body();
        stream.respond({
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "3",
          "grpc-message": "etcdserver: key is not provided%20%E2%9C%93",
        }, { endStream: true });
      } else if (path === "/etcdserverpb.KV/DeleteRange") {
        stream.respond({ ":status": 404 }, { endStream: true });
      } else {
        // Never answers: the client's deadline must fire.
      }
    }, async (port) => {
      const conn = await GrpcConnection.connect(parseEndpoint(`127.0.0.1:${port}`), {
        timeoutMs: 2000,
      });
      try {
        const r = await conn.unary(
          KV.method.range,
          create(RangeRequestSchema, { key: enc.encode("abc") }),
        );
        assert.equal(r.count, 3n);
        await assert.rejects(
          conn.unary(KV.method.put, create(PutRequestSchema, {})),
          (e: unknown) =>
            e instanceof GrpcError && e.code === Code.InvalidArgument &&
            e.toGoString() ===
              "rpc error: code = InvalidArgument desc = etcdserver: key is not provided \u2713",
        );
        await assert.rejects(
          conn.unary(KV.method.deleteRange, create(DeleteRangeRequestSchema, {})),
          (e: unknown) =>
            e instanceof GrpcError && e.code === Code.Unimplemented &&
            e.details === "unexpected HTTP status code received from server: 404 (Not Found)",
        );
        const started = Date.now();
        await assert.rejects(
          conn.unary(KV.method.compact, create(CompactionRequestSchema, {}), {
            deadlineMs: Date.now() + 200,
          }),
          (e: unknown) => e instanceof GrpcError && e.code === Code.DeadlineExceeded,
        );
        assert.ok(Date.now() - started >= 190);
      } finally {
        conn.close();
      }
    });
  },
});

Deno.test({
  name: "GrpcConnection: bidirectional streams deliver messages both ways and end with status",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withServer((_path, stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
        waitForTrailers: true,
      });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      const decoder = new FrameDecoder();
      let n = 0;
      stream.on("data", (c: Uint8Array) => {
        for (const m of decoder.push(new Uint8Array(c))) {
          fromBinary(WatchRequestSchema, m);
          n++;
          stream.write(
            encodeGrpcFrame(
              toBinary(WatchResponseSchema, create(WatchResponseSchema, { watchId: BigInt(n) })),
            ),
          );
        }
      });
      stream.on("end", () => stream.end());
    }, async (port) => {
      const conn = await GrpcConnection.connect(parseEndpoint(`127.0.0.1:${port}`), {
        timeoutMs: 2000,
      });
      try {
        const s = conn.bidiStream(Watch.method.watch);
        s.send(create(WatchRequestSchema, {}));
        assert.equal((await s.receive())?.watchId, 1n);
        s.send(create(WatchRequestSchema, {}));
        assert.equal((await s.receive())?.watchId, 2n);
        s.closeSend();
        assert.equal(await s.receive(), undefined);
      } finally {
        conn.close();
      }
    });
  },
});

Deno.test("GrpcConnection.connect reports refused connections like Go's dialer", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    GrpcConnection.connect(parseEndpoint(`127.0.0.1:${port}`), { timeoutMs: 2000 }),
    { message: `dial tcp 127.0.0.1:${port}: connect: connection refused` },
  );
});

Deno.test("endpointScheme and hostOf read endpoints as clientv3 and net.SplitHostPort do", () => {
  assert.equal(endpointScheme("127.0.0.1:2379"), "");
  assert.equal(endpointScheme("https://127.0.0.1:2379"), "https");
  assert.equal(endpointScheme("HTTP://h:1"), "http");
  assert.equal(endpointScheme("unixs://sock"), "unixs");
  assert.equal(hostOf("127.0.0.1:2379"), "127.0.0.1");
  assert.equal(hostOf("[::1]:2379"), "::1");
  assert.equal(hostOf("localhost"), "localhost");
});

Deno.test("processCreds: the scheme decides, a bare endpoint takes the configured TLS", () => {
  const tls = { ca: ["x"] };
  assert.equal(processCreds("", tls), tls);
  assert.equal(processCreds("", undefined), undefined);
  assert.equal(processCreds("https", tls), tls);
  assert.deepEqual(processCreds("https", undefined), {});
  assert.equal(processCreds("http", tls), undefined);
  assert.equal(processCreds("ftp", tls), undefined);
});
