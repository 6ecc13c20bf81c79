import assert from "node:assert/strict";
import {
  encodeGrpcFrame,
  GRPC_PREFIX_BYTES,
  GrpcFrameDecoder,
  grpcFrameLength,
} from "./grpc_frame.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("encodeGrpcFrame writes flag 0 and a big-endian u32 length before the payload", () => {
  const framed = encodeGrpcFrame(enc.encode("hi"));
  assert.deepEqual([...framed], [0, 0, 0, 0, 2, 0x68, 0x69]);
  const big = encodeGrpcFrame(new Uint8Array(0x01020304 & 0xffff));
  assert.equal(grpcFrameLength(big), 0x0304);
  const prefix = new Uint8Array([0, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(grpcFrameLength(prefix), 0xffffffff);
});

Deno.test("GrpcFrameDecoder splits messages at every chunk boundary, byte by byte too", () => {
  const messages = ["hello", "", "a longer message that spans chunks"].map((s) => enc.encode(s));
  const stream = new Uint8Array(messages.reduce((n, m) => n + GRPC_PREFIX_BYTES + m.length, 0));
  let offset = 0;
  for (const m of messages) {
    stream.set(encodeGrpcFrame(m), offset);
    offset += GRPC_PREFIX_BYTES + m.length;
  }
  for (const size of [1, 2, 3, 5, 7, stream.length]) {
    const d = new GrpcFrameDecoder();
    const got: string[] = [];
    for (let at = 0; at < stream.length; at += size) {
      d.push(stream.subarray(at, at + size));
      for (let p = d.next(); p !== null; p = d.next()) got.push(dec.decode(p));
    }
    assert.deepEqual(got, messages.map((m) => dec.decode(m)), `chunks of ${size}`);
    assert.equal(d.buffered, 0);
    assert.equal(d.nextLength(), -1);
  }
});

Deno.test("GrpcFrameDecoder shows the next prefix before the message is complete", () => {
  const d = new GrpcFrameDecoder();
  d.push(new Uint8Array([1, 0, 0]));
  assert.equal(d.nextFlag(), -1);
  assert.equal(d.nextLength(), -1);
  d.push(new Uint8Array([0, 2, 0x61]));
  assert.equal(d.nextFlag(), 1);
  assert.equal(d.nextLength(), 2);
  assert.equal(d.hasMessage(), false);
  assert.equal(d.next(), null);
  d.push(new Uint8Array([0x62]));
  assert.equal(d.hasMessage(), true);
  assert.equal(dec.decode(d.next()!), "ab");
  assert.equal(d.buffered, 0);
});
