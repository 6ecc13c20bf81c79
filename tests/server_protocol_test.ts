/**
 * The client port at the protocol level, in-process: gRPC framing, status trailers, size limits,
 * unknown methods, garbage bytes, and the Connect and HTTP/1.1 endpoints on the same port.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import * as net from "node:net";
import {
  PutRequestSchema,
  RangeRequestSchema,
  RangeResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { silentLogger } from "../core/log.ts";
import { MemoryDisk } from "../core/storage/mod.ts";
import { resolveConfig, toServerConfig } from "../server/config.ts";
import { encodeGrpcFrame, GRPC_PREFIX_BYTES, grpcFrameLength } from "../core/wire/mod.ts";
import { type RunningServer, startServer } from "../server/server.ts";
import { callsStartedTotal } from "../server/grpc_metrics.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { freePort } from "./harness.ts";

const enc = new TextEncoder();

async function withServer(
  args: string[],
  fn: (server: RunningServer, address: string) => Promise<void>,
  clientWorkers = 0,
): Promise<void> {
  const peerPort = freePort();
  const config = toServerConfig(
    (await resolveConfig([
      "--listen-client-urls=http://127.0.0.1:0",
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      ...args,
    ], {})).values,
  );
  const server = await startServer(config, silentLogger, new MemoryDisk(), { clientWorkers });
  try {
    await fn(server, server.clientAddresses[0]);
  } finally {
    await server.stop();
  }
}

interface GrpcReply {
  status: string | undefined;
  message: string | undefined;
  body: Uint8Array;
}

/** One raw gRPC call on its own connection: sends `body` as is (already framed). */
async function grpcCall(address: string, path: string, body: Uint8Array): Promise<GrpcReply> {
  const session = http2.connect(`http://${address}`);
  try {
    return await grpcCallOn(session, path, body);
  } finally {
    session.close();
  }
}

/** One raw gRPC call on an existing HTTP/2 session. */
function grpcCallOn(
  session: http2.ClientHttp2Session,
  path: string,
  body: Uint8Array,
): Promise<GrpcReply> {
  return new Promise((resolve, reject) => {
    session.once("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      "te": "trailers",
    });
    const chunks: Uint8Array[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (headers = h));
    req.on("data", (c: Uint8Array) => chunks.push(c));
    let trailers: http2.IncomingHttpHeaders = {};
    req.on("trailers", (t) => (trailers = t));
    req.on("end", () => {
      session.off("error", reject);
      const status = (trailers["grpc-status"] ?? headers["grpc-status"]) as string | undefined;
      const message = (trailers["grpc-message"] ?? headers["grpc-message"]) as string | undefined;
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let o = 0;
      for (const c of chunks) {
        all.set(c, o);
        o += c.length;
      }
      resolve({
        status,
        message: message && decodeURIComponent(message),
        body: all.subarray(GRPC_PREFIX_BYTES),
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

Deno.test("a put then a range over raw gRPC carry etcd's header and status 0", async () => {
  await withServer([], async (_server, address) => {
    const put = create(PutRequestSchema, { key: enc.encode("k"), value: enc.encode("v") });
    const p = await grpcCall(
      address,
      "/etcdserverpb.KV/Put",
      encodeGrpcFrame(toBinary(PutRequestSchema, put)),
    );
    assertEquals(p.status, "0");
    const range = create(RangeRequestSchema, { key: enc.encode("k") });
    const r = await grpcCall(
      address,
      "/etcdserverpb.KV/Range",
      encodeGrpcFrame(toBinary(RangeRequestSchema, range)),
    );
    assertEquals(r.status, "0");
    const resp = fromBinary(RangeResponseSchema, r.body);
    assertEquals(resp.kvs.length, 1);
    assertEquals(resp.header?.revision, 2n);
  });
});

Deno.test("errors carry etcd's gRPC code and exact message", async () => {
  await withServer([], async (_server, address) => {
    const put = create(PutRequestSchema, { value: enc.encode("v") });
    const r = await grpcCall(
      address,
      "/etcdserverpb.KV/Put",
      encodeGrpcFrame(toBinary(PutRequestSchema, put)),
    );
    assertEquals([r.status, r.message], ["3", "etcdserver: key is not provided"]);
  });
});

Deno.test("requests over --max-request-bytes are refused and store nothing", async () => {
  await withServer(["--max-request-bytes=1024"], async (server, address) => {
    // Over the limit but under gRPC's own cap (limit + 512 KiB): etcd's "request is too large".
    const big = create(PutRequestSchema, { key: enc.encode("big"), value: new Uint8Array(4096) });
    const r = await grpcCall(
      address,
      "/etcdserverpb.KV/Put",
      encodeGrpcFrame(toBinary(PutRequestSchema, big)),
    );
    assertEquals([r.status, r.message], ["3", "etcdserver: request is too large"]);
    // Over gRPC's cap: refused while reading, with grpc-go's ResourceExhausted wording.
    const huge = create(PutRequestSchema, {
      key: enc.encode("huge"),
      value: new Uint8Array(600 * 1024),
    });
    const h = await grpcCall(
      address,
      "/etcdserverpb.KV/Put",
      encodeGrpcFrame(toBinary(PutRequestSchema, huge)),
    );
    assertEquals(h.status, "8");
    assert(h.message?.startsWith("grpc: received message larger than max ("), h.message);
    assertEquals(server.node.revision, 1);
  });
});

Deno.test("unknown services and methods get Unimplemented", async () => {
  await withServer([], async (_server, address) => {
    const m = await grpcCall(address, "/etcdserverpb.KV/Nope", encodeGrpcFrame(new Uint8Array(0)));
    assertEquals([m.status, m.message], ["12", "unknown method Nope for service etcdserverpb.KV"]);
    const s = await grpcCall(address, "/foo.Bar/Baz", encodeGrpcFrame(new Uint8Array(0)));
    assertEquals([s.status, s.message], ["12", "unknown service foo.Bar"]);
  });
});

Deno.test("an undecodable message is refused and the server keeps serving", async () => {
  await withServer([], async (_server, address) => {
    const r = await grpcCall(
      address,
      "/etcdserverpb.KV/Range",
      encodeGrpcFrame(new Uint8Array([0xff, 0xff, 0xff])),
    );
    assertEquals(r.status, "13");
    const ok = await grpcCall(
      address,
      "/etcdserverpb.KV/Range",
      encodeGrpcFrame(
        toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc.encode("a") })),
      ),
    );
    assertEquals(ok.status, "0");
  });
});

Deno.test("garbage bytes on the client port close that connection only", async () => {
  await withServer([], async (_server, address) => {
    const [host, port] = address.split(":");
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), host, () => socket.write("\x00\x01garbage\r\n\r\n"));
      let text = "";
      socket.on("data", (d) => (text += d.toString()));
      socket.on("close", () => resolve(text));
      socket.on("error", () => resolve(text));
    });
    assert(reply.startsWith("HTTP/1.1 400"), reply);
    const res = await fetch(`http://${address}/health`);
    assertEquals(await res.json(), { health: "true" });
  });
});

Deno.test("HTTP/1.1 on the same port: /version and the Connect protocol", async () => {
  await withServer([], async (_server, address) => {
    const v = await (await fetch(`http://${address}/version`)).json();
    assertEquals(v, { etcdserver: "3.4.23", etcdcluster: "3.4.0" });
    const put = await fetch(`http://${address}/etcdserverpb.KV/Put`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: btoa("c"), value: btoa("connect") }),
    });
    assertEquals(put.status, 200);
    assertEquals((await put.json()).header.revision, "2");
    const bad = await fetch(`http://${address}/etcdserverpb.KV/Put`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ value: btoa("v") }),
    });
    assertEquals(bad.status, 400);
    assertEquals((await bad.json()).message, "etcdserver: key is not provided");
  });
});

Deno.test("a server-streaming call over Connect (Maintenance.Snapshot) streams the whole snapshot", async () => {
  await withServer([], async (_server, address) => {
    const { createClient } = await import("@connectrpc/connect");
    const { createConnectTransport } = await import("@connectrpc/connect-web");
    const { Maintenance } = await import("../gen/etcdserverpb/rpc_pb.ts");
    const client = createClient(
      Maintenance,
      createConnectTransport({ baseUrl: `http://${address}`, useBinaryFormat: true }),
    );
    let bytes = 0;
    let remaining = -1n;
    for await (const res of client.snapshot({})) {
      bytes += res.blob.length;
      remaining = res.remainingBytes;
    }
    // A bbolt file: at least its meta pages, and the last message says nothing remains.
    assert(bytes >= 16384, `snapshot of ${bytes} bytes`);
    assertEquals(remaining, 0n);
  });
});

Deno.test("gRPC-Web over HTTP/1.1: data frame then a trailer frame with grpc-status", async () => {
  await withServer([], async (_server, address) => {
    const range = create(RangeRequestSchema, { key: enc.encode("none") });
    const res = await fetch(`http://${address}/etcdserverpb.KV/Range`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: encodeGrpcFrame(toBinary(RangeRequestSchema, range)),
    });
    assertEquals(res.status, 200);
    const body = new Uint8Array(await res.arrayBuffer());
    assertEquals(body[0], 0);
    const length = grpcFrameLength(body);
    const resp = fromBinary(
      RangeResponseSchema,
      body.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + length),
    );
    assertEquals(resp.header?.revision, 1n);
    const trailer = body.subarray(GRPC_PREFIX_BYTES + length);
    assertEquals(trailer[0], 0x80);
    assert(
      new TextDecoder().decode(trailer.subarray(GRPC_PREFIX_BYTES)).includes("grpc-status: 0"),
    );
  });
});

Deno.test("with client workers: gRPC, errors, size limits, HTTP/1.1 and Connect all behave the same", async () => {
  await withServer(["--max-request-bytes=1024"], async (server, address) => {
    const put = create(PutRequestSchema, { key: enc.encode("k"), value: enc.encode("v") });
    const callsBefore = callsStartedTotal();
    const replies = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          grpcCall(
            address,
            "/etcdserverpb.KV/Put",
            encodeGrpcFrame(toBinary(PutRequestSchema, put)),
          ),
      ),
    );
    assertEquals(replies.map((r) => r.status), replies.map(() => "0"));
    // Calls the workers took count where the member measures how busy it is (the idle trim).
    assert(callsStartedTotal() >= callsBefore + 20, "the workers' calls are counted");
    const r = await grpcCall(
      address,
      "/etcdserverpb.KV/Range",
      encodeGrpcFrame(
        toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc.encode("k") })),
      ),
    );
    assertEquals(fromBinary(RangeResponseSchema, r.body).kvs[0].version, 20n);
    const empty = create(PutRequestSchema, { value: enc.encode("v") });
    const e = await grpcCall(
      address,
      "/etcdserverpb.KV/Put",
      encodeGrpcFrame(toBinary(PutRequestSchema, empty)),
    );
    assertEquals([e.status, e.message], ["3", "etcdserver: key is not provided"]);
    const big = create(PutRequestSchema, { key: enc.encode("big"), value: new Uint8Array(4096) });
    const b = await grpcCall(
      address,
      "/etcdserverpb.KV/Put",
      encodeGrpcFrame(toBinary(PutRequestSchema, big)),
    );
    assertEquals([b.status, b.message], ["3", "etcdserver: request is too large"]);
    assertEquals(await (await fetch(`http://${address}/health`)).json(), { health: "true" });
    const connect = await fetch(`http://${address}/etcdserverpb.KV/Range`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: btoa("k") }),
    });
    assertEquals((await connect.json()).kvs[0].version, "20");
    assertEquals(server.node.revision, 21);
  }, 2);
});

Deno.test("a refused oversized request does not stall the next calls on the same connection", async () => {
  await withServer(["--max-request-bytes=1024"], async (_server, address) => {
    const session = http2.connect(`http://${address}`);
    try {
      for (let i = 0; i < 3; i++) {
        const huge = create(PutRequestSchema, {
          key: enc.encode("huge"),
          value: new Uint8Array(700 * 1024),
        });
        const h = await grpcCallOn(
          session,
          "/etcdserverpb.KV/Put",
          encodeGrpcFrame(toBinary(PutRequestSchema, huge)),
        );
        assertEquals(h.status, "8");
      }
      const range = create(RangeRequestSchema, { key: enc.encode("a") });
      const ok = await Promise.race([
        grpcCallOn(
          session,
          "/etcdserverpb.KV/Range",
          encodeGrpcFrame(toBinary(RangeRequestSchema, range)),
        ),
        new Promise<GrpcReply>((_, reject) => setTimeout(() => reject(new Error("stalled")), 5000)),
      ]);
      assertEquals(ok.status, "0");
    } finally {
      session.destroy();
    }
  });
});

/** A Connect (JSON) call; returns the HTTP status and the decoded body. */
async function connectCall(
  address: string,
  path: string,
  body: unknown,
  token?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== undefined) headers.token = token;
  const res = await fetch(`http://${address}/${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** A gRPC-Web Range of `key`; returns the grpc-status of its trailer. */
async function grpcWebRange(address: string, key: string, token?: string): Promise<string> {
  const headers: Record<string, string> = {
    "content-type": "application/grpc-web+proto",
    "x-grpc-web": "1",
  };
  if (token !== undefined) headers.token = token;
  const range = create(RangeRequestSchema, { key: enc.encode(key) });
  const res = await fetch(`http://${address}/etcdserverpb.KV/Range`, {
    method: "POST",
    headers,
    body: encodeGrpcFrame(toBinary(RangeRequestSchema, range)),
  });
  const text = new TextDecoder().decode(new Uint8Array(await res.arrayBuffer()));
  return /grpc-status: ?(\d+)/.exec(text)?.[1] ?? `http ${res.status}`;
}

for (const workers of [0, 1]) {
  Deno.test(`auth over Connect and gRPC-Web is checked as over gRPC (client workers: ${workers})`, async () => {
    await withServer(["--bcrypt-cost=4"], async (_server, address) => {
      const call = (path: string, body: unknown, token?: string) =>
        connectCall(address, path, body, token);
      assertEquals(
        (await call("etcdserverpb.Auth/UserAdd", { name: "root", password: "pw" })).status,
        200,
      );
      assertEquals(
        (await call("etcdserverpb.Auth/UserGrantRole", { user: "root", role: "root" })).status,
        200,
      );
      assertEquals((await call("etcdserverpb.Auth/AuthEnable", {})).status, 200);
      // No token: etcd's error, nothing written.
      const anonymous = await call("etcdserverpb.KV/Put", { key: btoa("k"), value: btoa("v") });
      assertEquals(anonymous.status, 400);
      assertEquals(anonymous.body.message, "etcdserver: user name is empty");
      // A token nobody issued.
      const forged = await call("etcdserverpb.KV/Put", { key: btoa("k"), value: btoa("v") }, "x.1");
      assertEquals(forged.status, 401);
      assertEquals(forged.body.message, "etcdserver: invalid auth token");
      const wrong = await call("etcdserverpb.Auth/Authenticate", { name: "root", password: "no" });
      assertEquals(
        wrong.body.message,
        "etcdserver: authentication failed, invalid user ID or password",
      );
      const login = await call("etcdserverpb.Auth/Authenticate", { name: "root", password: "pw" });
      assertEquals(login.status, 200);
      const token = login.body.token as string;
      const put = await call("etcdserverpb.KV/Put", { key: btoa("k"), value: btoa("v") }, token);
      assertEquals(put.status, 200);
      const got = await call("etcdserverpb.KV/Range", { key: btoa("k") }, token);
      assertEquals((got.body.kvs as { value: string }[])[0].value, btoa("v"));
      // The anonymous put above wrote nothing: the key's only version is the root's put.
      assertEquals((got.body.kvs as { version: string }[])[0].version, "1");
      // gRPC-Web: the same refusal (InvalidArgument = 3), and the same success with the token.
      assertEquals(await grpcWebRange(address, "k"), "3");
      assertEquals(await grpcWebRange(address, "k", token), "0");
    }, workers);
  });
}
