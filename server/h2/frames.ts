/**
 * HTTP/2 frame constants and the frame header codec (RFC 9113 §4.1, §6, §7, §11). Kept apart
 * from the connection so that tests and tools can build and read frames byte by byte.
 */

/** The client connection preface (RFC 9113 §3.4): 24 octets before the first SETTINGS frame. */
export const CLIENT_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Octets in a frame header. */
export const FRAME_HEADER_LENGTH = 9;

/** Frame types (RFC 9113 §6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags (RFC 9113 §6). */
export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Error codes for RST_STREAM and GOAWAY (RFC 9113 §7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** SETTINGS identifiers (RFC 9113 §6.5.2). */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** The default and smallest legal SETTINGS_MAX_FRAME_SIZE. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;
/** The largest legal SETTINGS_MAX_FRAME_SIZE. */
export const MAX_MAX_FRAME_SIZE = 16777215;
/** The initial flow-control window of a connection and of streams until SETTINGS change it. */
export const DEFAULT_WINDOW_SIZE = 65535;
/** The largest flow-control window (2^31 - 1). */
export const MAX_WINDOW_SIZE = 2147483647;

/** A decoded frame header. */
export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

/** Reads the frame header at `offset` (the caller checked that 9 octets are there). */
export function readFrameHeader(buf: Uint8Array, offset: number): FrameHeader {
  return {
    length: (buf[offset] << 16) | (buf[offset + 1] << 8) | buf[offset + 2],
    type: buf[offset + 3],
    flags: buf[offset + 4],
    streamId: readUint31(buf, offset + 5),
  };
}

/** A 31-bit big-endian value (the reserved top bit ignored). */
export function readUint31(buf: Uint8Array, offset: number): number {
  return (((buf[offset] & 0x7f) << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) |
    buf[offset + 3]) >>> 0;
}

/** A 32-bit big-endian value. */
export function readUint32(buf: Uint8Array, offset: number): number {
  return ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) |
    buf[offset + 3]) >>> 0;
}

/** Writes a frame header at `offset`. */
export function writeFrameHeader(
  buf: Uint8Array,
  offset: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  buf[offset] = (length >>> 16) & 0xff;
  buf[offset + 1] = (length >>> 8) & 0xff;
  buf[offset + 2] = length & 0xff;
  buf[offset + 3] = type;
  buf[offset + 4] = flags;
  writeUint32(buf, offset + 5, streamId & 0x7fffffff);
}

/** Writes a 32-bit big-endian value. */
export function writeUint32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = (value >>> 24) & 0xff;
  buf[offset + 1] = (value >>> 16) & 0xff;
  buf[offset + 2] = (value >>> 8) & 0xff;
  buf[offset + 3] = value & 0xff;
}

/** One whole frame as a new buffer (for tests, tools and rare control frames). */
export function encodeFrame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_LENGTH + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER_LENGTH);
  return out;
}

/** A SETTINGS payload from [identifier, value] pairs. */
export function encodeSettings(settings: readonly (readonly [number, number])[]): Uint8Array {
  const out = new Uint8Array(settings.length * 6);
  settings.forEach(([id, value], i) => {
    out[i * 6] = id >>> 8;
    out[i * 6 + 1] = id & 0xff;
    writeUint32(out, i * 6 + 2, value);
  });
  return out;
}
