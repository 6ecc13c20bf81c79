/**
 * gRPC's message framing on HTTP/2 (and gRPC-Web): every message is a 5-byte prefix, a flag byte
 * (0: uncompressed) and the payload length as a big-endian u32, then the payload. Pure bytes, no
 * sockets, so the server, the CLI and the tests frame and split messages with one copy of it.
 * What a bad prefix means (a compressed message, one over the size limit) is the caller's to say,
 * because the server answers with a status and the client fails the call, each in its own words.
 */

/** Bytes of the prefix in front of every gRPC message: the flag byte and a u32 length. */
export const GRPC_PREFIX_BYTES = 5;

/** Frames one encoded message (uncompressed) for a gRPC request or response body. */
export function encodeGrpcFrame(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(GRPC_PREFIX_BYTES + payload.length);
  putGrpcPrefix(out, payload.length);
  out.set(payload, GRPC_PREFIX_BYTES);
  return out;
}

/**
 * Writes the prefix of an uncompressed message of `length` bytes at `out[at]` (default: the start;
 * a frame the caller fills in place, to spare the copy encodeGrpcFrame makes).
 */
export function putGrpcPrefix(out: Uint8Array, length: number, at = 0): void {
  out[at] = 0;
  out[at + 1] = (length >>> 24) & 0xff;
  out[at + 2] = (length >>> 16) & 0xff;
  out[at + 3] = (length >>> 8) & 0xff;
  out[at + 4] = length & 0xff;
}

/**
 * The payload length in the prefix at `bytes[offset]` (the u32 after the flag byte). The caller
 * makes sure the five bytes are there; reading a prefix needs no decoder.
 */
export function grpcFrameLength(bytes: Uint8Array, offset = 0): number {
  return ((bytes[offset + 1] << 24) >>> 0) + (bytes[offset + 2] << 16) +
    (bytes[offset + 3] << 8) + bytes[offset + 4];
}

/**
 * Splits a byte stream into gRPC messages as its chunks arrive: push chunks, look at the next
 * prefix (flag and length) to decide whether to take the message, then take it. Payloads are
 * views into the pushed chunks (no copy when a message sits in one chunk), so chunks must not be
 * reused by whoever pushed them.
 */
export class GrpcFrameDecoder {
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  /** Bytes pushed and not yet taken: more than 0 after a stream ends means a cut-off message. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Adds the next chunk of the stream. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The flag byte of the next message, -1 while its prefix has not fully arrived. */
  nextFlag(): number {
    if (this.#buffered < GRPC_PREFIX_BYTES) return -1;
    return this.#peek(GRPC_PREFIX_BYTES)[0];
  }

  /** The payload length of the next message, -1 while its prefix has not fully arrived. */
  nextLength(): number {
    if (this.#buffered < GRPC_PREFIX_BYTES) return -1;
    return grpcFrameLength(this.#peek(GRPC_PREFIX_BYTES));
  }

  /** Whether the next message has fully arrived, so that next() returns it. */
  hasMessage(): boolean {
    const length = this.nextLength();
    return length >= 0 && this.#buffered >= GRPC_PREFIX_BYTES + length;
  }

  /** Takes the next message's payload (flag not checked: see nextFlag()); null until complete. */
  next(): Uint8Array | null {
    const length = this.nextLength();
    if (length < 0 || this.#buffered < GRPC_PREFIX_BYTES + length) return null;
    return this.#take(GRPC_PREFIX_BYTES + length).subarray(GRPC_PREFIX_BYTES);
  }

  #peek(n: number): Uint8Array {
    if (this.#chunks[0].length < n) this.#coalesce();
    return this.#chunks[0];
  }

  #take(n: number): Uint8Array {
    if (this.#chunks[0].length < n) this.#coalesce();
    const first = this.#chunks[0];
    const out = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    return out;
  }

  #coalesce(): void {
    const all = new Uint8Array(this.#buffered);
    let offset = 0;
    for (const c of this.#chunks) {
      all.set(c, offset);
      offset += c.length;
    }
    this.#chunks = [all];
  }
}
