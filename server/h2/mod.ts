/**
 * detcd's own HTTP/2 server (h2c, prior knowledge) for gRPC on the client port, replacing
 * Deno's nghttp2-based node:http2, which aborts the process when clients vanish mid-stream.
 */
export { H2Connection, type H2Options, H2Stream } from "./connection.ts";
export { encodeHeaders, HpackDecoder, HpackError } from "./hpack.ts";
export { ErrorCode } from "./frames.ts";
