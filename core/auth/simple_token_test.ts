import { assert, assertEquals, assertThrows } from "../testing.ts";
import { InvariantError } from "../assert.ts";
import { seededRandomInt } from "../raft/random.ts";
import { SimpleTokenProvider } from "./simple_token.ts";

function fakeClock() {
  const clock = { ms: 1_000_000, nowMs: () => clock.ms };
  return clock;
}

function provider(clock = fakeClock(), ttlSeconds?: number) {
  const p = new SimpleTokenProvider({
    nowMs: clock.nowMs,
    randomInt: seededRandomInt(7),
    ttlSeconds,
  });
  p.enable();
  return p;
}

Deno.test("simple tokens are 16 letters, a dot and the Authenticate entry's index", async () => {
  const p = provider();
  const prefix = p.genTokenPrefix();
  assert(/^[a-zA-Z]{16}$/.test(prefix), prefix);
  assertEquals(await p.assign("root", 3, { index: 21, simpleTokenPrefix: prefix }), `${prefix}.21`);
  assertEquals(await p.info(`${prefix}.21`, 9), { username: "root", revision: 9 });
  // Seeded randomness gives the same prefixes; a different seed different ones.
  const again = new SimpleTokenProvider({ nowMs: () => 0, randomInt: seededRandomInt(7) });
  assertEquals(again.genTokenPrefix(), prefix);
});

Deno.test("a simple token expires its TTL after the last use; every use refreshes it", async () => {
  const clock = fakeClock();
  const p = provider(clock); // default TTL 300 s
  const token = await p.assign("u", 1, { index: 5, simpleTokenPrefix: "abcdefghijklmnop" });
  clock.ms += 299_000;
  assertEquals((await p.info(token, 1))?.username, "u");
  clock.ms += 299_000; // 598 s after issue, 299 s after the last use
  assertEquals((await p.info(token, 1))?.username, "u");
  clock.ms += 300_001;
  assertEquals(await p.info(token, 1), null);
  assertEquals(p.size, 0);
});

Deno.test("--auth-token-ttl sets the lifetime; 0 means etcd's 300 s", async () => {
  for (const [ttl, aliveAfterMs, deadAfterMs] of [[10, 10_000, 10_001], [0, 300_000, 300_001]]) {
    const clock = fakeClock();
    const p = provider(clock, ttl);
    const t = await p.assign("u", 1, { index: 1, simpleTokenPrefix: "p" });
    clock.ms += aliveAfterMs;
    assert(await p.info(t, 1) !== null, `ttl ${ttl}: alive`);
    clock.ms += deadAfterMs;
    assertEquals(await p.info(t, 1), null, `ttl ${ttl}: dead`);
  }
});

Deno.test("expired tokens are swept even if never looked up again", async () => {
  const clock = fakeClock();
  const p = provider(clock, 1);
  for (let i = 0; i < 100; i++) await p.assign("u", 1, { index: i, simpleTokenPrefix: "p" });
  assertEquals(p.size, 100);
  clock.ms += 5_000;
  await p.assign("u", 1, { index: 1000, simpleTokenPrefix: "p" });
  assertEquals(p.size, 1);
});

Deno.test("tokens die with their user, with auth disable, and are not kept while disabled", async () => {
  const p = provider();
  const a = await p.assign("a", 1, { index: 1, simpleTokenPrefix: "p" });
  const b = await p.assign("b", 1, { index: 2, simpleTokenPrefix: "p" });
  p.invalidateUser("a");
  assertEquals(await p.info(a, 1), null);
  assertEquals((await p.info(b, 1))?.username, "b");
  p.disable();
  assertEquals(await p.info(b, 1), null);
  const c = await p.assign("c", 1, { index: 3, simpleTokenPrefix: "p" });
  assertEquals(c, "p.3");
  p.enable();
  assertEquals(await p.info(c, 1), null);
});

Deno.test("malformed tokens are invalid; a token waits until its entry is applied here", async () => {
  const applied = { index: 10 };
  const waited: number[] = [];
  const p = new SimpleTokenProvider({
    nowMs: () => 0,
    randomInt: seededRandomInt(1),
    waitApplied: (index) => {
      waited.push(index);
      return Promise.resolve(index <= applied.index);
    },
  });
  p.enable();
  const t = await p.assign("u", 1, { index: 12, simpleTokenPrefix: "abc" });
  for (const bad of ["", "abc", "abc.12.1", "abc.x", "abc.-1", "abc.1e3", "abc. 12"]) {
    assertEquals(await p.info(bad, 1), null, bad);
  }
  assertEquals(await p.info(t, 1), null); // index 12 not applied yet
  applied.index = 12;
  assertEquals((await p.info(t, 1))?.username, "u");
  assertEquals(await p.info("abc.+12", 1), null); // Atoi accepts the sign; the token differs
  assertEquals(waited, [12, 12, 12]);
});

Deno.test("the same token assigned twice is an invariant violation (etcd panics)", async () => {
  const p = provider();
  await p.assign("u", 1, { index: 1, simpleTokenPrefix: "p" });
  assertThrows(() => void p.assign("v", 1, { index: 1, simpleTokenPrefix: "p" }), InvariantError);
});
