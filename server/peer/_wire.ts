/**
 * The peer port's wire format, shared by the server, the transport and the client so that both
 * ends of each exchange read one definition: the stream upgrade, HTTP/1.x heads, the
 * length-prefixed Raft frames and the JSON shapes of the plain endpoints. Private to server/peer.
 */

import type * as net from "node:net";
import { EtcdError, type GrpcCodeValue } from "../../core/errors.ts";
import { idHex, SERVER_VERSION } from "../../core/node/mod.ts";
import { encodeMessage, type Message } from "../../core/raft/mod.ts";

/** The request path that upgrades a connection to a Raft message stream. */
export const STREAM_PATH = "/raft/stream";
/** The Upgrade protocol name of a Raft message stream. */
export const UPGRADE_PROTOCOL = "detcd-raft";
/** Frames larger than this break the stream (a corrupt length prefix must not allocate 4 GiB). */
export const MAX_FRAME_BYTES = 512 * 1024 * 1024;
/** Request heads larger than this are refused. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** Reads bytes until the end of an HTTP head ("\r\n\r\n"), bounded; null when there is none. */
export function readHead(
  socket: net.Socket,
  done: (head: Uint8Array | null, rest: Uint8Array) => void,
): void {
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => finish(null), 10_000);
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf("\r\n\r\n");
    if (end >= 0) finish(end + 4);
    else if (buffered.length > MAX_HEAD_BYTES) finish(null);
  };
  const onClose = () => finish(null);
  function finish(end: number | null) {
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("close", onClose);
    socket.pause();
    if (end === null) done(null, new Uint8Array(0));
    else done(buffered.subarray(0, end), buffered.subarray(end));
  }
  socket.on("data", onData);
  socket.on("close", onClose);
}

/** A parsed HTTP/1.x request or response head (status 0 for a request). */
export interface Head {
  method: string;
  path: string;
  status: number;
  headers: Map<string, string>;
}

/** Parses a request or response head; null when it is not HTTP/1.x. */
export function parseHead(bytes: Uint8Array): Head | null {
  const lines = new TextDecoder().decode(bytes).split("\r\n");
  const first = lines[0].split(" ");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  if (first[0].startsWith("HTTP/1.")) {
    return { method: "", path: "", status: Number(first[1]), headers };
  }
  if (first.length < 3 || !first[2].startsWith("HTTP/1.")) return null;
  return { method: first[0], path: first[1], status: 0, headers };
}

/** A member ID as peers send it (lowercase hex, at most 16 digits); null when malformed. */
export function parseId(hex: string): bigint | null {
  if (!/^[0-9a-f]{1,16}$/.test(hex)) return null;
  return BigInt(`0x${hex}`);
}

/** Messages as one buffer of frames (u32 big-endian length + encoded message), one write. */
export function encodeFrames(messages: readonly Message[]): Uint8Array {
  return frameAll(messages.map(encodeMessage));
}

/** Bodies as one buffer of frames (u32 big-endian length + body), for one write. */
export function frameAll(bodies: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const b of bodies) size += 4 + b.length;
  const out = new Uint8Array(size);
  let o = 0;
  for (const b of bodies) {
    const n = b.length;
    out[o] = n >>> 24;
    out[o + 1] = (n >>> 16) & 0xff;
    out[o + 2] = (n >>> 8) & 0xff;
    out[o + 3] = n & 0xff;
    out.set(b, o + 4);
    o += 4 + n;
  }
  return out;
}

/** What the sender of an upgrade request says of itself (the member's identity). */
export interface UpgradeSender {
  clusterId(): bigint;
  memberId(): bigint;
}

/**
 * The head of a request that upgrades a peer connection (the Raft stream, a call stream): the
 * cluster and sender as etcd's rafthttp sends them, and the sender's peer URLs when given.
 */
export function upgradeHead(
  path: string,
  protocol: string,
  target: { host: string; port: number },
  sender: UpgradeSender,
  peerUrls?: readonly string[],
): string {
  return `POST ${path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n` +
    `Connection: Upgrade\r\nUpgrade: ${protocol}\r\n` +
    `X-Etcd-Cluster-ID: ${idHex(sender.clusterId())}\r\n` +
    `X-Server-From: ${idHex(sender.memberId())}\r\n` +
    (peerUrls === undefined ? "" : `X-PeerURLs: ${peerUrls.join(",")}\r\n`) +
    `X-Server-Version: ${SERVER_VERSION}\r\n\r\n`;
}

/** A leader's failure as forwarded calls carry it back: its gRPC code (2 when not an EtcdError). */
export function errorJson(e: unknown): { code: number; message: string } {
  return {
    code: e instanceof EtcdError ? e.code : 2,
    message: e instanceof Error ? e.message : String(e),
  };
}

/** The EtcdError errorJson() described (etcd's own, when code and message name one). */
export function errorFromJson(json: Record<string, unknown>, fallback: string): EtcdError {
  return EtcdError.fromStatus(
    (typeof json.code === "number" ? json.code : 2) as GrpcCodeValue,
    typeof json.message === "string" ? json.message : fallback,
  );
}

/** A lease's TTLs and keys on the leader, as forwarded LeaseTimeToLive calls carry them. */
export interface LeaseTtl {
  ttl: bigint;
  grantedTtl: bigint;
  keys: Uint8Array[];
}

/** LeaseTimeToLive's answer as JSON (an unknown lease: TTL -1). */
export function leaseTtlJson(t: LeaseTtl | null): Record<string, string | string[]> {
  if (t === null) return { ttl: "-1" };
  return { ttl: String(t.ttl), grantedTtl: String(t.grantedTtl), keys: t.keys.map(bytesHex) };
}

/** The inverse of leaseTtlJson. */
export function parseLeaseTtl(json: Record<string, unknown>): LeaseTtl {
  return {
    ttl: BigInt(String(json.ttl)),
    grantedTtl: BigInt(String(json.grantedTtl ?? "0")),
    keys: Array.isArray(json.keys) ? json.keys.map((k) => hexBytes(String(k))) : [],
  };
}

/** Reassembles length-prefixed frames from a byte stream. */
export class FrameReader {
  #buffer: Uint8Array = new Uint8Array(0);
  readonly #onFrame: (bytes: Uint8Array) => boolean;

  /** `onFrame` returns false when the frame breaks the stream (it could not be decoded). */
  constructor(onFrame: (bytes: Uint8Array) => boolean) {
    this.#onFrame = onFrame;
  }

  /** Returns false when the stream is broken (oversized or undecodable frame). */
  push(chunk: Uint8Array): boolean {
    let data = chunk;
    if (this.#buffer.length > 0) {
      data = new Uint8Array(this.#buffer.length + chunk.length);
      data.set(this.#buffer, 0);
      data.set(chunk, this.#buffer.length);
    }
    let offset = 0;
    while (data.length - offset >= 4) {
      const length = (data[offset] << 24 | data[offset + 1] << 16 | data[offset + 2] << 8 |
        data[offset + 3]) >>> 0;
      if (length > MAX_FRAME_BYTES) return false;
      if (data.length - offset - 4 < length) break;
      const frame = data.subarray(offset + 4, offset + 4 + length);
      offset += 4 + length;
      if (!this.#onFrame(frame)) return false;
    }
    this.#buffer = offset === data.length ? new Uint8Array(0) : data.slice(offset);
    return true;
  }
}

/** One member in GET /members' answer (etcd's JSON field names). */
export interface MemberJson {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** Lease keys travel as lowercase hex in the lease endpoints' JSON. */
export function bytesHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The inverse of bytesHex. */
export function hexBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
