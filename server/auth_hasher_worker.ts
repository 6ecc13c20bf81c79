/**
 * The worker behind server/auth_hasher.ts: bcrypt (bcryptjs) runs here, so an ~80 ms hash or
 * compare blocks this thread, never the one serving clients. One request at a time, in order.
 */
/// <reference lib="deno.worker" />
import bcrypt from "bcryptjs";
import type { HasherReply, HasherRequest } from "./auth_hasher.ts";

/** Go's bcrypt writes `$2a$`; bcryptjs `$2b$`. Same algorithm: keep etcd's prefix. */
function hash(password: string, cost: number): string {
  const salt = bcrypt.genSaltSync(cost).replace(/^\$2b\$/, "$2a$");
  return bcrypt.hashSync(password, salt);
}

function verify(password: string, hashed: string): boolean {
  try {
    return bcrypt.compareSync(password, hashed);
  } catch {
    // A malformed hash matches nothing (Go's CompareHashAndPassword errors).
    return false;
  }
}

self.onmessage = (event: MessageEvent<HasherRequest>) => {
  const r = event.data;
  let reply: HasherReply;
  try {
    reply = r.op === "hash"
      ? { id: r.id, ok: true, hash: hash(r.password, r.cost) }
      : { id: r.id, ok: true, match: verify(r.password, r.hash) };
  } catch (e) {
    reply = { id: r.id, ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  self.postMessage(reply);
};
