/**
 * Raw gRPC calls with etcd's `token` metadata, for the auth security tests: unary calls, the
 * Snapshot server stream and the bidirectional Watch and LeaseKeepAlive streams, over one
 * node:http2 connection with @bufbuild/protobuf messages (the approach of tests/harness.ts's
 * KvClient, plus the metadata header and streams). Every call resolves to an {@link Outcome}
 * instead of throwing on a gRPC status, so a test can tabulate what each caller got.
 *
 * Also reads the auth store's revision: a root Snapshot is a bbolt file, whose `auth` bucket holds
 * `authRevision` (etcd 3.4 has no AuthStatus RPC).
 */

import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  AuthenticateRequestSchema,
  AuthenticateResponseSchema,
  HashKVRequestSchema,
  HashKVResponseSchema,
  HashRequestSchema,
  HashResponseSchema,
  SnapshotRequestSchema,
  SnapshotResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { UserSchema } from "../gen/authpb/auth_pb.ts";
import { encodeGrpcFrame, GrpcFrameDecoder } from "../core/wire/mod.ts";
import { decodeBolt } from "../core/storage/mod.ts";

/** What one call returned: a message, or a gRPC status other than OK (or a transport failure). */
export type Outcome<T = unknown> =
  | { ok: true; value: T }
  | { ok: false; code: number; message: string };

/** A gRPC status as a test expects it. */
export interface Status {
  code: number;
  message: string;
}

/** A bidirectional stream (Watch, LeaseKeepAlive): send requests, read responses, see the end. */
export class BidiCall<I extends DescMessage, O extends DescMessage> {
  #stream: http2.ClientHttp2Stream;
  #frames = new GrpcFrameDecoder();
  #responses: MessageShape<O>[] = [];
  #waiter: (() => void) | null = null;
  /** The stream's final status once it ended (code 0 for OK). */
  status: Status | undefined;

  constructor(
    session: http2.ClientHttp2Session,
    path: string,
    private readonly input: I,
    output: O,
    token?: string,
  ) {
    this.#stream = session.request(requestHeaders(path, token));
    this.#stream.on("error", () => {});
    const wake = () => {
      const w = this.#waiter;
      this.#waiter = null;
      w?.();
    };
    this.#stream.on("data", (chunk: Uint8Array) => {
      this.#frames.push(chunk);
      for (let m = this.#frames.next(); m !== null; m = this.#frames.next()) {
        this.#responses.push(fromBinary(output, m));
      }
      wake();
    });
    const takeStatus = (headers: http2.IncomingHttpHeaders) => {
      const code = headers["grpc-status"];
      if (code === undefined) return;
      this.status = {
        code: Number(code),
        message: decodeURIComponent(String(headers["grpc-message"] ?? "")),
      };
      wake();
    };
    this.#stream.on("response", takeStatus);
    this.#stream.on("trailers", takeStatus);
    this.#stream.on("close", () => {
      this.status ??= { code: -1, message: "stream closed without a gRPC status" };
      wake();
    });
  }

  send(init: MessageInitShape<I>): void {
    this.#stream.write(encodeGrpcFrame(toBinary(this.input, create(this.input, init))));
  }

  /** The next response; undefined when the stream ended or after timeoutMs without one. */
  async next(timeoutMs = 3000): Promise<MessageShape<O> | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#responses.length === 0 && this.status === undefined) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#responses.shift();
  }

  /** Everything that arrives within `ms` (the stream may also end meanwhile). */
  async drain(ms: number): Promise<MessageShape<O>[]> {
    const out: MessageShape<O>[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const r = await this.next(left);
      if (r === undefined) {
        if (this.status !== undefined) break;
        continue;
      }
      out.push(r);
    }
    return out;
  }

  close(): void {
    try {
      this.#stream.close(http2.constants.NGHTTP2_CANCEL);
    } catch {
      // already closed
    }
  }
}

function requestHeaders(path: string, token?: string): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = {
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    "te": "trailers",
  };
  if (token !== undefined) headers.token = token;
  return headers;
}

/** One HTTP/2 connection to a member; every call may carry a token. */
export class AuthClient {
  private session: http2.ClientHttp2Session;

  constructor(readonly endpoint: string) {
    this.session = http2.connect(`http://${endpoint}`);
    this.session.on("error", () => {});
  }

  /** A unary call; every message the server sent on an OK stream is decoded, the first returned. */
  async unary<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    init: MessageInitShape<I>,
    token?: string,
    timeoutMs = 10_000,
  ): Promise<Outcome<MessageShape<O>>> {
    const r = await this.serverStream(path, input, output, init, token, timeoutMs);
    if (!r.ok) return r;
    if (r.value.length === 0) return { ok: false, code: -1, message: "OK without a message" };
    return { ok: true, value: r.value[0] };
  }

  /** A server-streaming (or unary) call: all messages until the status. */
  serverStream<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    init: MessageInitShape<I>,
    token?: string,
    timeoutMs = 10_000,
  ): Promise<Outcome<MessageShape<O>[]>> {
    const frame = encodeGrpcFrame(toBinary(input, create(input, init)));
    return new Promise((resolve) => {
      let request: http2.ClientHttp2Stream;
      try {
        request = this.session.request(requestHeaders(path, token));
      } catch (error) {
        resolve({ ok: false, code: -1, message: `${error}` });
        return;
      }
      const frames = new GrpcFrameDecoder();
      const messages: MessageShape<O>[] = [];
      let status: Status | undefined;
      const timer = setTimeout(() => {
        status ??= { code: -2, message: `no answer after ${timeoutMs} ms` };
        request.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs);
      const takeStatus = (headers: http2.IncomingHttpHeaders) => {
        const code = headers["grpc-status"];
        if (code === undefined || status !== undefined) return;
        status = {
          code: Number(code),
          message: decodeURIComponent(String(headers["grpc-message"] ?? "")),
        };
      };
      request.on("response", takeStatus);
      request.on("trailers", takeStatus);
      request.on("data", (chunk: Uint8Array) => {
        frames.push(chunk);
        for (let m = frames.next(); m !== null; m = frames.next()) {
          messages.push(fromBinary(output, m));
        }
      });
      request.on("error", (error) => {
        status ??= { code: -1, message: `${error}` };
      });
      request.on("close", () => {
        clearTimeout(timer);
        const s = status ?? { code: -1, message: "stream closed without a gRPC status" };
        resolve(s.code === 0 ? { ok: true, value: messages } : { ok: false, ...s });
      });
      request.end(frame);
    });
  }

  /** Opens a bidirectional stream. */
  bidi<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    token?: string,
  ): BidiCall<I, O> {
    return new BidiCall(this.session, path, input, output, token);
  }

  /** Authenticate; throws unless it succeeds. */
  async token(name: string, password: string): Promise<string> {
    const r = await this.unary(
      "/etcdserverpb.Auth/Authenticate",
      AuthenticateRequestSchema,
      AuthenticateResponseSchema,
      { name, password },
    );
    if (!r.ok) throw new Error(`Authenticate ${name}: ${r.code} ${r.message}`);
    return r.value.token;
  }

  close(): void {
    this.session.destroy();
  }
}

/** Throws with the status unless the outcome is OK; returns the value. */
export function must<T>(outcome: Outcome<T>, what: string): T {
  if (!outcome.ok) throw new Error(`${what}: grpc status ${outcome.code}: ${outcome.message}`);
  return outcome.value;
}

/** The backend's bytes as a root Snapshot streams them (the trailing sha256 removed). */
export async function snapshotBytes(client: AuthClient, token?: string): Promise<Uint8Array> {
  const chunks = must(
    await client.serverStream(
      "/etcdserverpb.Maintenance/Snapshot",
      SnapshotRequestSchema,
      SnapshotResponseSchema,
      {},
      token,
      30_000,
    ),
    "Snapshot",
  );
  const total = chunks.reduce((n, c) => n + c.blob.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c.blob, at);
    at += c.blob.length;
  }
  // etcd appends the sha256 of the database to the stream.
  return all.length % 512 === 32 ? all.subarray(0, all.length - 32) : all;
}

/**
 * SHA-256 (hex) of every entry of the auth store's buckets (`auth`, `authUsers`, `authRoles`), the
 * users' password hashes left out: etcd 3.4 hashes a password when it applies UserAdd, with each
 * member's own salt, so they differ between members by design.
 */
export async function authDigest(db: Uint8Array): Promise<string> {
  const text = new TextDecoder();
  const parts: number[] = [];
  for (const bucket of decodeBolt(db)) {
    if (!["auth", "authUsers", "authRoles"].includes(text.decode(bucket.name))) continue;
    const users = text.decode(bucket.name) === "authUsers";
    for (const [key, value] of bucket.entries) {
      let v = value;
      if (users) {
        const user = fromBinary(UserSchema, value);
        user.password = new Uint8Array();
        v = toBinary(UserSchema, user);
      }
      for (const piece of [bucket.name, key, v]) parts.push(piece.length, ...piece);
    }
  }
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array(parts));
  return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, "0")).join("");
}

/** `authRevision` from the `auth` bucket of a backend file (0 when absent). */
export function authRevisionOf(db: Uint8Array): bigint {
  const text = new TextDecoder();
  for (const bucket of decodeBolt(db)) {
    if (text.decode(bucket.name) !== "auth") continue;
    for (const [key, value] of bucket.entries) {
      if (text.decode(key) === "authRevision") {
        return new DataView(value.buffer, value.byteOffset, value.byteLength).getBigUint64(0);
      }
    }
  }
  return 0n;
}

/** What must not change when a call is denied: the whole backend's hash, KV hash, revisions. */
export interface Fingerprint {
  /** Maintenance.Hash: every bucket (auth, leases, alarms, keys) but the consistent index. */
  hash: number;
  hashKV: number;
  revision: bigint;
  compactRevision: bigint;
  authRevision: bigint;
  /** {@link authDigest}: users, roles, permissions, the enabled flag. */
  authDigest: string;
}

/** Reads the {@link Fingerprint} with a root token. */
export async function fingerprint(client: AuthClient, rootToken?: string): Promise<Fingerprint> {
  const hash = must(
    await client.unary(
      "/etcdserverpb.Maintenance/Hash",
      HashRequestSchema,
      HashResponseSchema,
      {},
      rootToken,
    ),
    "Hash",
  );
  const hashKV = must(
    await client.unary(
      "/etcdserverpb.Maintenance/HashKV",
      HashKVRequestSchema,
      HashKVResponseSchema,
      {},
      rootToken,
    ),
    "HashKV",
  );
  const db = await snapshotBytes(client, rootToken);
  return {
    hash: hash.hash,
    hashKV: hashKV.hash,
    revision: hashKV.header?.revision ?? 0n,
    compactRevision: hashKV.compactRevision,
    authRevision: authRevisionOf(db),
    authDigest: await authDigest(db),
  };
}
