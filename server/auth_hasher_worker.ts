/**
 * The worker behind server/auth_hasher.ts: bcrypt runs here, so a ~50-80 ms hash or compare
 * blocks this thread, never the one serving clients. One request at a time, in order.
 *
 * bcrypt itself: `hash-wasm` (WebAssembly), as fast as Go's bcrypt that etcd uses (measured on
 * the 2-core development machine: ~57 ms per cost-10 compare against Go's ~56 ms, where the pure
 * JavaScript `bcryptjs` takes ~65 ms). `DETCD_BCRYPT=js` selects bcryptjs instead. Hashes are
 * `$2a$` as Go writes them, and hashes written by etcd verify either way.
 *
 * The thread runs at a lower scheduling priority (nice 10): when cores are scarce, the thread
 * serving clients goes first and logins take the CPU that is left (a burst of logins must not
 * raise other clients' latency), while an idle machine still gives bcrypt every core.
 */
/// <reference lib="deno.worker" />
import bcryptjs from "bcryptjs";
import * as hashWasm from "hash-wasm";
import os from "node:os";
import type { HasherReply, HasherRequest } from "./auth_hasher.ts";

interface Bcrypt {
  hash(password: string, cost: number): Promise<string>;
  verify(password: string, hashed: string): Promise<boolean>;
}

const portable: Bcrypt = {
  hash(password, cost) {
    // bcryptjs writes `$2b$`: the same algorithm; keep Go's (etcd's) prefix.
    const salt = bcryptjs.genSaltSync(cost).replace(/^\$2b\$/, "$2a$");
    return Promise.resolve(bcryptjs.hashSync(password, salt));
  },
  verify: (password, hashed) => Promise.resolve(bcryptjs.compareSync(password, hashed)),
};

/**
 * bcrypt reads at most 72 bytes of a password (Go's bcrypt in etcd 3.4.23 and bcryptjs ignore the
 * rest); hash-wasm refuses longer ones, so they are cut here as bcrypt would. The empty password,
 * which hash-wasm refuses too, goes to bcryptjs.
 */
function passwordBytes(password: string): Uint8Array {
  const bytes = new TextEncoder().encode(password);
  return bytes.length > 72 ? bytes.subarray(0, 72) : bytes;
}

const wasm: Bcrypt = {
  async hash(password, cost) {
    if (password === "") return portable.hash(password, cost);
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const encoded = await hashWasm.bcrypt({
      password: passwordBytes(password),
      salt,
      costFactor: cost,
      outputType: "encoded",
    });
    return encoded.replace(/^\$2[by]\$/, "$2a$");
  },
  async verify(password, hashed) {
    if (password === "") return portable.verify(password, hashed);
    // hash-wasm reads $2a$, $2b$ and $2y$ alike (the same algorithm up to 72 bytes).
    return await hashWasm.bcryptVerify({ password: passwordBytes(password), hash: hashed });
  },
};

const bcrypt: Bcrypt = Deno.env.get("DETCD_BCRYPT") === "js" ? portable : wasm;

try {
  os.setPriority(0, 10);
} catch {
  // Not allowed here: the worker keeps the default priority.
}

async function verify(password: string, hashed: string): Promise<boolean> {
  try {
    return await bcrypt.verify(password, hashed);
  } catch {
    // A malformed hash matches nothing (Go's CompareHashAndPassword errors).
    return false;
  }
}

self.onmessage = async (event: MessageEvent<HasherRequest>) => {
  const r = event.data;
  let reply: HasherReply;
  try {
    reply = r.op === "hash"
      ? { id: r.id, ok: true, hash: await bcrypt.hash(r.password, r.cost) }
      : { id: r.id, ok: true, match: await verify(r.password, r.hash) };
  } catch (e) {
    reply = { id: r.id, ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  self.postMessage(reply);
};
