import assert from "node:assert/strict";
import { Errors } from "../errors.ts";
import { MvccStore } from "./store.ts";
import { put, throwsEtcd } from "./_testing.ts";

Deno.test("hashKV rejects compacted and future revisions", () => {
  const store = new MvccStore();
  put(store, "a", "1");
  put(store, "a", "2");
  store.compact(2);
  throwsEtcd(() => store.hashKV(2), Errors.compacted());
  throwsEtcd(() => store.hashKV(4), Errors.futureRev());
  assert.equal(store.hashKV(3).hash, store.hash());
});

Deno.test("members with the same history have the same hash; any difference changes it", () => {
  const build = (value: string) => {
    const store = new MvccStore();
    put(store, "a", "1");
    put(store, "b", value);
    return store;
  };
  assert.equal(build("x").hash(), build("x").hash());
  assert.notEqual(build("x").hash(), build("y").hash());
});

Deno.test("hashKVSteps hashes the store as it was when called: writes between steps and a compaction finishing them change nothing", () => {
  const build = () => {
    const store = new MvccStore();
    for (let i = 0; i < 30_000; i++) put(store, `k${i % 7000}`, `v${i}`);
    store.compact(10_000);
    return store;
  };
  const reference = build();
  const expected = reference.hashKV(0);
  const store = build();
  const steps = store.hashKVSteps(0);
  let stepped = 0;
  let result = steps.next();
  while (!result.done) {
    stepped++;
    // The member goes on between steps: more writes, and once a compaction (which finishes
    // the hash's remaining steps at once, before it drops history).
    put(store, `k${stepped}`, "later");
    if (stepped === 3) store.compact(25_000);
    result = steps.next();
  }
  assert.ok(stepped >= 3, `in steps (${stepped})`);
  assert.deepEqual(result.value, expected);
});
