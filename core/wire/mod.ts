/**
 * Wire formats shared by detcd's server and detcdctl that are pure bytes (no sockets): gRPC's
 * 5-byte length-prefixed message framing.
 *
 * @example
 * ```ts
 * import { encodeGrpcFrame, GrpcFrameDecoder } from "./mod.ts";
 *
 * const bytes = encodeGrpcFrame(new TextEncoder().encode("hello"));
 * const decoder = new GrpcFrameDecoder();
 * decoder.push(bytes.subarray(0, 3)); // a prefix cut in two
 * decoder.next(); // null: more bytes needed
 * decoder.push(bytes.subarray(3));
 * decoder.nextFlag(); // 0: not compressed
 * decoder.next(); // the 5 bytes of "hello"
 * ```
 *
 * @module
 */
export {
  encodeGrpcFrame,
  GRPC_PREFIX_BYTES,
  GrpcFrameDecoder,
  grpcFrameLength,
  putGrpcPrefix,
} from "./grpc_frame.ts";
