import { assertEquals, assertThrows } from "../testing.ts";
import { Errors } from "../errors.ts";
import {
  EXPIRED_LEASE_RETRY_MS,
  Lessor,
  MAX_LEASE_TTL_SECONDS,
  minLeaseTtlSeconds,
  NotPrimaryError,
} from "./lessor.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function lessor(options: { checkpoint?: boolean; checkpointIntervalMs?: number } = {}) {
  const deleted: string[][] = [];
  const l = new Lessor({
    minTtlSeconds: 2n,
    deleter: { deleteKeys: (keys) => deleted.push(keys.map(dec)) },
    ...options,
  });
  return { l, deleted };
}

Deno.test("minLeaseTtlSeconds() is etcd's ceil((3*electionTicks/2)*heartbeat)", () => {
  assertEquals(minLeaseTtlSeconds(10, 100), 2n); // 15 * 100 ms = 1.5 s -> 2
  assertEquals(minLeaseTtlSeconds(5, 100), 1n); // (15/2 = 7) * 100 ms = 0.7 s -> 1
  assertEquals(minLeaseTtlSeconds(10, 1000), 15n);
  assertEquals(minLeaseTtlSeconds(11, 100), 2n); // 16 * 100 ms
});

Deno.test("grant() checks in etcd's order and raises the TTL to the minimum", () => {
  const { l } = lessor();
  assertThrows(() => l.grant(0n, 10n, 0), Error, Errors.leaseNotFound().message);
  assertThrows(
    () => l.grant(1n, MAX_LEASE_TTL_SECONDS + 1n, 0),
    Error,
    Errors.leaseTTLTooLarge().message,
  );
  assertEquals(l.grant(1n, 1n, 0), { id: 1n, ttlSeconds: 2n });
  assertThrows(() => l.grant(1n, 10n, 0), Error, Errors.leaseExist().message);
  assertEquals(l.grant(2n, MAX_LEASE_TTL_SECONDS, 0).ttlSeconds, MAX_LEASE_TTL_SECONDS);
  assertEquals(l.leases(), [1n, 2n]);
});

Deno.test("revoke() deletes every attached key at once, sorted, and forgets detached ones", () => {
  const { l, deleted } = lessor();
  l.grant(7n, 60n, 0);
  for (const k of ["c", "a", "b", "d"]) l.attach(7n, enc(k));
  l.detach(7n, enc("d"));
  l.revoke(7n);
  assertEquals(deleted, [["a", "b", "c"]]);
  assertEquals(l.exists(7n), false);
  assertThrows(() => l.revoke(7n), Error, Errors.leaseNotFound().message);
  l.grant(8n, 60n, 0);
  l.revoke(8n); // no keys: no deletion (no new revision)
  assertEquals(deleted.length, 1);
});

Deno.test("renew() only on the primary; an expired lease is gone for the client", () => {
  const { l } = lessor();
  l.grant(1n, 10n, 0);
  assertThrows(() => l.renew(1n, 0), NotPrimaryError);
  l.promote(1000, 0);
  assertEquals(l.renew(1n, 5000).ttlSeconds, 10n);
  assertThrows(() => l.renew(2n, 5000), Error, Errors.leaseNotFound().message);
  assertThrows(() => l.renew(1n, 15000), Error, Errors.leaseNotFound().message);
});

Deno.test("timeToLive() reports truncated remaining seconds, granted TTL and sorted keys", () => {
  const { l } = lessor();
  l.promote(0, 0);
  l.grant(1n, 600n, 0);
  l.attach(1n, enc("foo"));
  l.attach(1n, enc("bar"));
  const t = l.timeToLive(1n, 44_500)!;
  assertEquals([t.ttlSeconds, t.grantedTtlSeconds, t.keys.map(dec)], [555n, 600n, ["bar", "foo"]]);
  assertEquals(l.timeToLive(2n, 0), null);
});

Deno.test("expired() asks once, again only after the retry interval, never on a follower", () => {
  const { l } = lessor();
  l.grant(1n, 5n, 0);
  assertEquals(l.expired(10_000), []);
  l.promote(1000, 0); // expiry 6000
  assertEquals(l.expired(5_999), []);
  assertEquals(l.expired(6_000), [1n]);
  assertEquals(l.expired(6_100), []);
  assertEquals(l.expired(6_000 + EXPIRED_LEASE_RETRY_MS), [1n]);
  l.demote();
  assertEquals(l.expired(100_000), []);
});

Deno.test("simulated ticks: kept alive never expires; none outlives TTL + election timeout", () => {
  const heartbeatMs = 100;
  const electionMs = 1000;
  for (const ttl of [2n, 3n, 7n]) {
    const { l } = lessor();
    l.promote(electionMs, 0);
    l.grant(1n, ttl, 0);
    l.grant(2n, ttl, 0);
    let lastRenew2 = 0;
    let revoked2: number | null = null;
    // Lease 1 is renewed every TTL/3; lease 2 is renewed for 3 s and then left alone. A leader
    // change at 2.5 s resets expiries (etcd 3.4) to now + election timeout + TTL.
    for (let tick = 1; tick <= 300; tick++) {
      const now = tick * heartbeatMs;
      if (tick === 25) {
        l.demote();
        l.promote(electionMs, now);
      }
      if (now % Number(ttl * 1000n / 3n) < heartbeatMs) l.renew(1n, now);
      if (now <= 3000 && now % 500 === 0) {
        l.renew(2n, now);
        lastRenew2 = now;
      }
      const expired = l.expired(now);
      assertEquals(expired.includes(1n), false, `lease 1 expired at ${now} (ttl ${ttl})`);
      if (expired.includes(2n)) {
        revoked2 = now;
        l.revoke(2n);
      }
    }
    assertEquals(revoked2 !== null, true);
    const late = revoked2! - lastRenew2 - Number(ttl) * 1000;
    assertEquals(late >= 0 && late <= electionMs, true, `lease 2 revoked ${late} ms late`);
  }
});

Deno.test("promote() resets to the full TTL, or to the checkpointed remaining TTL", () => {
  const { l } = lessor({ checkpoint: true, checkpointIntervalMs: 1000 });
  l.promote(0, 0);
  l.grant(1n, 10n, 0);
  assertEquals(l.dueCheckpoints(999), []);
  assertEquals(l.dueCheckpoints(4_000), [{ id: 1n, remainingTtlSeconds: 6n }]);
  l.checkpoint(1n, 6n, 4_000); // applied
  l.demote();
  l.promote(1000, 50_000);
  assertEquals(l.timeToLive(1n, 50_000)!.ttlSeconds, 7n);
  // Without checkpoints a new leader gives the full TTL again (etcd 3.4).
  const plain = lessor().l;
  plain.promote(0, 0);
  plain.grant(1n, 10n, 0);
  plain.demote();
  plain.promote(1000, 8_000);
  assertEquals(plain.timeToLive(1n, 8_000)!.ttlSeconds, 11n);
});

Deno.test("renew() asks to clear a checkpointed remaining TTL (etcd's clearRemainingTTL)", () => {
  const { l } = lessor({ checkpoint: true, checkpointIntervalMs: 1000 });
  l.promote(0, 0);
  l.grant(1n, 10n, 0);
  assertEquals(l.renew(1n, 100).clearCheckpoint, false);
  l.checkpoint(1n, 6n, 4_000);
  assertEquals(l.renew(1n, 4_100).clearCheckpoint, true);
});

Deno.test("records()/restore() keep TTLs and checkpoints; restored leases wait for promote", () => {
  const { l } = lessor({ checkpoint: true });
  l.grant(5n, 100n, 0);
  l.grant(3n, 30n, 0);
  l.checkpoint(5n, 40n, 0);
  const copy = lessor().l;
  copy.restore(l.records());
  assertEquals(copy.records(), [
    { id: 3n, ttlSeconds: 30n, remainingTtlSeconds: 0n },
    { id: 5n, ttlSeconds: 100n, remainingTtlSeconds: 40n },
  ]);
  assertEquals(copy.isPrimary, false);
  assertEquals(copy.expired(1e9), []);
});
