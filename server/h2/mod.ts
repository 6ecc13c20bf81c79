/**
 * detcd's own HTTP/2 server (h2c, prior knowledge) for gRPC on the client port, replacing
 * Deno's nghttp2-based node:http2, which aborts the process when clients vanish mid-stream.
 *
 * @example
 * ```ts
 * import { encodeHeaders, HpackDecoder } from "./mod.ts";
 *
 * // Header blocks as the server sends them, and back as a client's decoder reads them.
 * const block = encodeHeaders({ ":status": "200", "content-type": "application/grpc" });
 * new HpackDecoder().decode(block); // the same two fields
 * ```
 *
 * @module
 */
export { H2Connection, type H2Options, H2Stream } from "./connection.ts";
export { encodeHeaders, HpackDecoder, HpackError } from "./hpack.ts";
export { ErrorCode } from "./frames.ts";
