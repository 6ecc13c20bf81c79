import { assert, assertEquals, assertRejects } from "../testing.ts";
import { Errors, EtcdError } from "../errors.ts";
import { JwtTokenProvider } from "./jwt.ts";
import { AuthOptionsError, type JwtSignMethod } from "./token_options.ts";

const dir = new URL("./testdata/jwt/", import.meta.url);
const key = (name: string) => Deno.readFileSync(new URL(name, dir));
const at = { index: 0, simpleTokenPrefix: "" };

/** Unix ms at which etcd 3.4.23 issued the fixture tokens with ttl=10m (exp - 600 s). */
const etcdIssuedMs: Record<string, number> = {
  RS256: (1796354385 - 600) * 1000,
  ES256: (1796354388 - 600) * 1000,
  PS256: (1796354391 - 600) * 1000,
};

function provider(
  signMethod: JwtSignMethod,
  keys: { priv?: string; pub?: string },
  clock = { ms: 1_700_000_000_000 },
  ttlMs = 600_000,
) {
  return JwtTokenProvider.create({
    signMethod,
    privateKey: keys.priv === undefined ? null : key(keys.priv),
    publicKey: keys.pub === undefined ? null : key(keys.pub),
    ttlMs,
    unknownOptions: [],
    nowMs: () => clock.ms,
  });
}

function segment(token: string, i: number): string {
  const s = token.split(".")[i].replace(/-/g, "+").replace(/_/g, "/");
  return atob(s + "===".slice((s.length + 3) % 4));
}

Deno.test("JWT sign and verify round trip for every RSA, PSS, ECDSA and HMAC method", async () => {
  const cases: Array<[JwtSignMethod, { priv: string; pub?: string }]> = [
    ["RS256", { priv: "rsa_pkcs1.pem", pub: "rsa_pub.pem" }],
    ["RS384", { priv: "rsa_pkcs8.pem" }],
    ["RS512", { priv: "rsa_pkcs1.pem", pub: "rsa_cert.pem" }],
    ["PS256", { priv: "rsa_pkcs8.pem", pub: "rsa_pub.pem" }],
    ["PS384", { priv: "rsa_pkcs1.pem" }],
    ["PS512", { priv: "rsa_pkcs1.pem" }],
    ["ES256", { priv: "ec256_sec1.pem", pub: "ec256_pub.pem" }],
    ["ES256", { priv: "ec256_pkcs8.pem" }],
    ["ES384", { priv: "ec384_sec1.pem", pub: "ec384_pub.pem" }],
    ["HS256", { priv: "rsa_pub.pem" }], // HMAC: the file's bytes are the secret
    ["HS512", { priv: "ec256_pub.pem" }],
  ];
  for (const [method, keys] of cases) {
    const p = await provider(method, keys);
    assertEquals(p.verifyOnly, false, method);
    const token = await p.assign("root", 7, at);
    assertEquals(await p.info(token, 99), { username: "root", revision: 7 }, method);
    assertEquals(segment(token, 0), `{"alg":"${method}","typ":"JWT"}`, method);
  }
});

Deno.test("tokens real etcd 3.4.23 issued verify here, and RS256 ones are reproduced byte for byte", async () => {
  // etcd started with --auth-token jwt,pub-key=…,priv-key=…,sign-method=<M>,ttl=10m and the
  // keys of testdata/jwt; tokens from POST /v3/auth/authenticate for root at auth revision 4.
  // (The other way round, a PS256 token signed here was accepted by that etcd's /v3/kv/range.)
  const tokens = JSON.parse(
    await Deno.readTextFile(new URL("etcd_3.4.23_tokens.json", dir)),
  ) as Record<string, string>;
  const keys: Record<string, { priv?: string; pub: string }> = {
    RS256: { pub: "rsa_pub.pem" },
    ES256: { pub: "ec256_pub.pem" },
    PS256: { pub: "rsa_cert.pem" },
  };
  for (const [method, token] of Object.entries(tokens)) {
    const clock = { ms: etcdIssuedMs[method] + 1000 };
    const verifier = await provider(method as JwtSignMethod, keys[method], clock);
    assertEquals(verifier.verifyOnly, true);
    assertEquals(await verifier.info(token, 1), { username: "root", revision: 4 }, method);
  }
  const clock = { ms: etcdIssuedMs.RS256 };
  const signer = await provider("RS256", { priv: "rsa_pkcs1.pem" }, clock);
  assertEquals(await signer.assign("root", 4, at), tokens.RS256);
});

Deno.test("a JWT expires at exp (seconds), checked with the injected wall clock", async () => {
  const clock = { ms: 1_700_000_000_500 };
  const p = await provider("ES256", { priv: "ec256_sec1.pem" }, clock, 300_000);
  const token = await p.assign("u", 3, at);
  const exp = JSON.parse(segment(token, 1)).exp;
  assertEquals(exp, 1_700_000_300);
  assertEquals(segment(token, 1), `{"exp":${exp},"revision":3,"username":"u"}`);
  clock.ms = exp * 1000 + 999; // still the exp second
  assertEquals((await p.info(token, 1))?.username, "u");
  clock.ms = (exp + 1) * 1000;
  assertEquals(await p.info(token, 1), null);
});

Deno.test("a public key alone verifies but cannot sign (etcd's verify-only error)", async () => {
  const signer = await provider("RS256", { priv: "rsa_pkcs1.pem" });
  const verifier = await provider("RS256", { pub: "rsa_cert.pem" });
  const token = await signer.assign("root", 2, at);
  assertEquals(await verifier.info(token, 1), { username: "root", revision: 2 });
  const e = await assertRejects(() => verifier.assign("root", 2, at), EtcdError);
  assertEquals((e as EtcdError).code, Errors.verifyOnlyToken().code);
  assertEquals(e.message, Errors.verifyOnlyToken().message);
});

Deno.test("tampered, re-signed, wrongly keyed or malformed tokens resolve to nobody", async () => {
  const p = await provider("RS256", { priv: "rsa_pkcs1.pem" });
  const other = await provider("RS256", { priv: "rsa2_pkcs1.pem" });
  const es = await provider("ES256", { priv: "ec256_sec1.pem" });
  const hs = await provider("HS256", { priv: "rsa_pub.pem" });
  const token = await p.assign("alice", 5, at);
  const [h, , s] = token.split(".");
  const forged = btoa('{"exp":4102444800,"revision":5,"username":"root"}')
    .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const cases: Array<[string, string, JwtTokenProvider]> = [
    ["claims swapped under the signature", `${h}.${forged}.${s}`, p],
    ["signed with another key", await other.assign("alice", 5, at), p],
    ["another algorithm (ES256)", await es.assign("alice", 5, at), p],
    ["HS256 keyed with the RSA public key file", await hs.assign("alice", 5, at), p],
    ["alg none", `${btoa('{"alg":"none","typ":"JWT"}').replace(/=+$/, "")}.${forged}.`, p],
    ["two segments", `${h}.${forged}`, p],
    ["not base64url", `${h}.***.${s}`, p],
    ["a simple token", "abcdefghijklmnop.12", p],
    ["empty", "", p],
  ];
  for (const [name, t, verifier] of cases) assertEquals(await verifier.info(t, 1), null, name);
});

Deno.test("key options fail with the errors etcd 3.4.23 exits with", async () => {
  const fails = async (
    method: JwtSignMethod,
    keys: { priv?: string; pub?: string; privBytes?: string },
  ) => {
    try {
      await JwtTokenProvider.create({
        signMethod: method,
        privateKey: keys.privBytes !== undefined
          ? new TextEncoder().encode(keys.privBytes)
          : keys.priv === undefined
          ? null
          : key(keys.priv),
        publicKey: keys.pub === undefined ? null : key(keys.pub),
        ttlMs: 1000,
        unknownOptions: [],
        nowMs: () => 0,
      });
      return "created";
    } catch (e) {
      assert(e instanceof AuthOptionsError, `${e}`);
      return e.message;
    }
  };
  // The first four compared with real etcd 3.4.23 (`C | etcdmain: …`).
  assertEquals(await fails("RS256", {}), "auth: missing key data");
  assertEquals(await fails("HS256", {}), "auth: missing key data");
  assertEquals(
    await fails("RS256", { privBytes: "garbage\n" }),
    "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key",
  );
  assertEquals(
    await fails("none", { priv: "rsa_pub.pem" }),
    "unsupported signing method: *jwt.signingMethodNone",
  );
  assertEquals(
    await fails("EdDSA", { priv: "rsa_pub.pem" }),
    "unsupported signing method: *jwt.SigningMethodEd25519",
  );
  assertEquals(await fails("RS256", { pub: "ec256_pub.pem" }), "key is not a valid RSA public key");
  assertEquals(await fails("ES256", { pub: "rsa_pub.pem" }), "key is not a valid ECDSA public key");
  assertEquals(
    await fails("RS256", { priv: "ec256_pkcs8.pem" }),
    "key is not a valid RSA private key",
  );
  assertEquals(
    await fails("ES256", { priv: "rsa_pkcs8.pem" }),
    "key is not a valid ECDSA private key",
  );
  assertEquals(
    await fails("RS256", { priv: "ec256_sec1.pem" }),
    "x509: failed to parse private key (use ParseECPrivateKey instead for this key format)",
  );
  assertEquals(
    await fails("ES256", { priv: "ec256_sec1.pem", pub: "ec384_pub.pem" }),
    "auth: public and private keys don't match",
  );
  // etcd's match check only fails when exponent AND modulus differ: two RSA keys with the usual
  // exponent 65537 pass (the private key is used).
  assertEquals(await fails("RS256", { priv: "rsa_pkcs1.pem", pub: "rsa2_pub.pem" }), "created");
});

Deno.test("an ES method with a key on another curve fails every signature, as golang-jwt does", async () => {
  const p = await provider("ES256", { priv: "ec384_sec1.pem" });
  const e = await assertRejects(() => p.assign("u", 1, at), EtcdError);
  assertEquals(e.message, "key is invalid");
  const es384 = await provider("ES384", { priv: "ec384_sec1.pem" });
  assertEquals(await p.info(await es384.assign("u", 1, at), 1), null);
});
