/**
 * Regression: clients that vanish with streams in flight must not take a member down. Deno's
 * node:http2 (nghttp2) aborted the whole process on this (`find_stream_on_goaway_func: Assertion
 * 'stream->closed_next == NULL' failed`, `nghttp2_rcbuf_decref: Assertion 'rcbuf->ref > 0'`);
 * detcd now serves h2c with its own HTTP/2 server (server/h2). Hundreds of sessions open streams
 * and are destroyed or closed at once, raw sockets cut off mid-frame, and the member must still
 * serve afterwards, with and without client workers.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { encodeFrame, encodeSettings, Flag, FrameType } from "../server/h2/frames.ts";
import { encodeHeaders } from "../server/h2/hpack.ts";
import { encodeGrpcFrame } from "../core/wire/mod.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { type Member, startMember } from "./harness.ts";

/** PutRequest{key: "k", value: "v"}. */
const put = encodeGrpcFrame(new Uint8Array([0x0a, 1, 0x6b, 0x12, 1, 0x76]));
/** RangeRequest{key: "k"}. */
const range = encodeGrpcFrame(new Uint8Array([0x0a, 1, 0x6b]));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function abruptSessions(member: Member, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const session = http2.connect(`http://${member.endpoint}`);
    session.on("error", () => {});
    for (let i = 0; i < 20; i++) {
      const stream = session.request({
        ":method": "POST",
        ":path": i % 2 ? "/etcdserverpb.KV/Put" : "/etcdserverpb.KV/Range",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      stream.end(i % 2 ? put : range);
    }
    await sleep(round % 3);
    if (round % 2) session.destroy();
    else session.close();
    assert(member.running(), `member died at round ${round}:\n${member.logTail(2000)}`);
  }
}

/** Raw sockets that send part of a conversation and vanish (RST via destroy). */
async function abruptSockets(member: Member, count: number): Promise<void> {
  const preface = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  const settings = encodeFrame(FrameType.SETTINGS, 0, 0, encodeSettings([]));
  const block = encodeHeaders({
    ":method": "POST",
    ":scheme": "http",
    ":path": "/etcdserverpb.KV/Put",
    ":authority": `http://${member.endpoint}`,
    "content-type": "application/grpc",
  });
  const whole: number[] = [...preface, ...settings];
  for (let id = 1; id < 40; id += 2) {
    whole.push(...encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, id, block));
    whole.push(...encodeFrame(FrameType.DATA, id % 4 === 1 ? Flag.END_STREAM : 0, id, put));
  }
  whole.push(...encodeFrame(FrameType.GOAWAY, 0, 0, new Uint8Array(8)));
  const bytes = Uint8Array.from(whole);
  const conversations: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const cut = 1 + ((i * 7919) % (bytes.length - 1));
    conversations.push(
      new Promise<void>((resolve) => {
        const socket = net.connect(member.clientPort, "127.0.0.1", () => {
          socket.write(bytes.subarray(0, cut));
          setTimeout(() => socket.destroy(), i % 4);
        });
        socket.on("error", () => {});
        socket.on("close", () => resolve());
      }),
    );
    if (conversations.length >= 20) await Promise.all(conversations.splice(0));
  }
  await Promise.all(conversations);
}

/** One ordinary call on a fresh session: the member still serves. */
function rangeOnce(member: Member): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${member.endpoint}`);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": "/etcdserverpb.KV/Range",
      "content-type": "application/grpc",
      te: "trailers",
    });
    let status: string | undefined;
    stream.on("trailers", (t) => (status = String(t["grpc-status"])));
    stream.on("data", () => {});
    stream.on("error", reject);
    stream.on("end", () => {
      session.close();
      resolve(status);
    });
    stream.end(range);
  });
}

for (const workers of [0, 2]) {
  Deno.test({
    name: `abrupt disconnects with streams in flight do not kill the member (workers=${workers})`,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const member = await startMember({
        kind: "detcd",
        name: "abrupt",
        env: { DETCD_CLIENT_WORKERS: String(workers) },
      });
      try {
        await abruptSessions(member, 300);
        await abruptSockets(member, 200);
        await sleep(300);
        assert(member.running(), `member died:\n${member.logTail(2000)}`);
        assertEquals(await rangeOnce(member), "0");
        assert(!/Assertion|panic|uncaught/i.test(member.logTail(20000)), member.logTail(2000));
      } finally {
        await member.stop();
      }
    },
  });
}
