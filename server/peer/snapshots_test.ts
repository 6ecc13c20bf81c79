/**
 * A snapshot streamed to a peer (snapshots.ts) between a real transport and a real peer listener:
 * the bytes arrive as sent though the sender reuses one buffer for every chunk, the outcome reaches
 * Raft, and a receiver that refuses early is known to have refused at once, not after a timeout;
 * and a peer that comes back (a restarted follower) is dialed at once.
 */
import * as net from "node:net";
import { silentLogger as silent } from "../../core/log.ts";
import type { SnapshotBody } from "../../core/node/mod.ts";
import { type Message, MessageType } from "../../core/raft/mod.ts";
import { assert, assertEquals } from "../../core/testing.ts";
import type { PeerHandler } from "./handler.ts";
import { freePort, stubMember } from "./_testing.ts";
import { listenPeers } from "./server.ts";
import { PeerTransport } from "./transport.ts";

const CLUSTER = 0x1234n;
const LEADER = 0xaan;
const FOLLOWER = 0xbbn;

function member(id: bigint, overrides: Partial<PeerHandler> = {}): PeerHandler {
  return stubMember(id, CLUSTER, overrides);
}

const snapMessage: Message = {
  type: MessageType.Snap,
  to: FOLLOWER,
  from: LEADER,
  term: 3,
  logTerm: 0,
  index: 0,
  entries: [],
  commit: 0,
  snapshot: {
    metadata: { index: 777, term: 3, confState: { voters: [LEADER, FOLLOWER], learners: [] } },
    data: new Uint8Array(0),
  },
  reject: false,
  rejectHint: 0,
  context: new Uint8Array(0),
};

/** `data` in chunks of `chunk` bytes, every chunk in the same buffer (as the encoder does). */
function bodyOf(data: Uint8Array, chunk: number): SnapshotBody & { closes: number } {
  const scratch = new Uint8Array(chunk);
  let at = 0;
  const body = {
    size: data.length,
    closes: 0,
    next(): Promise<Uint8Array | null> {
      if (at >= data.length) return Promise.resolve(null);
      const n = Math.min(chunk, data.length - at);
      scratch.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(scratch.subarray(0, n));
    },
    close() {
      body.closes++;
    },
  };
  return body;
}

/** A leader's transport connected to a follower's peer listener, and the reports it got. */
async function pair(receive: PeerHandler["receiveSnapshot"]) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const peers = await listenPeers(
    [url],
    () => member(FOLLOWER, { receiveSnapshot: receive }),
    silent,
  );
  const reports: boolean[] = [];
  let reported = () => {};
  const leader = member(LEADER, {
    reportSnapshot: (id, ok) => {
      assertEquals(id, FOLLOWER);
      reports.push(ok);
      reported();
    },
  });
  const transport = new PeerTransport(() => leader, silent);
  transport.addPeer(FOLLOWER, [url]);
  for (let i = 0; i < 200 && transport.activeSince(FOLLOWER) === null; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert(transport.activeSince(FOLLOWER) !== null, "the Raft stream is up");
  return {
    transport,
    reports,
    /** The next report, or null after `ms`. */
    nextReport: (ms: number) =>
      new Promise<boolean | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), ms);
        reported = () => {
          clearTimeout(timer);
          resolve(reports[reports.length - 1]);
        };
      }),
    close() {
      transport.close();
      peers.close();
    },
  };
}

Deno.test("a snapshot streams to its peer byte for byte and its success reaches Raft", async () => {
  const data = new Uint8Array(3 * 1024 * 1024 + 123).map((_, i) => (i * 31 + (i >> 12)) & 0xff);
  let got: { message: Message; size: number; bytes: Uint8Array } | null = null;
  const p = await pair(async (message, size, chunks) => {
    const bytes = new Uint8Array(size);
    let at = 0;
    for await (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    assertEquals(at, size);
    got = { message, size, bytes };
  });
  try {
    const body = bodyOf(data, 256 * 1024);
    const report = p.nextReport(10_000);
    p.transport.sendSnapshot(snapMessage, body);
    assertEquals(await report, true);
    assert(got !== null, "the follower got the snapshot");
    const { message, size, bytes } = got as { message: Message; size: number; bytes: Uint8Array };
    assertEquals([message.type, message.from, message.snapshot?.metadata.index], [
      MessageType.Snap,
      LEADER,
      777,
    ]);
    assertEquals(message.snapshot?.data.length, 0, "the data comes after the message");
    assertEquals(size, data.length);
    assertEquals(bytes, data);
    assertEquals(body.closes, 1);
  } finally {
    p.close();
  }
});

Deno.test("a follower that refuses a snapshot at once is known to have refused at once", async () => {
  // 64 MB: more than sockets buffer, so a sender that waited for its writes would wait for the
  // 60 s idle timeout.
  const data = new Uint8Array(64 * 1024 * 1024);
  const p = await pair(() => Promise.reject(new Error("a snapshot is being received already")));
  try {
    const body = bodyOf(data, 256 * 1024);
    const report = p.nextReport(15_000);
    p.transport.sendSnapshot(snapMessage, body);
    assertEquals(await report, false, "reported as failed, well before the idle timeout");
    assertEquals(body.closes, 1);
  } finally {
    p.close();
  }
});

Deno.test("a peer that comes back is dialed at once when it opens its stream, not at the next retry", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const leader = member(LEADER);
  const transport = new PeerTransport(() => leader, silent);
  let peers: { close(): void } | null = null;
  try {
    // A port that hangs up on every connection: the retries back off to a second apart by the
    // sixth (50, 100, 200, 400, 800, then 1000 ms).
    let attempts = 0;
    let sixth = () => {};
    const backedOff = new Promise<void>((r) => sixth = r);
    const hangUp = net.createServer((socket) => {
      socket.destroy();
      if (++attempts === 6) sixth();
    });
    await new Promise<void>((r) => hangUp.listen(port, "127.0.0.1", r));
    transport.addPeer(FOLLOWER, [url]);
    await backedOff;
    await new Promise<void>((r) => hangUp.close(() => r()));
    await new Promise((r) => setTimeout(r, 50)); // the transport has seen the hang-up
    peers = await listenPeers([url], () => member(FOLLOWER), silent);
    // The follower's own stream reaches the leader's listener, which tells the transport.
    const since = performance.now();
    transport.addRemote(FOLLOWER, [url]);
    while (transport.activeSince(FOLLOWER) === null && performance.now() - since < 2000) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const ms = performance.now() - since;
    assert(transport.activeSince(FOLLOWER) !== null, "connected");
    assert(ms < 250, `connected ${ms.toFixed(0)} ms after the peer reached us`);
  } finally {
    transport.close();
    peers?.close();
  }
});
