/**
 * Loads keys into a member for a benchmark: transactions of 128 puts from `writers` concurrent
 * callers, over whatever transport the KV client was made with.
 */
import type { Client } from "@connectrpc/connect";
import type { KV } from "../gen/etcdserverpb/rpc_pb.ts";

export async function loadKeys(
  kv: Client<typeof KV>,
  count: number,
  keyOf: (i: number) => Uint8Array,
  value: Uint8Array,
  writers: number,
): Promise<void> {
  let next = 0;
  const writer = async () => {
    while (next < count) {
      const from = next;
      next = Math.min(count, next + 128);
      const success = [];
      for (let i = from; i < next; i++) {
        success.push({ request: { case: "requestPut" as const, value: { key: keyOf(i), value } } });
      }
      await kv.txn({ success });
    }
  };
  await Promise.all(Array.from({ length: writers }, writer));
}
