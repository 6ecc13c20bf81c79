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
