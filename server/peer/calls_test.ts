/**
 * The follower → leader call stream (calls.ts) against a real peer listener with a scripted
 * member: many renews in flight on one connection, answers matched out of order, the leader's
 * EtcdError passed through, a leader that drops the connection, a call past its deadline, a
 * refused upgrade, and a leader that serves no call streams (the one-shot endpoints instead).
 */
import * as http from "node:http";
import * as net from "node:net";
import { Errors, isEtcdError } from "../../core/errors.ts";
import { silentLogger as silent } from "../../core/log.ts";
import { assert, assertEquals, assertRejects } from "../../core/testing.ts";
import { PeerCalls } from "./calls.ts";
import type { PeerHandler } from "./handler.ts";
import { freePort, stubMember } from "./_testing.ts";
import { listenPeers } from "./server.ts";

const CLUSTER = 0x1234n;

/** A member whose lease answers the test scripts; unknown leases are not found. */
function scriptedMember(
  renew: (id: bigint) => Promise<bigint>,
  clusterId = CLUSTER,
): PeerHandler {
  return stubMember(0xaan, clusterId, {
    promote: (id) => id === 5n ? Promise.resolve() : Promise.reject(Errors.memberNotLearner()),
    leaseRenew: renew,
    leaseTimeToLive: (id) =>
      Promise.resolve(
        id === 7n
          ? { ttl: 5n, grantedTtl: 10n, keys: [new Uint8Array([0, 0xff, 0x61]), new Uint8Array()] }
          : null,
      ),
  });
}

/**
 * A TCP relay in front of `port` that counts connections, can cut them all, and can swallow
 * everything (a connection lost without a reset: nothing arrives, nothing fails).
 */
async function relay(port: number) {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let swallow = false;
  const server = net.createServer((inbound) => {
    connections++;
    const outbound = net.connect(port, "127.0.0.1");
    sockets.add(inbound).add(outbound);
    inbound.on("data", (chunk) => swallow || outbound.write(chunk));
    outbound.on("data", (chunk) => swallow || inbound.write(chunk));
    const drop = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", drop).on("close", drop);
    outbound.on("error", drop).on("close", drop);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => connections,
    swallow(on: boolean) {
      swallow = on;
    },
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const follower = (clusterId = CLUSTER): PeerHandler => ({
  ...scriptedMember(() => Promise.reject(new Error("not leader"))),
  clusterId: () => clusterId,
  memberId: () => 0xbbn,
});

Deno.test("peer calls: 300 renews in flight share one connection and get their own answers", async () => {
  const port = await freePort();
  // Answers come back in an order other than the requests' (later IDs answer sooner).
  const leader = scriptedMember((id) =>
    id === 404n
      ? Promise.reject(Errors.leaseNotFound())
      : new Promise((r) => setTimeout(() => r(id * 10n), Number(300n - (id % 300n)) % 20))
  );
  const peers = await listenPeers([`http://127.0.0.1:${port}`], () => leader, silent);
  const front = await relay(port);
  const calls = new PeerCalls(() => follower());
  try {
    const ids = Array.from({ length: 300 }, (_, i) => BigInt(i + 1));
    const ttls = await Promise.all(ids.map((id) => calls.renewLease([front.url], id, 5000)));
    assertEquals(ttls, ids.map((id) => id * 10n));
    assertEquals(front.connections(), 1);
    // The leader's own error comes back as that error; the stream stays usable.
    const e = await calls.renewLease([front.url], 404n, 5000).catch((e) => e);
    assert(isEtcdError(e, Errors.leaseNotFound), String(e));
    // Negative IDs travel as their 64-bit pattern.
    assertEquals(await calls.renewLease([front.url], -2n, 5000), -20n);
    const ttl = await calls.leaseTimeToLive([front.url], 7n, 5000);
    assertEquals(ttl, {
      ttl: 5n,
      grantedTtl: 10n,
      keys: [new Uint8Array([0, 0xff, 0x61]), new Uint8Array()],
    });
    assertEquals((await calls.leaseTimeToLive([front.url], 8n, 5000)).ttl, -1n);
    // Learner promotion rides the same stream.
    await calls.promote([front.url], 5n, 5000);
    const notLearner = await calls.promote([front.url], 6n, 5000).catch((e) => e);
    assert(isEtcdError(notLearner, Errors.memberNotLearner), String(notLearner));
    assertEquals(front.connections(), 1);
  } finally {
    calls.close();
    peers.close();
    await front.close();
  }
});

Deno.test("peer calls: a dropped connection fails the calls in flight, the next call reconnects; deadlines and refusals", async () => {
  const port = await freePort();
  let hold = true;
  const leader = scriptedMember((id) => hold ? new Promise(() => {}) : Promise.resolve(id + 1n));
  const peers = await listenPeers([`http://127.0.0.1:${port}`], () => leader, silent);
  const front = await relay(port);
  const calls = new PeerCalls(() => follower());
  try {
    // A renew the leader never answers fails at its deadline with a plain error (retried by the
    // lessor), not an EtcdError.
    const started = performance.now();
    const late = await calls.renewLease([front.url], 1n, 300).catch((e) => e);
    assert(late instanceof Error && !isEtcdError(late, Errors.leaseNotFound), String(late));
    assertEquals(late.message, "timeout");
    assert(performance.now() - started >= 290, "failed before its deadline");

    const inFlight = calls.renewLease([front.url], 2n, 5000);
    await new Promise((r) => setTimeout(r, 100));
    front.cut();
    await assertRejects(() => inFlight, Error, "closed");
    hold = false;
    assertEquals(await calls.renewLease([front.url], 3n, 5000), 4n);
    assertEquals(front.connections(), 2);

    // Another cluster's member is refused before the upgrade.
    const stranger = new PeerCalls(() => follower(0x9999n));
    try {
      const refused = await stranger.renewLease([front.url], 3n, 5000).catch((e) => e);
      assert(refused instanceof Error, String(refused));
      assertEquals(refused.message, `call stream to ${front.url}: status 412`);
    } finally {
      stranger.close();
    }
    // Once closed, nothing is sent.
    calls.close();
    await assertRejects(() => calls.renewLease([front.url], 3n, 5000));
  } finally {
    calls.close();
    peers.close();
    await front.close();
  }
});

Deno.test("peer calls: a leader without call streams is asked over the one-shot endpoints", async () => {
  const paths: string[] = [];
  const old = http.createServer((req, res) => {
    paths.push(`${req.method} ${req.url}`);
    req.resume();
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.url === "/leases/renew/2a") return reply(200, { ttl: "9" });
    if (req.url === "/leases/timetolive/2a") {
      return reply(200, { ttl: "3", grantedTtl: "9", keys: ["6b"] });
    }
    reply(404, { message: "not found" });
  });
  await new Promise<void>((r) => old.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(old.address() as net.AddressInfo).port}`;
  const calls = new PeerCalls(() => follower());
  try {
    assertEquals(await calls.renewLease([url], 42n, 5000), 9n);
    assertEquals(await calls.renewLease([url], 42n, 5000), 9n);
    assertEquals(await calls.leaseTimeToLive([url], 42n, 5000), {
      ttl: 3n,
      grantedTtl: 9n,
      keys: [new Uint8Array([0x6b])],
    });
    // One refused upgrade, then the one-shot endpoints only.
    assertEquals(paths, [
      "POST /peer/calls",
      "POST /leases/renew/2a",
      "POST /leases/renew/2a",
      "POST /leases/timetolive/2a",
    ]);
  } finally {
    calls.close();
    old.closeAllConnections();
    await new Promise<void>((r) => old.close(() => r()));
  }
});

Deno.test("peer calls: a peer that accepts but never upgrades is given up, and the next call dials again", async () => {
  const accepted: net.Socket[] = [];
  const silent = net.createServer((socket) => void accepted.push(socket));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  const calls = new PeerCalls(() => follower(), null, 300);
  try {
    const first = await calls.renewLease([url], 1n, 10_000).catch((e) => e);
    assert(first instanceof Error, String(first));
    assertEquals(first.message, `call stream to ${url}: no upgrade within 300 ms`);
    await calls.renewLease([url], 1n, 10_000).catch(() => {});
    assertEquals(accepted.length, 2);
  } finally {
    calls.close();
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

Deno.test("peer calls: a stream silent since a call timed out is replaced by a new one", async () => {
  const port = await freePort();
  const leader = scriptedMember((id) => Promise.resolve(id));
  const peers = await listenPeers([`http://127.0.0.1:${port}`], () => leader, silent);
  const front = await relay(port);
  const calls = new PeerCalls(() => follower());
  try {
    assertEquals(await calls.renewLease([front.url], 1n, 5000), 1n);
    front.swallow(true);
    const lost = await calls.renewLease([front.url], 2n, 300).catch((e) => e);
    assertEquals(lost.message, "timeout");
    // The next sweep gives the silent stream up; the call after dials again and gets through.
    await new Promise((r) => setTimeout(r, 250));
    front.swallow(false);
    assertEquals(await calls.renewLease([front.url], 3n, 5000), 3n);
    assertEquals(front.connections(), 2);
  } finally {
    calls.close();
    peers.close();
    await front.close();
  }
});
