/** Test helpers: terse store operations with string keys and readable views of KeyValues. */
import type { KeyValue } from "../../gen/mvccpb/kv_pb.ts";
import { EtcdError } from "../errors.ts";
import {
  type LeaseHooks,
  MvccStore,
  type RangeOptions,
  type RangeResult,
  type ReadView,
  type WriteTxn,
} from "./store.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export function b(s: string): Uint8Array {
  return encoder.encode(s);
}

/** A string from UTF-8 bytes. */
export function s(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

const EMPTY = new Uint8Array(0);

/** Puts key = value (lease 0n = none) in a write transaction of its own; returns it, ended. */
export function put(store: MvccStore, key: string, value = "", lease = 0n): WriteTxn {
  const tx = store.write();
  tx.put(b(key), b(value), lease);
  tx.end();
  return tx;
}

/** Deletes [key, end) (end undefined = single key) in a transaction of its own; returns it. */
export function del(store: MvccStore, key: string, end?: string): WriteTxn {
  const tx = store.write();
  tx.deleteRange(b(key), end === undefined ? EMPTY : b(end));
  tx.end();
  return tx;
}

/** Runs `ops` in one write transaction (one revision at most); returns it, ended. */
export function write(store: MvccStore, ops: (tx: WriteTxn) => void): WriteTxn {
  const tx = store.write();
  ops(tx);
  tx.end();
  return tx;
}

/** The store's range over [key, end) (end undefined = single key) with string keys. */
export function rangeOf(
  view: ReadView,
  key: string,
  end?: string,
  options: RangeOptions = {},
): RangeResult {
  return view.range(b(key), end === undefined ? EMPTY : b(end), options);
}

/** A KeyValue as a plain, comparable object with string key/value and number revisions. */
export interface KvView {
  key: string;
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: number;
}

/** Readable view of a KeyValue. */
export function kvView(kv: KeyValue | undefined): KvView | undefined {
  if (!kv) return undefined;
  return {
    key: s(kv.key),
    value: s(kv.value),
    create: Number(kv.createRevision),
    mod: Number(kv.modRevision),
    version: Number(kv.version),
    lease: Number(kv.lease),
  };
}

/** Keys of a list of KeyValues. */
export function keys(kvs: readonly KeyValue[]): string[] {
  return kvs.map((kv) => s(kv.key));
}

/** The current value of a key, as a view (undefined if missing). */
export function get(store: MvccStore, key: string, rev = 0): KvView | undefined {
  return kvView(rangeOf(store, key, undefined, { revision: rev }).kvs[0]);
}

/** A store with the given puts applied in order (each its own revision). */
export function storeWith(...pairs: [string, string][]): MvccStore {
  const store = new MvccStore();
  for (const [k, v] of pairs) put(store, k, v);
  return store;
}

/** Asserts that fn throws an EtcdError with the same message as expected(). */
export function throwsEtcd(fn: () => unknown, expected: EtcdError): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof EtcdError)) throw err;
    if (err.message !== expected.message || err.code !== expected.code) {
      throw new Error(`expected "${expected.message}", got "${err.message}"`);
    }
    return;
  }
  throw new Error(`expected "${expected.message}", nothing thrown`);
}

/** Lease hooks that record calls; `existing` lists the leases that exist. */
export class RecordingLeases implements LeaseHooks {
  calls: string[] = [];
  constructor(readonly existing: Set<bigint> = new Set()) {}
  exists(id: bigint): boolean {
    return this.existing.has(id);
  }
  attach(id: bigint, key: Uint8Array): void {
    this.calls.push(`attach ${id} ${s(key)}`);
  }
  detach(id: bigint, key: Uint8Array): void {
    this.calls.push(`detach ${id} ${s(key)}`);
  }
}
