/**
 * The chaos run's client: etcd's KV, Watch and Maintenance calls over gRPC on one HTTP/2
 * connection per member, each call bounded by a timeout. A call that fails says whether it surely
 * did not happen (`definite`: the member refused the connection, so the request never left) or may
 * have (everything else: a write that timed out or lost its connection may still be applied).
 * Works against etcd 3.4.23 and detcd alike; test tooling only.
 */
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  type CompactionResponse,
  CompactionResponseSchema,
  DeleteRangeRequestSchema,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  HashKVRequestSchema,
  type HashKVResponse,
  HashKVResponseSchema,
  MemberListRequestSchema,
  type MemberListResponse,
  MemberListResponseSchema,
  PutRequestSchema,
  type PutResponse,
  PutResponseSchema,
  RangeRequestSchema,
  type RangeResponse,
  RangeResponseSchema,
  StatusRequestSchema,
  type StatusResponse,
  StatusResponseSchema,
  TxnRequestSchema,
  type TxnResponse,
  TxnResponseSchema,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { encodeGrpcFrame, GRPC_PREFIX_BYTES, grpcFrameLength } from "../../core/wire/mod.ts";
import { concatBytes } from "../../core/bytes.ts";
import { casTxn } from "../cas_request.ts";

const encoder = new TextEncoder();

/** A failed call. `definite`: the request never reached the member, so it did not happen. */
export class CallError extends Error {
  constructor(message: string, readonly definite: boolean, readonly grpcCode?: number) {
    super(message);
    this.name = "CallError";
  }
}

/** Frames of a gRPC message stream, split as they arrive. */
class FrameReader {
  #pending: Uint8Array = new Uint8Array();

  push(chunk: Uint8Array): Uint8Array[] {
    this.#pending = this.#pending.length === 0 ? chunk : concatBytes(this.#pending, chunk);
    const out: Uint8Array[] = [];
    while (this.#pending.length >= GRPC_PREFIX_BYTES) {
      const length = grpcFrameLength(this.#pending);
      if (this.#pending.length < GRPC_PREFIX_BYTES + length) break;
      out.push(this.#pending.slice(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + length));
      this.#pending = this.#pending.subarray(GRPC_PREFIX_BYTES + length);
    }
    return out;
  }
}

/** What a watcher is told. */
export interface WatchHandlers {
  onResponse(response: WatchResponse): void;
  /** The stream ended (the member went away, or the watch was cancelled): why. */
  onEnd(reason: string): void;
}

/** A running watch stream. */
export interface WatchHandle {
  /** Asks the member for a progress notification (etcd 3.4's WatchProgressRequest). */
  requestProgress(): void;
  close(): void;
}

/** One member's client. Reconnects on the next call once its connection is gone. */
export class ChaosClient {
  #session: http2.ClientHttp2Session | null = null;
  #closed = false;

  constructor(readonly endpoint: string, readonly timeoutMs = 3000) {}

  #connect(): http2.ClientHttp2Session {
    if (this.#closed) throw new CallError("client closed", true);
    const s = this.#session;
    if (s !== null && !s.closed && !s.destroyed) return s;
    const session = http2.connect(`http://${this.endpoint}`);
    session.on("error", () => {
      // surfaced per call
    });
    session.on("close", () => {
      if (this.#session === session) this.#session = null;
    });
    this.#session = session;
    return session;
  }

  /** Drops the connection (a stalled member: the next call dials again). */
  reset(): void {
    const s = this.#session;
    this.#session = null;
    s?.destroy();
  }

  close(): void {
    this.#closed = true;
    this.reset();
  }

  put(key: string, value: string): Promise<PutResponse> {
    return this.unary("/etcdserverpb.KV/Put", PutRequestSchema, PutResponseSchema, {
      key: encoder.encode(key),
      value: encoder.encode(value),
    });
  }

  /** A linearizable read of one key (revision 0) or of the key as of `revision`. */
  get(key: string, revision = 0, serializable = false): Promise<RangeResponse> {
    return this.unary("/etcdserverpb.KV/Range", RangeRequestSchema, RangeResponseSchema, {
      key: encoder.encode(key),
      revision: BigInt(revision),
      serializable,
    });
  }

  /** Every key under `prefix`, serializable or not. */
  range(prefix: string, serializable: boolean): Promise<RangeResponse> {
    return this.unary("/etcdserverpb.KV/Range", RangeRequestSchema, RangeResponseSchema, {
      key: encoder.encode(prefix),
      rangeEnd: prefixEnd(encoder.encode(prefix)),
      serializable,
    });
  }

  delete(key: string): Promise<DeleteRangeResponse> {
    return this.unary(
      "/etcdserverpb.KV/DeleteRange",
      DeleteRangeRequestSchema,
      DeleteRangeResponseSchema,
      { key: encoder.encode(key) },
    );
  }

  /** `If(value(key) == expect) Then(put key value)`; expect null: If(create_revision == 0). */
  cas(key: string, expect: string | null, value: string): Promise<TxnResponse> {
    return this.unary(
      "/etcdserverpb.KV/Txn",
      TxnRequestSchema,
      TxnResponseSchema,
      casTxn(key, expect, value),
    );
  }

  compact(revision: number): Promise<CompactionResponse> {
    return this.unary(
      "/etcdserverpb.KV/Compact",
      CompactionRequestSchema,
      CompactionResponseSchema,
      { revision: BigInt(revision) },
    );
  }

  status(): Promise<StatusResponse> {
    return this.unary(
      "/etcdserverpb.Maintenance/Status",
      StatusRequestSchema,
      StatusResponseSchema,
      {},
    );
  }

  hashKV(revision: number): Promise<HashKVResponse> {
    return this.unary(
      "/etcdserverpb.Maintenance/HashKV",
      HashKVRequestSchema,
      HashKVResponseSchema,
      { revision: BigInt(revision) },
    );
  }

  memberList(): Promise<MemberListResponse> {
    return this.unary(
      "/etcdserverpb.Cluster/MemberList",
      MemberListRequestSchema,
      MemberListResponseSchema,
      {},
    );
  }

  /** Any unary call, bounded by the client's timeout. */
  unary<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    init: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    const frame = encodeGrpcFrame(toBinary(input, create(input, init)));
    return new Promise((resolve, reject) => {
      let request: http2.ClientHttp2Stream;
      try {
        request = this.#connect().request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          "te": "trailers",
        });
      } catch (error) {
        reject(asCallError(error));
        return;
      }
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const timer = setTimeout(() => {
        finish(() => reject(new CallError(`${path}: timed out after ${this.timeoutMs} ms`, false)));
        request.close(http2.constants.NGHTTP2_CANCEL);
        this.reset();
      }, this.timeoutMs);
      const chunks: Uint8Array[] = [];
      let status: number | undefined;
      let message = "";
      const takeStatus = (headers: http2.IncomingHttpHeaders) => {
        const code = headers["grpc-status"];
        if (code === undefined) return;
        status = Number(code);
        message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
      };
      request.on("response", takeStatus);
      request.on("trailers", takeStatus);
      request.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      request.on("error", (error) => finish(() => reject(asCallError(error))));
      request.on("close", () => {
        finish(() => {
          if (status === undefined) {
            reject(new CallError(`${path}: stream closed without a gRPC status`, false));
          } else if (status !== 0) {
            reject(new CallError(`${path}: ${message}`, false, status));
          } else {
            const all = concatBytes(...chunks);
            if (all.length < GRPC_PREFIX_BYTES) {
              reject(new CallError(`${path}: OK status without a message`, false));
              return;
            }
            const length = grpcFrameLength(all);
            resolve(
              fromBinary(output, all.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + length)),
            );
          }
        });
      });
      request.end(frame);
    });
  }

  /** Watches every key under `prefix` from `startRevision` on a stream of its own. */
  watch(prefix: string, startRevision: number, handlers: WatchHandlers): WatchHandle {
    let request: http2.ClientHttp2Stream;
    let ended = false;
    const end = (reason: string) => {
      if (ended) return;
      ended = true;
      handlers.onEnd(reason);
    };
    try {
      request = this.#connect().request({
        ":method": "POST",
        ":path": "/etcdserverpb.Watch/Watch",
        "content-type": "application/grpc",
        "te": "trailers",
      });
    } catch (error) {
      queueMicrotask(() => end(`${error}`));
      return { requestProgress() {}, close() {} };
    }
    const send = (init: MessageInitShape<typeof WatchRequestSchema>) => {
      if (ended || request.closed) return;
      request.write(
        encodeGrpcFrame(toBinary(WatchRequestSchema, create(WatchRequestSchema, init))),
      );
    };
    const key = encoder.encode(prefix);
    send({
      requestUnion: {
        case: "createRequest",
        value: { key, rangeEnd: prefixEnd(key), startRevision: BigInt(startRevision) },
      },
    });
    const reader = new FrameReader();
    request.on("data", (chunk: Uint8Array) => {
      for (const frame of reader.push(chunk)) {
        if (ended) return;
        handlers.onResponse(fromBinary(WatchResponseSchema, frame));
      }
    });
    request.on("trailers", (headers) => {
      end(`ended: grpc-status ${headers["grpc-status"]} ${headers["grpc-message"] ?? ""}`);
    });
    request.on("error", (error) => end(`${error}`));
    request.on("close", () => end("stream closed"));
    return {
      requestProgress: () => send({ requestUnion: { case: "progressRequest", value: {} } }),
      close: () => {
        ended = true;
        request.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  }
}

function asCallError(error: unknown): CallError {
  if (error instanceof CallError) return error;
  const code = (error as { code?: string }).code;
  return new CallError(`${error}`, code === "ECONNREFUSED");
}

/** The end of the range of every key starting with `prefix`. */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}
