/**
 * Messages between the main thread (which owns the node) and client workers (which own client
 * connections: HTTP/2, gRPC framing, HTTP/1.1). Calls travel as request bytes and come back as
 * response bytes or an etcd status; both directions are batched per event-loop turn.
 */

/** Main → worker, once: what to listen on and which methods exist. */
export interface WorkerInit {
  kind: "init";
  host: string;
  port: number;
  maxRecvBytes: number;
  /** gRPC paths of the unary methods the node serves. */
  unaryPaths: string[];
  logFormat: "zap" | "capnslog";
  logLevel: "debug" | "info" | "warn" | "error" | "panic" | "fatal";
}

/** A unary call forwarded by a worker. */
export interface CallMessage {
  id: number;
  path: string;
  payload: Uint8Array;
  /** The `token` metadata header, if the client sent one (auth). */
  token?: string;
}

/** A plain HTTP/1.1 endpoint request forwarded by a worker. */
export interface PlainMessage {
  id: number;
  /** The request target: path and query. */
  plainPath: string;
  plainMethod: string;
}

/** Worker → main: calls gathered during one turn. */
export interface CallBatch {
  kind: "calls";
  calls: (CallMessage | PlainMessage)[];
}

/** Worker → main: listening (or failed to). */
export interface WorkerReady {
  kind: "ready";
  /** The port actually bound (the first worker picks it when asked for port 0). */
  port?: number;
  error?: string;
}

/** The answer to one call. */
export type ReplyMessage =
  | { id: number; payload: Uint8Array }
  | { id: number; code: number; message: string }
  | { id: number; plain: { status: number; contentType: string; body: string } | null };

/** Main → worker: replies gathered during one turn. */
export interface ReplyBatch {
  kind: "replies";
  replies: ReplyMessage[];
}

export type ToWorker = WorkerInit | ReplyBatch;
export type FromWorker = CallBatch | WorkerReady;
