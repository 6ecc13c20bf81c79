/**
 * etcd's JSON gateway on the client port: `POST /v3/<service>/<call>` (and `/v3beta/...`, which
 * etcd 3.4 rewrites to `/v3/`) with a JSON body, answered as etcd 3.4's grpc-gateway answers,
 * from the same method table as gRPC and Connect. Unary calls answer one JSON object; Watch and
 * LeaseKeepAlive read a stream of JSON objects from the body, and they, Snapshot and Observe
 * answer newline-delimited `{"result":...}` chunks. The `Authorization` header carries the token
 * `/v3/auth/authenticate` issued. Errors: `{"error","message","code"}` with the gRPC code's HTTP
 * status, or a `{"error":{...}}` chunk once a stream has started, as grpc-gateway writes them.
 */

import { type Message, toBinary } from "@bufbuild/protobuf";
import { GrpcCode, type GrpcCodeValue } from "../core/errors.ts";
import type { AnyMethod, CallContext, MethodTable } from "./grpc.ts";
import { toStatus } from "./grpc.ts";
import {
  GatewayJsonError,
  goEscape,
  type JsonNode,
  messageFromJson,
  messageToJsonText,
  readJsonValue,
} from "./gateway_json.ts";

/** Gateway path (after `/v3/`) → gRPC method, in etcd's registration order. */
const ROUTES: [string, string][] = [
  ["kv/range", "/etcdserverpb.KV/Range"],
  ["kv/put", "/etcdserverpb.KV/Put"],
  ["kv/deleterange", "/etcdserverpb.KV/DeleteRange"],
  ["kv/txn", "/etcdserverpb.KV/Txn"],
  ["kv/compaction", "/etcdserverpb.KV/Compact"],
  ["watch", "/etcdserverpb.Watch/Watch"],
  ["lease/grant", "/etcdserverpb.Lease/LeaseGrant"],
  ["lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"],
  ["kv/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"],
  ["lease/keepalive", "/etcdserverpb.Lease/LeaseKeepAlive"],
  ["lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive"],
  ["kv/lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive"],
  ["lease/leases", "/etcdserverpb.Lease/LeaseLeases"],
  ["kv/lease/leases", "/etcdserverpb.Lease/LeaseLeases"],
  ["cluster/member/add", "/etcdserverpb.Cluster/MemberAdd"],
  ["cluster/member/remove", "/etcdserverpb.Cluster/MemberRemove"],
  ["cluster/member/update", "/etcdserverpb.Cluster/MemberUpdate"],
  ["cluster/member/list", "/etcdserverpb.Cluster/MemberList"],
  ["cluster/member/promote", "/etcdserverpb.Cluster/MemberPromote"],
  ["maintenance/alarm", "/etcdserverpb.Maintenance/Alarm"],
  ["maintenance/status", "/etcdserverpb.Maintenance/Status"],
  ["maintenance/defragment", "/etcdserverpb.Maintenance/Defragment"],
  // etcd's rpc.proto maps Hash and HashKV to the same path; the first registered (Hash) answers.
  ["maintenance/hash", "/etcdserverpb.Maintenance/Hash"],
  ["maintenance/snapshot", "/etcdserverpb.Maintenance/Snapshot"],
  ["maintenance/transfer-leadership", "/etcdserverpb.Maintenance/MoveLeader"],
  ["auth/enable", "/etcdserverpb.Auth/AuthEnable"],
  ["auth/disable", "/etcdserverpb.Auth/AuthDisable"],
  ["auth/authenticate", "/etcdserverpb.Auth/Authenticate"],
  ["auth/user/add", "/etcdserverpb.Auth/UserAdd"],
  ["auth/user/get", "/etcdserverpb.Auth/UserGet"],
  ["auth/user/list", "/etcdserverpb.Auth/UserList"],
  ["auth/user/delete", "/etcdserverpb.Auth/UserDelete"],
  ["auth/user/changepw", "/etcdserverpb.Auth/UserChangePassword"],
  ["auth/user/grant", "/etcdserverpb.Auth/UserGrantRole"],
  ["auth/user/revoke", "/etcdserverpb.Auth/UserRevokeRole"],
  ["auth/role/add", "/etcdserverpb.Auth/RoleAdd"],
  ["auth/role/get", "/etcdserverpb.Auth/RoleGet"],
  ["auth/role/list", "/etcdserverpb.Auth/RoleList"],
  ["auth/role/delete", "/etcdserverpb.Auth/RoleDelete"],
  ["auth/role/grant", "/etcdserverpb.Auth/RoleGrantPermission"],
  ["auth/role/revoke", "/etcdserverpb.Auth/RoleRevokePermission"],
  ["lock/lock", "/v3lockpb.Lock/Lock"],
  ["lock/unlock", "/v3lockpb.Lock/Unlock"],
  ["election/campaign", "/v3electionpb.Election/Campaign"],
  ["election/proclaim", "/v3electionpb.Election/Proclaim"],
  ["election/leader", "/v3electionpb.Election/Leader"],
  ["election/observe", "/v3electionpb.Election/Observe"],
  ["election/resign", "/v3electionpb.Election/Resign"],
];

/** Methods whose requests are a stream (the body holds one JSON object after another). */
const CLIENT_STREAMING = new Set([
  "/etcdserverpb.Watch/Watch",
  "/etcdserverpb.Lease/LeaseKeepAlive",
]);

/** Header fields, in the order they are written (Go sorts its own). */
export type HeaderList = [string, string][];

/** One gateway request, whatever carried it (HTTP/1.1 or HTTP/2). */
export interface GatewayExchange {
  method: string;
  /** The path, `/v3/...` (a `/v3beta/` prefix already rewritten). */
  path: string;
  /** Request headers, names lower case. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The request body as it arrives. */
  body: AsyncIterable<Uint8Array>;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** A whole response with a known length. */
  reply(status: number, headers: HeaderList, body: string): void;
  /** Starts a response whose body follows in pieces (chunked). */
  start(status: number, headers: HeaderList): void;
  write(text: string): void;
  /** Ends a started response, with trailers if given. */
  end(trailers?: HeaderList): void;
}

/** Go's http.StatusText for the statuses the gateway answers with. */
const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  412: "Precondition Failed",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** grpc-gateway's HTTPStatusFromCode. */
export function httpStatusOf(code: GrpcCodeValue): number {
  switch (code) {
    case GrpcCode.OK:
      return 200;
    case GrpcCode.Canceled:
      return 408;
    case GrpcCode.InvalidArgument:
    case GrpcCode.OutOfRange:
      return 400;
    case GrpcCode.DeadlineExceeded:
      return 504;
    case GrpcCode.NotFound:
      return 404;
    case GrpcCode.AlreadyExists:
    case GrpcCode.Aborted:
      return 409;
    case GrpcCode.PermissionDenied:
      return 403;
    case GrpcCode.Unauthenticated:
      return 401;
    case GrpcCode.ResourceExhausted:
      return 429;
    case GrpcCode.FailedPrecondition:
      return 412;
    case GrpcCode.Unimplemented:
      return 501;
    case GrpcCode.Unavailable:
      return 503;
    default:
      return 500;
  }
}

const JSON_TYPE: [string, string] = ["Content-Type", "application/json"];
/** The gRPC response header grpc-gateway passes on (its server metadata). */
const GRPC_METADATA: [string, string] = ["Grpc-Metadata-Content-Type", "application/grpc"];
const GRPC_TRAILER: [string, string] = ["Grpc-Trailer-Content-Type", "application/grpc"];

function errorBody(code: GrpcCodeValue, message: string): string {
  return goEscape(JSON.stringify({ error: message, message, code }));
}

function streamErrorChunk(code: GrpcCodeValue, message: string): string {
  const httpCode = httpStatusOf(code);
  return goEscape(JSON.stringify({
    error: {
      grpc_code: code,
      http_code: httpCode,
      message,
      http_status: STATUS_TEXT[httpCode] ?? "",
    },
  }));
}

/** Go's http.Error: plain text, a newline after the message. */
function httpError(exchange: GatewayExchange, status: number): void {
  exchange.reply(status, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["X-Content-Type-Options", "nosniff"],
  ], `${STATUS_TEXT[status]}\n`);
}

/** Reads a request body's JSON values one at a time, as Go's json.Decoder does. */
class BodyValues {
  #text = "";
  #pos = 0;
  #ended = false;
  readonly #decoder = new TextDecoder();
  readonly #chunks: AsyncIterator<Uint8Array>;

  constructor(body: AsyncIterable<Uint8Array>, readonly maxBytes: number) {
    this.#chunks = body[Symbol.asyncIterator]();
  }

  /** The next value; null at the end of the body; throws GatewayJsonError on bad JSON. */
  async next(): Promise<JsonNode | null> {
    while (true) {
      try {
        const value = readJsonValue(this.#text, this.#pos);
        if (value !== null) {
          this.#pos = value.end;
          return value.node;
        }
        if (this.#ended) return null;
      } catch (e) {
        if (!(e instanceof GatewayJsonError) || e.message !== "unexpected EOF" || this.#ended) {
          throw e;
        }
      }
      await this.#more();
    }
  }

  async #more(): Promise<void> {
    const { value, done } = await this.#chunks.next();
    if (done) {
      this.#ended = true;
      this.#text += this.#decoder.decode();
      return;
    }
    this.#text = this.#text.slice(this.#pos) + this.#decoder.decode(value, { stream: true });
    this.#pos = 0;
    // What is read but not yet a whole value: one message's worth at most (a long-lived watch
    // stream may send any number of them).
    if (this.#text.length > this.maxBytes) throw new TooLarge(this.#text.length, this.maxBytes);
  }
}

/** A request larger than the member takes (grpc's "received message larger than max"). */
class TooLarge extends Error {
  constructor(readonly size: number, readonly max: number) {
    super(`grpc: received message larger than max (${size} vs. ${max})`);
  }
}

/** The gateway: answers `exchange` and returns true, or returns false for paths it does not own. */
export function gatewayHandler(
  table: MethodTable,
  maxRecvBytes: number,
): (exchange: GatewayExchange) => boolean {
  const routes = new Map<string, { path: string; method: AnyMethod }>();
  for (const [suffix, path] of ROUTES) {
    const method = table.get(path);
    if (method !== undefined && !routes.has(suffix)) routes.set(suffix, { path, method });
  }
  // The body may hold JSON text (base64 grows bytes by a third) of a message up to the limit.
  const maxBodyBytes = maxRecvBytes * 2 + 1024 * 1024;
  return (exchange) => {
    if (!exchange.path.startsWith("/v3/")) return false;
    const route = routes.get(exchange.path.slice("/v3/".length));
    if (route === undefined) {
      httpError(exchange, 404);
      return true;
    }
    if (exchange.method !== "POST") {
      httpError(exchange, 405);
      return true;
    }
    const ctx: CallContext = { headers: exchange.headers, signal: exchange.signal };
    const body = new BodyValues(exchange.body, maxBodyBytes);
    const run = route.method.kind === "unary"
      ? unary(route.method, body, ctx, exchange, maxRecvBytes)
      : stream(route.path, route.method, body, ctx, exchange, maxRecvBytes);
    run.catch(() => {
      // The client went away mid-answer; nothing left to tell it.
    });
    return true;
  };
}

/** Decodes one request message; an empty body is an empty request (grpc-gateway ignores EOF). */
async function decodeRequest(
  method: AnyMethod,
  body: BodyValues,
  maxRecvBytes: number,
): Promise<Message> {
  return requestFrom(method, await body.next() ?? { kind: "null" }, maxRecvBytes);
}

function requestFrom(method: AnyMethod, node: JsonNode, maxRecvBytes: number): Message {
  const message = messageFromJson(method.input, node);
  const size = toBinary(method.input, message as never).length;
  if (size > maxRecvBytes) throw new TooLarge(size, maxRecvBytes);
  return message;
}

/** A failure decoding the body, before any call: grpc-gateway's status for it. */
function decodeFailure(e: unknown, code: GrpcCodeValue): { code: GrpcCodeValue; message: string } {
  if (e instanceof TooLarge) return { code: GrpcCode.ResourceExhausted, message: e.message };
  if (e instanceof GatewayJsonError) return { code, message: e.message };
  throw e;
}

async function unary(
  method: AnyMethod & { kind: "unary" },
  body: BodyValues,
  ctx: CallContext,
  exchange: GatewayExchange,
  maxRecvBytes: number,
): Promise<void> {
  // A call's failure, as grpc-gateway passes a gRPC status on: the trailer declared and sent.
  const callFailed = (code: GrpcCodeValue, message: string) => {
    exchange.start(httpStatusOf(code), [JSON_TYPE, ["Trailer", GRPC_TRAILER[0]]]);
    exchange.write(errorBody(code, message));
    exchange.end([GRPC_TRAILER]);
  };
  let request;
  try {
    request = await decodeRequest(method, body, maxRecvBytes);
  } catch (e) {
    const { code, message } = decodeFailure(e, GrpcCode.InvalidArgument);
    // Too large is the gRPC server's refusal (a call that failed), not the gateway's.
    if (e instanceof TooLarge) callFailed(code, message);
    else exchange.reply(httpStatusOf(code), [JSON_TYPE], errorBody(code, message));
    return;
  }
  let response;
  try {
    response = await method.handle(request, ctx);
  } catch (e) {
    const { code, message } = toStatus(e);
    callFailed(code, message);
    return;
  }
  exchange.reply(200, [JSON_TYPE, GRPC_METADATA], messageToJsonText(method.output, response));
}

async function stream(
  path: string,
  method: AnyMethod & { kind: "stream" },
  body: BodyValues,
  ctx: CallContext,
  exchange: GatewayExchange,
  maxRecvBytes: number,
): Promise<void> {
  const clientStreaming = CLIENT_STREAMING.has(path);
  // A client stream whose body is empty sends nothing; a server stream's request is empty.
  let first: Message | null;
  try {
    const node = await body.next();
    first = node === null && clientStreaming
      ? null
      : requestFrom(method, node ?? { kind: "null" }, maxRecvBytes);
  } catch (e) {
    // A server-streaming call decodes like a unary one (InvalidArgument); the first message of a
    // client stream fails as a plain error, which grpc-gateway reports as Unknown.
    const { code, message } = decodeFailure(
      e,
      clientStreaming ? GrpcCode.Unknown : GrpcCode.InvalidArgument,
    );
    exchange.reply(httpStatusOf(code), [JSON_TYPE], errorBody(code, message));
    return;
  }
  async function* requests() {
    if (first === null) return;
    yield first;
    if (!clientStreaming) return;
    while (!ctx.signal.aborted) {
      let next;
      try {
        const node = await body.next();
        if (node === null) return;
        next = requestFrom(method, node, maxRecvBytes);
      } catch {
        // grpc-gateway stops sending at the first value it cannot decode; the call goes on.
        return;
      }
      yield next;
    }
  }
  let started = false;
  const startWith = (status: number, metadata: boolean) => {
    started = true;
    exchange.start(status, [
      JSON_TYPE,
      ...(metadata ? [GRPC_METADATA] : []),
      ["Transfer-Encoding", "chunked"],
    ]);
  };
  try {
    await method.handle(requests(), (response) => {
      if (!started) startWith(200, true);
      exchange.write(`{"result":${messageToJsonText(method.output, response)}}\n`);
      return Promise.resolve();
    }, ctx);
  } catch (e) {
    const { code, message } = toStatus(e);
    if (!started) startWith(httpStatusOf(code), false);
    exchange.write(streamErrorChunk(code, message));
    exchange.end();
    return;
  }
  if (!started) startWith(200, false);
  exchange.end();
}
