/**
 * The Connect protocol on detcd's own HTTP/2 streams (server/h2), for browsers on a TLS client
 * port: they pick HTTP/2 by ALPN there, and connect-node's adapter serves only the HTTP/1.1 side
 * (server/connect.ts). Unary calls (`application/proto` or `application/json`) and server streams
 * (`application/connect+proto` / `+json`: 5-byte envelopes, an end-of-stream envelope with the
 * error if any) over the same method table as gRPC, so every protocol answers alike.
 * Compressed requests are refused (connect-web sends none).
 */
import {
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import type { Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { GrpcCode, type GrpcCodeValue } from "../core/errors.ts";
import { type AnyMethod, LazyContext, type MethodTable, type PeerInfo, toStatus } from "./grpc.ts";
import { encodeHeaders, type H2Stream } from "./h2/mod.ts";
import { noteCall } from "./grpc_metrics.ts";

/** Whether a request on an HTTP/2 stream is a Connect call (its content type says so). */
export function isConnectRequest(headers: Record<string, string>): boolean {
  if (headers[":method"] !== "POST") return false;
  const type = (headers["content-type"] ?? "").split(";")[0].trim();
  return type === "application/proto" || type === "application/json" ||
    type === "application/connect+proto" || type === "application/connect+json";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A Connect error's JSON (its code's name, as Connect's own code and status tables have them). */
function errorBody(code: GrpcCodeValue, message: string): { code: string; message: string } {
  return { code: codeToString(connectCode(code)), message };
}

/** A failure's code as Connect's (the same numbers; OK, never an error's, reads as unknown). */
function connectCode(code: GrpcCodeValue): Code {
  return (code === GrpcCode.OK ? GrpcCode.Unknown : code) as Code;
}

/** Reads the whole request body, at most `max` bytes (then null). */
function readBody(stream: H2Stream, max: number): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    stream.ondata = (chunk) => {
      size += chunk.length;
      stream.consumed(chunk.length);
      if (size <= max) chunks.push(chunk);
      // Too large: answered at once (ending the stream resets the client's upload), not read on.
      else resolve(null);
    };
    stream.onend = () => {
      if (size > max) return resolve(null);
      const body = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        body.set(c, at);
        at += c.length;
      }
      resolve(body);
    };
    stream.onclose = () => resolve(null);
  });
}

/** Serves one Connect call on an HTTP/2 stream. */
export async function handleConnectStream(
  table: MethodTable,
  maxRecvBytes: number,
  stream: H2Stream,
  peer: PeerInfo,
): Promise<void> {
  noteCall();
  const headers = stream.headers;
  const type = (headers["content-type"] ?? "").split(";")[0].trim();
  const streaming = type.startsWith("application/connect+");
  const json = type.endsWith("json");
  const method: AnyMethod | undefined = table.get(headers[":path"] ?? "");
  // The call's signal only if its handler asks for one (an abort makes a DOMException).
  const ctx = new LazyContext(stream, peer, true);
  const respondError = (code: GrpcCodeValue, message: string) => {
    if (stream.closed) return;
    if (streaming) {
      stream.respond(encodeHeaders({ ":status": "200", "content-type": type }));
      stream.write(
        envelope(2, encoder.encode(JSON.stringify({ error: errorBody(code, message) }))),
      );
      stream.end();
      return;
    }
    const body = encoder.encode(JSON.stringify(errorBody(code, message)));
    stream.respond(encodeHeaders({
      ":status": String(codeToHttpStatus(connectCode(code))),
      "content-type": "application/json",
      "content-length": String(body.length),
    }));
    stream.write(body);
    stream.end();
  };
  // Bytes of a request: the envelope's 5 bytes as well, for a stream.
  const body = await readBody(stream, maxRecvBytes + (streaming ? 5 : 0));
  stream.onclose = () => ctx.closed();
  if (stream.closed) return;
  if (method === undefined) {
    return respondError(GrpcCode.Unimplemented, `${headers[":path"]} is not implemented`);
  }
  if (headers["content-encoding"] && headers["content-encoding"] !== "identity") {
    return respondError(GrpcCode.Unimplemented, "compressed requests are not supported");
  }
  if (body === null) {
    return respondError(
      GrpcCode.ResourceExhausted,
      `message larger than max (${maxRecvBytes})`,
    );
  }
  if (streaming !== (method.kind === "stream")) {
    return respondError(GrpcCode.Unimplemented, `${headers[":path"]}: wrong content type ${type}`);
  }
  let bytes = body;
  if (streaming) {
    if (body.length < 5 || (body[0] & 1) !== 0) {
      return respondError(GrpcCode.InvalidArgument, "malformed or compressed envelope");
    }
    const length = new DataView(body.buffer, body.byteOffset).getUint32(1);
    bytes = body.subarray(5, 5 + length);
  }
  const decode = <I extends DescMessage>(schema: I): MessageShape<I> =>
    json
      ? fromJson(schema, JSON.parse(decoder.decode(bytes) || "{}") as JsonValue)
      : fromBinary(schema, bytes);
  const encode = <O extends DescMessage>(schema: O, message: MessageShape<O>): Uint8Array =>
    json ? encoder.encode(JSON.stringify(toJson(schema, message))) : toBinary(schema, message);
  let request;
  try {
    request = decode(method.input);
  } catch (e) {
    return respondError(
      GrpcCode.InvalidArgument,
      `bad request: ${e instanceof Error ? e.message : e}`,
    );
  }
  if (method.kind === "unary") {
    try {
      const response = encode(method.output, await method.handle(request, ctx));
      if (stream.closed) return;
      stream.respond(encodeHeaders({
        ":status": "200",
        "content-type": type,
        "content-length": String(response.length),
      }));
      stream.write(response);
      stream.end();
    } catch (e) {
      const s = toStatus(e);
      respondError(s.code, s.message);
    }
    return;
  }
  // A server stream: envelopes as the handler sends, then the end of the stream.
  stream.respond(encodeHeaders({ ":status": "200", "content-type": type }));
  let drained: (() => void) | null = null;
  stream.ondrain = () => drained?.();
  const send = async (message: MessageShape<DescMessage>) => {
    if (stream.closed) throw new Error("the client went away");
    if (!stream.write(envelope(0, encode(method.output, message)))) {
      await new Promise<void>((resolve) => (drained = resolve));
      drained = null;
    }
  };
  let end: Record<string, unknown> = {};
  try {
    await method.handle(
      (async function* () {
        yield request;
      })(),
      send,
      ctx,
    );
  } catch (e) {
    const s = toStatus(e);
    end = { error: errorBody(s.code, s.message) };
  }
  if (stream.closed) return;
  stream.write(envelope(2, encoder.encode(JSON.stringify(end))));
  stream.end();
}

/** One Connect envelope: flags, a 4-byte big-endian length, the data. */
function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}
