/**
 * Snapshots between peers, each on a connection of its own (etcd's `/raft/snapshot`), so that
 * heartbeats and appends on the Raft stream never queue behind hundreds of MB of state:
 *
 *   POST /raft/snapshot, upgraded (the Raft stream's headers and checks), then
 *   u32 length | Raft message (its snapshot's data empty) | u64 data length | data
 *
 * The sender encodes the data a chunk at a time as the socket drains (never whole in memory); the
 * receiver writes it to a snapshot file as it arrives, steps the message, and answers one byte:
 * 1 when the snapshot was saved and handed to Raft, 0 when not. The sender reports that to Raft.
 */

import type * as net from "node:net";
import type { Logger } from "../../core/log.ts";
import { idHex, type SnapshotBody } from "../../core/node/mod.ts";
import { decodeMessage, encodeMessage, type Message, MessageType } from "../../core/raft/mod.ts";
import { Slicer } from "../slicer.ts";
import type { PeerHandler } from "./handler.ts";
import { frameAll, parseHead, readHead, upgradeHead } from "./_wire.ts";

export const SNAPSHOT_PATH = "/raft/snapshot";
export const SNAPSHOT_PROTOCOL = "detcd-raft-snapshot";

/** The message before the data is small (its snapshot carries only metadata). */
const MAX_MESSAGE_BYTES = 1024 * 1024;
/** A transfer that makes no progress for this long is given up (by either side). */
const IDLE_TIMEOUT_MS = 60_000;

/**
 * Reads a paused socket in pieces, as the reader asks for them: nothing more is taken from the
 * socket than is awaited, so a slow reader holds the sender back through TCP.
 */
class SocketInput {
  #pending: Uint8Array;
  readonly #chunks: AsyncIterator<Uint8Array>;

  constructor(socket: net.Socket, first: Uint8Array) {
    this.#pending = first;
    this.#chunks = (socket as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  }

  async #more(): Promise<void> {
    const next = await this.#chunks.next();
    if (next.done) throw new Error("connection closed before the snapshot's end");
    const chunk = new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    if (this.#pending.length === 0) {
      this.#pending = chunk;
    } else {
      const joined = new Uint8Array(this.#pending.length + chunk.length);
      joined.set(this.#pending);
      joined.set(chunk, this.#pending.length);
      this.#pending = joined;
    }
  }

  /** Exactly `n` bytes. */
  async read(n: number): Promise<Uint8Array> {
    while (this.#pending.length < n) await this.#more();
    const out = this.#pending.subarray(0, n);
    this.#pending = this.#pending.subarray(n);
    return out;
  }

  /** The next `size` bytes, in the chunks they arrive in. */
  async *stream(size: number): AsyncGenerator<Uint8Array> {
    let left = size;
    while (left > 0) {
      if (this.#pending.length === 0) await this.#more();
      const take = Math.min(left, this.#pending.length);
      const chunk = this.#pending.subarray(0, take);
      this.#pending = this.#pending.subarray(take);
      left -= take;
      yield chunk;
    }
  }
}

function u32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
}

/**
 * The receiving side, on a connection already admitted (cluster and sender checked, 101 sent):
 * reads the message and streams the data into the member, then answers.
 */
export async function serveSnapshot(
  socket: net.Socket,
  rest: Uint8Array,
  handler: PeerHandler,
  logger: Logger,
  from: bigint,
): Promise<void> {
  socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
  socket.on("error", () => socket.destroy());
  const input = new SocketInput(socket, rest);
  let ok = false;
  try {
    const length = u32(await input.read(4));
    if (length > MAX_MESSAGE_BYTES) throw new Error(`snapshot message of ${length} bytes`);
    const message = decodeMessage(await input.read(length));
    if (message.type !== MessageType.Snap || message.from !== from) {
      throw new Error(`not a snapshot from ${idHex(from)}`);
    }
    const sizeBytes = await input.read(8);
    const size = Number(new DataView(sizeBytes.buffer, sizeBytes.byteOffset, 8).getBigUint64(0));
    await handler.receiveSnapshot(message, size, input.stream(size));
    ok = true;
  } catch (e) {
    logger.warn("rafthttp/http.go:197", "failed to receive database snapshot", {
      "remote-peer-id": idHex(from),
      error: e instanceof Error ? e.message : String(e),
    });
  }
  if (socket.destroyed) return;
  if (ok) {
    socket.end(Uint8Array.of(1));
  } else {
    // What the sender still sends is not read: close at once (it learns of it without waiting
    // for its writes to time out).
    socket.end(Uint8Array.of(0), () => socket.destroy());
  }
}

/**
 * The sending side: on `socket` (connecting; `ready` is the event that says it is usable), asks
 * for the upgrade, sends the message and the body's chunks as the socket drains, and resolves once
 * the receiver answered that it saved the snapshot; rejects on anything else. Closes the body and
 * the socket.
 */
export async function sendSnapshot(
  socket: net.Socket,
  ready: string,
  target: { host: string; port: number },
  handler: PeerHandler,
  message: Message,
  body: SnapshotBody,
  closed: () => boolean,
): Promise<void> {
  socket.setNoDelay(true);
  socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy(new Error("snapshot send timed out")));
  let failure: Error | null = null;
  const failed = new Promise<never>((_, reject) => {
    socket.on("error", (e) => reject(failure ??= e));
    socket.on("close", () => reject(failure ??= new Error("connection closed")));
  });
  failed.catch(() => {});
  try {
    await Promise.race([new Promise((resolve) => socket.once(ready, resolve)), failed]);
    socket.write(upgradeHead(SNAPSHOT_PATH, SNAPSHOT_PROTOCOL, target, handler));
    const head = await Promise.race([
      new Promise<Uint8Array | null>((resolve) => readHead(socket, (h) => resolve(h))),
      failed,
    ]);
    const status = head === null ? null : parseHead(head)?.status;
    if (status !== 101) throw new Error(`snapshot upgrade refused (status ${status ?? "none"})`);
    const size = new Uint8Array(8);
    new DataView(size.buffer).setBigUint64(0, BigInt(body.size));
    socket.write(frameAll([encodeMessage(message)]));
    socket.write(size);
    // In slices: on loopback a write completes at once, and a loop of them would hold the event
    // loop for the whole transfer (heartbeats included).
    const slicer = new Slicer();
    for (let chunk = await body.next(); chunk !== null; chunk = await body.next()) {
      if (closed()) throw new Error("transport closed");
      // The next chunk reuses this one's buffer: wait until the socket has handed it over.
      await Promise.race([new Promise((resolve) => socket.write(chunk, resolve)), failed]);
      await slicer.pause();
    }
    const answer = await Promise.race([
      new Promise<number>((resolve) => {
        socket.once("data", (b: Uint8Array) => resolve(b[0]));
        socket.resume();
      }),
      failed,
    ]);
    if (answer !== 1) throw new Error("the receiver did not save the snapshot");
  } finally {
    body.close();
    socket.destroy();
  }
}
