/**
 * etcd's `--auth-token jwt,…` provider (auth/jwt.go, auth/options.go) on WebCrypto: tokens are
 * JWS compact tokens signed with RS/PS/ES256–512 (or HS256–512), claims `username`, `revision`
 * (the auth revision at issue) and `exp`, byte-compatible with the tokens etcd 3.4.23 issues, so
 * a token from either verifies on the other when they share the key. Given only a public key the
 * provider verifies and refuses to sign (`auth: token signing attempted with verify-only key`).
 *
 * Unlike simple tokens a JWT needs no member-local state: any member with the key resolves it,
 * and a token issued before the user's permissions changed carries the old revision, which the
 * store then refuses (`revision of auth store is old`). The wall clock (for `exp`) is injected.
 */

import { EtcdError, GrpcCode } from "../errors.ts";
import { Errors } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import {
  certificateSpki,
  curveName,
  decodePem,
  isPkcs1RsaPrivateKey,
  oids,
  pkcs1ToPkcs8,
  pkcs8Algorithm,
  sec1Curve,
  sec1ToPkcs8,
  spkiAlgorithm,
} from "./_pem.ts";
import type { AuthInfo, TokenAssignment, TokenProvider } from "./token.ts";
import {
  AuthOptionsError,
  type JwtConfig,
  type JwtSignMethod,
  KEY_MISMATCH,
  MISSING_KEY_DATA,
} from "./token_options.ts";

/** golang-jwt's key errors, as etcd exits with them. */
const ERR_PEM = "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key";
const ERR_NOT_RSA_PRIVATE = "key is not a valid RSA private key";
const ERR_NOT_RSA_PUBLIC = "key is not a valid RSA public key";
const ERR_NOT_EC_PRIVATE = "key is not a valid ECDSA private key";
const ERR_NOT_EC_PUBLIC = "key is not a valid ECDSA public key";

type Family = "RSA" | "PSS" | "EC" | "HMAC";

function family(method: JwtSignMethod): Family | null {
  if (method.startsWith("RS")) return "RSA";
  if (method.startsWith("PS")) return "PSS";
  if (method.startsWith("ES")) return "EC";
  if (method.startsWith("HS")) return "HMAC";
  return null;
}

function hashOf(method: JwtSignMethod): "SHA-256" | "SHA-384" | "SHA-512" {
  return method.endsWith("256") ? "SHA-256" : method.endsWith("384") ? "SHA-384" : "SHA-512";
}

/** The curve an ES method signs with (golang-jwt refuses keys on another curve). */
function methodCurve(method: JwtSignMethod): string {
  return method === "ES256" ? "P-256" : method === "ES384" ? "P-384" : "P-521";
}

/** Go's name for the signing method type, in etcd's "unsupported signing method" error. */
function goMethodType(method: JwtSignMethod): string {
  return method === "none" ? "*jwt.signingMethodNone" : "*jwt.SigningMethodEd25519";
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function base64Url(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(s: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Go's encoding/json string: HTML-safe escapes and \u00XX for \b and \f. */
function goJsonString(s: string): string {
  return JSON.stringify(s)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029")
    .replace(/\\b/g, "\\u0008")
    .replace(/\\f/g, "\\u000c");
}

interface KeyPair {
  /** Signs; null for a verify-only provider. */
  signKey: CryptoKey | null;
  verifyKey: CryptoKey;
  /** ES keys on another curve than the method's: etcd fails every signature and verification. */
  curveMismatch: boolean;
}

/** What a JWT provider is built from. */
export interface JwtProviderOptions extends JwtConfig {
  /** Wall-clock Unix milliseconds (`exp` is absolute time). */
  nowMs: () => number;
  logger?: Logger;
}

/** etcd's JWT token provider. */
export class JwtTokenProvider implements TokenProvider {
  #method: JwtSignMethod;
  #keys: KeyPair;
  #ttlMs: number;
  #nowMs: () => number;
  #logger: Logger;

  private constructor(options: JwtProviderOptions, keys: KeyPair) {
    this.#method = options.signMethod;
    this.#keys = keys;
    this.#ttlMs = options.ttlMs;
    this.#nowMs = options.nowMs;
    this.#logger = options.logger ?? silentLogger;
  }

  /**
   * Loads the keys as etcd's jwtOptions.Key does and builds the provider. Throws
   * AuthOptionsError with etcd's fatal message (`auth: missing key data`, golang-jwt's key
   * errors, `unsupported signing method: …`).
   */
  static async create(options: JwtProviderOptions): Promise<JwtTokenProvider> {
    const logger = options.logger ?? silentLogger;
    if (options.unknownOptions.length > 0) {
      logger.warn("auth/jwt.go:154", "unknown JWT options", { keys: options.unknownOptions });
    }
    const keys = await loadKeys(options);
    return new JwtTokenProvider(options, keys);
  }

  /** Whether this member can only verify (it was given a public key alone). */
  get verifyOnly(): boolean {
    return this.#keys.signKey === null;
  }

  /** Nothing to start: JWTs need no state. */
  enable(): void {}
  /** Nothing to forget: JWTs cannot be revoked, they expire (and carry the auth revision). */
  disable(): void {}
  /** Nothing to forget (see disable). */
  invalidateUser(_username: string): void {}
  /** JWTs have no simple-token prefix. */
  genTokenPrefix(): string {
    return "";
  }

  #params(): AlgorithmIdentifier | RsaPssParams | EcdsaParams {
    const f = family(this.#method);
    if (f === "PSS") return { name: "RSA-PSS", saltLength: hashLength(this.#method) };
    if (f === "EC") return { name: "ECDSA", hash: hashOf(this.#method) };
    if (f === "HMAC") return { name: "HMAC" };
    return { name: "RSASSA-PKCS1-v1_5" };
  }

  /** Signs {exp, revision, username} as golang-jwt does (sorted keys, no padding). */
  async assign(username: string, revision: number, _at: TokenAssignment): Promise<string> {
    const key = this.#keys.signKey;
    if (key === null) throw Errors.verifyOnlyToken();
    if (this.#keys.curveMismatch) throw new EtcdError(GrpcCode.Unknown, "key is invalid");
    const header = `{"alg":${goJsonString(this.#method)},"typ":"JWT"}`;
    const exp = Math.floor((this.#nowMs() + this.#ttlMs) / 1000);
    const claims = `{"exp":${exp},"revision":${revision},"username":${goJsonString(username)}}`;
    const input = `${base64Url(enc.encode(header))}.${base64Url(enc.encode(claims))}`;
    const signature = await crypto.subtle.sign(this.#params(), key, enc.encode(input));
    return `${input}.${base64Url(new Uint8Array(signature))}`;
  }

  /**
   * The token's user and revision when its signature, algorithm and time claims (exp, nbf, iat)
   * hold; null otherwise. The store's revision is not used: the token carries its own.
   */
  async info(token: string, _currentRevision: number): Promise<AuthInfo | null> {
    const parsed = await this.#verify(token);
    if (parsed === null) {
      // etcd logs the token too; detcd never logs a secret.
      this.#logger.warn("auth/jwt.go:64", "failed to parse a JWT token", {});
    }
    return parsed;
  }

  async #verify(token: string): Promise<AuthInfo | null> {
    const parts = token.split(".");
    if (parts.length !== 3) return null;
    const [h, p, s] = parts.map(fromBase64Url);
    if (h === null || p === null || s === null) return null;
    let header: unknown;
    let claims: unknown;
    try {
      header = JSON.parse(dec.decode(h));
      claims = JSON.parse(dec.decode(p));
    } catch {
      return null;
    }
    if (!isObject(header) || !isObject(claims)) return null;
    if (header.alg !== this.#method || this.#keys.curveMismatch) return null;
    const ok = await crypto.subtle.verify(
      this.#params(),
      this.#keys.verifyKey,
      s,
      enc.encode(`${parts[0]}.${parts[1]}`),
    );
    if (!ok) return null;
    const nowSeconds = Math.floor(this.#nowMs() / 1000);
    if (!timeClaimHolds(claims.exp, (t) => nowSeconds <= t)) return null;
    if (!timeClaimHolds(claims.iat, (t) => nowSeconds >= t)) return null;
    if (!timeClaimHolds(claims.nbf, (t) => nowSeconds >= t)) return null;
    // etcd type-asserts these and would panic on a signed token without them.
    if (typeof claims.username !== "string" || typeof claims.revision !== "number") return null;
    return { username: claims.username, revision: Math.max(0, Math.trunc(claims.revision)) };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** golang-jwt's MapClaims checks: absent or 0 passes; a non-number fails. */
function timeClaimHolds(v: unknown, holds: (t: number) => boolean): boolean {
  if (v === undefined) return true;
  if (typeof v !== "number") return false;
  return v === 0 || holds(v);
}

function hashLength(method: JwtSignMethod): number {
  return method.endsWith("256") ? 32 : method.endsWith("384") ? 48 : 64;
}

function fail(message: string): never {
  throw new AuthOptionsError(message);
}

async function loadKeys(options: JwtProviderOptions): Promise<KeyPair> {
  const method = options.signMethod;
  const f = family(method);
  if (f === null) fail(`unsupported signing method: ${goMethodType(method)}`);
  const hash = hashOf(method);
  if (f === "HMAC") {
    if (options.privateKey === null || options.privateKey.length === 0) fail(MISSING_KEY_DATA);
    const key = await crypto.subtle.importKey(
      "raw",
      new Uint8Array(options.privateKey),
      { name: "HMAC", hash },
      false,
      ["sign", "verify"],
    );
    return { signKey: key, verifyKey: key, curveMismatch: false };
  }
  const priv = options.privateKey !== null && options.privateKey.length > 0
    ? privateKeyPkcs8(f, options.privateKey)
    : null;
  const pub = options.publicKey !== null && options.publicKey.length > 0
    ? publicKeySpki(f, options.publicKey)
    : null;
  if (priv === null && pub === null) fail(MISSING_KEY_DATA);
  const alg = (curve: string | null): RsaHashedImportParams | EcKeyImportParams =>
    f === "EC"
      ? { name: "ECDSA", namedCurve: curve! }
      : { name: f === "PSS" ? "RSA-PSS" : "RSASSA-PKCS1-v1_5", hash };
  const importOr = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (e) {
      return fail(`x509: ${(e as Error).message}`);
    }
  };
  let pubJwk: JsonWebKey | null = null;
  let verifyKey: CryptoKey | null = null;
  if (pub !== null) {
    verifyKey = await importOr(
      crypto.subtle.importKey("spki", new Uint8Array(pub.der), alg(pub.curve), true, ["verify"]),
    );
    pubJwk = await crypto.subtle.exportKey("jwk", verifyKey);
  }
  if (priv === null) {
    return {
      signKey: null,
      verifyKey: verifyKey!,
      curveMismatch: f === "EC" && pub!.curve !== methodCurve(method),
    };
  }
  const signKey = await importOr(
    crypto.subtle.importKey("pkcs8", new Uint8Array(priv.der), alg(priv.curve), true, ["sign"]),
  );
  const privJwk = await crypto.subtle.exportKey("jwk", signKey);
  // etcd's (lenient) match check: a mismatch only when every compared part differs.
  if (pubJwk !== null) {
    const mismatch = f === "EC"
      ? pubJwk.crv !== privJwk.crv && pubJwk.x !== privJwk.x && pubJwk.y !== privJwk.y
      : pubJwk.e !== privJwk.e && pubJwk.n !== privJwk.n;
    if (mismatch) fail(KEY_MISMATCH);
  }
  // Verification uses the private key's own public half, as etcd does.
  const publicJwk: JsonWebKey = f === "EC"
    ? { kty: "EC", crv: privJwk.crv, x: privJwk.x, y: privJwk.y }
    : { kty: "RSA", n: privJwk.n, e: privJwk.e };
  const ownVerifyKey = await crypto.subtle.importKey(
    "jwk",
    publicJwk,
    alg(priv.curve),
    false,
    ["verify"],
  );
  return {
    signKey,
    verifyKey: ownVerifyKey,
    curveMismatch: f === "EC" && priv.curve !== methodCurve(method),
  };
}

/** A private key file as golang-jwt reads it, as PKCS#8 DER plus its EC curve. */
function privateKeyPkcs8(f: Family, pem: Uint8Array): { der: Uint8Array; curve: string | null } {
  const block = decodePem(pem);
  if (block === null) fail(ERR_PEM);
  const der = block.der;
  if (f === "EC") {
    const sec1 = sec1Curve(der);
    if (sec1 !== undefined) {
      const curve = sec1 === null ? null : curveName(sec1);
      if (curve === null || sec1 === null) fail("x509: unknown elliptic curve");
      return { der: sec1ToPkcs8(der, sec1), curve };
    }
    const alg = pkcs8Algorithm(der);
    if (alg === null) {
      fail(
        isPkcs1RsaPrivateKey(der)
          ? "x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this key format)"
          : "x509: failed to parse private key",
      );
    }
    if (!equal(alg.oid, oids.ecPublicKey)) fail(ERR_NOT_EC_PRIVATE);
    const curve = alg.curve === null ? null : curveName(alg.curve);
    if (curve === null) fail("x509: unknown elliptic curve");
    return { der, curve };
  }
  if (isPkcs1RsaPrivateKey(der)) return { der: pkcs1ToPkcs8(der), curve: null };
  const alg = pkcs8Algorithm(der);
  if (alg === null) {
    fail(
      sec1Curve(der) !== undefined
        ? "x509: failed to parse private key (use ParseECPrivateKey instead for this key format)"
        : "x509: failed to parse private key",
    );
  }
  if (!equal(alg.oid, oids.rsaEncryption)) fail(ERR_NOT_RSA_PRIVATE);
  return { der, curve: null };
}

/** A public key file (SPKI or certificate) as SPKI DER plus its EC curve. */
function publicKeySpki(f: Family, pem: Uint8Array): { der: Uint8Array; curve: string | null } {
  const block = decodePem(pem);
  if (block === null) fail(ERR_PEM);
  let der = block.der;
  let alg = spkiAlgorithm(der);
  if (alg === null) {
    const spki = certificateSpki(der);
    if (spki === null) fail("x509: malformed certificate");
    der = spki;
    alg = spkiAlgorithm(der)!;
  }
  if (f === "EC") {
    if (!equal(alg.oid, oids.ecPublicKey)) fail(ERR_NOT_EC_PUBLIC);
    const curve = alg.curve === null ? null : curveName(alg.curve);
    if (curve === null) fail("x509: unsupported elliptic curve");
    return { der, curve };
  }
  if (!equal(alg.oid, oids.rsaEncryption)) fail(ERR_NOT_RSA_PUBLIC);
  return { der, curve: null };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
