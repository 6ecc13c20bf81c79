/**
 * The JSON gateway over WebSocket, as etcd 3.4 serves it on `/v3/` (tmc/grpc-websocket-proxy over
 * gorilla/websocket): a `GET` upgrade turns the connection into one gateway call. Each message the
 * client sends is a line of the call's request body (its text and a newline); each line the call
 * answers is one text message; when the call ends the connection closes (no close frame, as the
 * proxy closes the socket). The call is always a POST and sees none of the request's headers but
 * Origin and Referer: the token comes from `Sec-WebSocket-Protocol: Bearer, <token>` or a `token`
 * cookie, as `Authorization: Bearer <token>` (which etcd 3.4's auth then reads as the token).
 *
 * RFC 6455 framing, written here: client frames must be masked; ping is answered with pong; a
 * close frame is answered with one carrying its code; a protocol error closes with 1002 and
 * gorilla's reason. Unlike gorilla, one message is bounded (closed with 1009 past it).
 */

import { createHash } from "node:crypto";
import type * as http from "node:http";
import type { Duplex } from "node:stream";
import { concatBytes } from "../core/bytes.ts";
import type { GatewayExchange, HeaderList } from "./gateway.ts";

/** RFC 6455's GUID appended to the client's key for Sec-WebSocket-Accept. */
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_NO_STATUS = 1005;
const CLOSE_TOO_BIG = 1009;

/** Close codes a peer may send (gorilla's validReceivedCloseCodes). */
function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1013) ||
    (code >= 3000 && code <= 4999);
}

type Headers = Readonly<Record<string, string | string[] | undefined>>;

function headerText(headers: Headers, name: string): string {
  const value = headers[name];
  return Array.isArray(value) ? value.join(",") : value ?? "";
}

/** gorilla's tokenListContainsValue: `value` among the comma-separated tokens, any case. */
function hasToken(headers: Headers, name: string, value: string): boolean {
  return headerText(headers, name).split(",").some((t) => t.trim().toLowerCase() === value);
}

/** websocket.IsWebSocketUpgrade: `Connection: upgrade` and `Upgrade: websocket`. */
export function isWebSocketUpgrade(headers: Headers): boolean {
  return hasToken(headers, "connection", "upgrade") && hasToken(headers, "upgrade", "websocket");
}

/**
 * Why gorilla's Upgrader would refuse this upgrade request (its status; the answer is
 * http.Error's status text with `Sec-Websocket-Version: 13`), or null when it upgrades.
 */
export function upgradeRefusal(method: string, headers: Headers): number | null {
  if (method !== "GET") return 405;
  if (!hasToken(headers, "sec-websocket-version", "13")) return 400;
  if (headerText(headers, "sec-websocket-key") === "") return 400;
  return null;
}

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
}

/** The headers the proxy gives the gateway call: the token's, Origin and Referer. */
function callHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  const protocol = headerText(headers, "sec-websocket-protocol");
  if (protocol !== "") {
    // transformSubProtocolHeader: what follows "Bearer," (browsers may omit the space).
    const at = protocol.indexOf("Bearer,");
    out["authorization"] = at < 0 ? "" : `Bearer ${protocol.slice(at + "Bearer,".length).trim()}`;
  }
  for (const name of ["origin", "referer"]) {
    if (headers[name] !== undefined) out[name] = headerText(headers, name);
  }
  for (const cookie of headerText(headers, "cookie").split(";")) {
    const eq = cookie.indexOf("=");
    if (eq > 0 && cookie.slice(0, eq).trim() === "token") {
      out["authorization"] = `Bearer ${cookie.slice(eq + 1).trim()}`;
      break;
    }
  }
  return out;
}

/** A server frame (unmasked, final) carrying `payload`. */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(head + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = n;
  else if (n < 65536) {
    out[1] = 126;
    new DataView(out.buffer).setUint16(2, n);
  } else {
    out[1] = 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  out.set(payload, head);
  return out;
}

function closePayload(code: number, reason: string): Uint8Array {
  if (code === CLOSE_NO_STATUS) return new Uint8Array(0);
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + text.length);
  new DataView(out.buffer).setUint16(0, code);
  out.set(text, 2);
  return out;
}

/**
 * Accepts an upgrade request (upgradeRefusal returned null) on `socket` and returns the gateway
 * exchange it carries. `maxMessageBytes` bounds one message (a larger one closes with 1009).
 */
export function acceptWebSocket(
  req: http.IncomingMessage,
  socket: Duplex,
  head: Uint8Array,
  path: string,
  maxMessageBytes: number,
): GatewayExchange {
  const lines = [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${acceptKey(headerText(req.headers, "sec-websocket-key"))}`,
  ];
  // The proxy answers a `Bearer` subprotocol in kind.
  if (headerText(req.headers, "sec-websocket-protocol").startsWith("Bearer")) {
    lines.push("Sec-WebSocket-Protocol: Bearer");
  }
  socket.write(lines.join("\r\n") + "\r\n\r\n");

  const aborted = new AbortController();
  const encoder = new TextEncoder();
  let closed = false;
  /** Closes the connection (the proxy closes its socket without a close frame of its own). */
  const finish = () => {
    if (closed) return;
    closed = true;
    aborted.abort();
    wake?.();
    socket.end();
  };
  const send = (opcode: number, payload: Uint8Array) => {
    if (!closed && socket.writable) socket.write(frame(opcode, payload));
  };
  socket.on("close", () => {
    closed = true;
    aborted.abort();
    wake?.();
  });
  socket.on("error", () => socket.destroy());

  // The request body: each message's payload and a newline.
  const body: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  const newline = encoder.encode("\n");
  const deliver = (payload: Uint8Array) => {
    body.push(payload, newline);
    wake?.();
  };
  const protocolError = (code: number, reason: string) => {
    send(OP_CLOSE, closePayload(code, reason));
    finish();
  };

  let pending: Uint8Array = new Uint8Array(0);
  /** The payloads of a message arriving in fragments, or null between messages. */
  let fragments: Uint8Array[] | null = null;
  let fragmentBytes = 0;
  const onData = (chunk: Uint8Array) => {
    if (closed) return;
    pending = pending.length === 0 ? new Uint8Array(chunk) : concatBytes(pending, chunk);
    while (!closed) {
      const used = readFrame(pending);
      if (used === 0) return;
      pending = pending.subarray(used);
    }
  };
  /** Handles one whole frame at the start of `buf`; returns its length, 0 if incomplete. */
  const readFrame = (buf: Uint8Array): number => {
    if (buf.length < 2) return 0;
    const fin = (buf[0] & 0x80) !== 0;
    const opcode = buf[0] & 0x0f;
    const masked = (buf[1] & 0x80) !== 0;
    let length = buf[1] & 0x7f;
    // gorilla's checks of the first two bytes, every failed one named, in its order and words.
    const errors: string[] = [];
    for (const [bit, name] of [[0x40, "RSV1"], [0x20, "RSV2"], [0x10, "RSV3"]] as const) {
      if ((buf[0] & bit) !== 0) errors.push(`${name} set`);
    }
    switch (opcode) {
      case OP_CLOSE:
      case OP_PING:
      case OP_PONG:
        if (length > 125) errors.push("len > 125 for control");
        if (!fin) errors.push("FIN not set on control");
        break;
      case OP_TEXT:
      case OP_BINARY:
        if (fragments !== null) errors.push("data before FIN");
        break;
      case OP_CONTINUATION:
        if (fragments === null) errors.push("continuation after FIN");
        break;
      default:
        errors.push(`bad opcode ${opcode}`);
    }
    if (!masked) errors.push("bad MASK");
    if (errors.length > 0) {
      protocolError(CLOSE_PROTOCOL_ERROR, errors.join(", "));
      return 0;
    }
    let at = 2;
    if (length === 126) {
      if (buf.length < 4) return 0;
      length = (buf[2] << 8) | buf[3];
      at = 4;
    } else if (length === 127) {
      if (buf.length < 10) return 0;
      const long = new DataView(buf.buffer, buf.byteOffset + 2, 8).getBigUint64(0);
      if (long > BigInt(maxMessageBytes)) {
        protocolError(CLOSE_TOO_BIG, "");
        return 0;
      }
      length = Number(long);
      at = 10;
    }
    if (fragmentBytes + length > maxMessageBytes) {
      protocolError(CLOSE_TOO_BIG, "");
      return 0;
    }
    if (buf.length < at + 4 + length) return 0;
    const mask = buf.subarray(at, at + 4);
    const payload = buf.slice(at + 4, at + 4 + length);
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    const used = at + 4 + length;
    switch (opcode) {
      case OP_PING:
        send(OP_PONG, payload);
        break;
      case OP_PONG:
        break;
      case OP_CLOSE: {
        const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : CLOSE_NO_STATUS;
        if (payload.length >= 2 && !validCloseCode(code)) {
          protocolError(CLOSE_PROTOCOL_ERROR, `bad close code ${code}`);
          break;
        }
        send(OP_CLOSE, closePayload(code, ""));
        finish();
        break;
      }
      default: {
        const parts: Uint8Array[] = fragments ?? [];
        parts.push(payload);
        fragmentBytes += payload.length;
        if (!fin) {
          fragments = parts;
          break;
        }
        fragments = null;
        fragmentBytes = 0;
        deliver(parts.length === 1 ? parts[0] : concatBytes(...parts));
      }
    }
    return used;
  };
  socket.on("data", onData);
  if (head.length > 0) onData(head);

  async function* requestBody(): AsyncGenerator<Uint8Array> {
    while (true) {
      if (body.length > 0) {
        yield body.shift()!;
        continue;
      }
      if (closed) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  }

  // The answer, split into lines as the proxy's scanner splits it: one text message per line
  // (empty lines skipped, a trailing \r dropped); what follows the last newline goes at the end.
  let partial = "";
  const sendLines = (text: string, last: boolean) => {
    const parts = (partial + text).split("\n");
    partial = last ? "" : parts.pop()!;
    for (const line of parts) {
      const message = line.endsWith("\r") ? line.slice(0, -1) : line;
      if (message !== "") send(OP_TEXT, encoder.encode(message));
    }
  };
  return {
    method: "POST",
    path,
    headers: callHeaders(req.headers),
    body: requestBody(),
    signal: aborted.signal,
    reply(_status: number, _headers: HeaderList, text: string) {
      sendLines(text, true);
      finish();
    },
    start() {},
    write(text: string) {
      sendLines(text, false);
    },
    end() {
      sendLines("", true);
      finish();
    },
  };
}
