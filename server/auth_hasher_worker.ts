/**
 * The worker behind server/auth_hasher.ts: bcrypt runs here, so a ~50-80 ms hash or compare
 * blocks this thread, never the one serving clients. One request at a time, in order.
 *
 * bcrypt itself, fastest first (measured per cost-10 compare on the 2-core development machine,
 * where Go's bcrypt that etcd uses takes ~56 ms): the system's libcrypt (libxcrypt, through
 * Deno's FFI, ~51 ms), else `hash-wasm` (WebAssembly, ~57 ms), with the pure JavaScript `bcryptjs`
 * (~65 ms) for what hash-wasm refuses. `DETCD_BCRYPT=wasm` or `=js` picks one. Hashes are `$2a$`
 * as Go writes them, and hashes written by etcd verify whichever is used.
 *
 * The thread runs at a lower scheduling priority (nice 5): when cores are scarce, the thread
 * serving clients goes first and logins take the CPU that is left (a burst of logins must not
 * raise other clients' latency), while an idle machine still gives bcrypt every core.
 */
/// <reference lib="deno.worker" />
import bcryptjs from "bcryptjs";
import * as hashWasm from "hash-wasm";
import type { HasherReply, HasherRequest } from "./auth_hasher.ts";
import { lowerThreadPriority } from "../platform/thread_priority.ts";

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

/** Equal strings, compared in time independent of where they differ. */
function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** libxcrypt's bcrypt (crypt_rn, crypt_gensalt_rn), or null where it cannot be loaded. */
function loadLibcrypt(): Bcrypt | null {
  let lib;
  try {
    lib = Deno.dlopen("libcrypt.so.1", {
      crypt_rn: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "pointer" },
      crypt_gensalt_rn: {
        parameters: ["buffer", "u64", "buffer", "i32", "buffer", "i32"],
        result: "pointer",
      },
    });
  } catch {
    return null;
  }
  const enc = new TextEncoder();
  // struct crypt_data is 32 KiB; one per worker, as calls run one at a time.
  const data = new Uint8Array(32768);
  const cString = (s: string) => enc.encode(`${s}\0`);
  const crypt = (password: string, setting: string): string | null => {
    const out = lib.symbols.crypt_rn(cString(password), cString(setting), data, data.length);
    if (out === null) return null;
    const text = new Deno.UnsafePointerView(out).getCString();
    // libxcrypt marks failures with a string starting with "*".
    return text.startsWith("*") ? null : text;
  };
  const bcrypt: Bcrypt = {
    hash(password, cost) {
      const random = crypto.getRandomValues(new Uint8Array(16));
      const out = new Uint8Array(64);
      const setting = lib.symbols.crypt_gensalt_rn(
        cString("$2a$"),
        BigInt(cost),
        random,
        16,
        out,
        64,
      );
      if (setting === null) return Promise.reject(new Error("crypt_gensalt failed"));
      const hashed = crypt(password, new Deno.UnsafePointerView(setting).getCString());
      return hashed === null ? Promise.reject(new Error("crypt failed")) : Promise.resolve(hashed);
    },
    verify(password, hashed) {
      const again = crypt(password, hashed);
      return Promise.resolve(again !== null && sameString(again, hashed));
    },
  };
  // Trust it only if it reads a hash Go's bcrypt (etcd's) wrote, as it must.
  const probe = "$2a$04$jwUIqti/mxur/YmaIIDVO.oGyKkNcTSetlVvG3AEukyerWo46lqHu";
  return crypt("detcd", probe) === probe ? bcrypt : null;
}

const choice = Deno.env.get("DETCD_BCRYPT");
const bcrypt: Bcrypt = choice === "js"
  ? portable
  : choice === "wasm"
  ? wasm
  : loadLibcrypt() ?? wasm;

// Where the system does not allow it, the worker keeps the default priority.
lowerThreadPriority(5);

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
