import { assert, assertEquals } from "../core/testing.ts";
import { Errors, EtcdError } from "../core/errors.ts";
import { WorkerPasswordHasher } from "./auth_hasher.ts";

/**
 * Hashes real etcd 3.4.23 wrote (Go's x/crypto/bcrypt, cost 10): users added with etcdctl, the
 * hashes read back from `etcdctl snapshot save`'s authUsers bucket.
 */
const goHashes: Array<[password: string, hash: string]> = [
  ["123456", "$2a$10$iO1JSGqFeaqPHWkTYyaJQ.SY4axtnjWq319e28a6KatvE23ZjSiee"],
  ["", "$2a$10$rydTvh./We9tasfjg4I4i.XOz/YtJCm2G7xVEmhSAnw3RSz.1VrXW"],
  ["a".repeat(72), "$2a$10$NDv.6eODnQCLU3IPCpB7le0guPWVHuwIvIOIOa6UT0h27B3BTww4S"],
];

Deno.test("hashes etcd (Go bcrypt) wrote verify in the worker; wrong passwords do not", async () => {
  const hasher = new WorkerPasswordHasher({ workers: 2 });
  try {
    for (const [password, hash] of goHashes) {
      assertEquals(await hasher.verify(password, hash), true, JSON.stringify(password));
      assertEquals(await hasher.verify(password + "x", hash), password.length >= 72);
    }
    // Like etcd: bcrypt reads 72 bytes, so a longer password matches its 72-byte prefix's hash
    // (compared: etcd 3.4.23 authenticated a 72-byte user with 73 bytes).
    assertEquals(await hasher.verify("a".repeat(73), goHashes[2][1]), true);
    assertEquals(await hasher.verify("123456", "not a bcrypt hash"), false);
  } finally {
    hasher.close();
  }
});

Deno.test("new hashes are $2a$ with the requested cost and salted afresh each time", async () => {
  const hasher = new WorkerPasswordHasher({ workers: 1 });
  try {
    const a = await hasher.hash("pässwörd", 4);
    const b = await hasher.hash("pässwörd", 4);
    assert(/^\$2a\$04\$[./A-Za-z0-9]{53}$/.test(a), a);
    assert(a !== b, "salts differ");
    assertEquals(await hasher.verify("pässwörd", a), true);
    assertEquals(await hasher.verify("passwörd", a), false);
    const cost10 = await hasher.hash("123456", 10);
    assert(cost10.startsWith("$2a$10$"), cost10);
  } finally {
    hasher.close();
  }
});

Deno.test("hashing runs off the event loop: timers keep firing during a burst of bcrypt calls", async () => {
  const hasher = new WorkerPasswordHasher({ workers: 1 });
  try {
    // One hash's time on this machine now: a stall of the event loop would last about as long.
    // Three samples: on a loaded machine (CI runs test files side by side, and the worker runs at
    // a lower priority) one hash can take twice as long as the next.
    await hasher.hash("x", 10); // worker start-up and JIT warm-up
    const samples: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await hasher.hash("x", 10);
      samples.push(performance.now() - t0);
    }
    samples.sort((a, b) => a - b);
    const fastestMs = samples[0];
    const oneHashMs = samples[1];
    let ticks = 0;
    let maxGapMs = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      ticks++;
    }, 5);
    const start = performance.now();
    await Promise.all(Array.from({ length: 6 }, () => hasher.hash("x", 10)));
    const elapsed = performance.now() - start;
    clearInterval(timer);
    // The hashes ran one after another in the worker; the main thread never waited for one.
    assert(elapsed > 3 * fastestMs, `elapsed ${elapsed}, one hash ${samples.join(", ")}`);
    assert(maxGapMs < 0.8 * oneHashMs, `event loop stalled ${maxGapMs} ms (one hash ${oneHashMs})`);
    assert(ticks > 10, `ticks ${ticks}`);
  } finally {
    hasher.close();
  }
});

Deno.test("the queue is bounded: beyond maxPending calls are refused with too many requests", async () => {
  const hasher = new WorkerPasswordHasher({ workers: 1, maxPending: 2 });
  try {
    const running = [hasher.hash("a", 4), hasher.hash("b", 4)];
    let refused: unknown = null;
    try {
      await hasher.hash("c", 4);
    } catch (e) {
      refused = e;
    }
    assert(refused instanceof EtcdError);
    assertEquals(refused.code, Errors.tooManyRequests().code);
    await Promise.all(running);
    assertEquals(hasher.pending, 0);
  } finally {
    hasher.close();
  }
});
