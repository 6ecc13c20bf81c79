/**
 * The `--auth-token` flag value, parsed as etcd 3.4.23 parses it (auth/store.go decomposeOpts,
 * auth/options.go): `simple`, `jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>[,ttl=<dur>]`
 * or empty (no tokens). Bad values fail with the error etcd exits with, plus the line etcd logs
 * before it, so the server can print both as etcd does. Reading the key files is the caller's
 * (injected): core does no I/O.
 */

import { parseGoDurationMs } from "./go_duration.ts";

/** etcd's default JWT lifetime (`ttl` option): 5 minutes. */
export const DEFAULT_JWT_TTL_MS = 5 * 60 * 1000;

/** A bad `--auth-token` value: `message` is etcd's fatal error, `detail` the line logged first. */
export class AuthOptionsError extends Error {
  constructor(message: string, readonly detail: string | null = null) {
    super(message);
    this.name = "AuthOptionsError";
  }
}

/** etcd's ErrInvalidAuthOpts text. */
export const INVALID_AUTH_OPTIONS = "auth: invalid auth options";
/** etcd's ErrInvalidAuthMethod text. */
export const INVALID_AUTH_METHOD = "auth: invalid auth signature method";
/** etcd's ErrMissingKey text. */
export const MISSING_KEY_DATA = "auth: missing key data";
/** etcd's ErrKeyMismatch text. */
export const KEY_MISMATCH = "auth: public and private keys don't match";

/** The sign methods golang-jwt registers (etcd accepts the name of any of them). */
export const jwtSignMethods = [
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "none",
] as const;

/** A sign method name. */
export type JwtSignMethod = typeof jwtSignMethods[number];

/** The parsed flag. */
export type AuthTokenConfig =
  | { type: "none" }
  | { type: "simple" }
  | { type: "jwt"; options: Map<string, string> };

/**
 * Splits the flag as etcd does: the first comma-separated field is the type, every other one a
 * `key=value` pair (exactly one `=`, no key twice). Unknown types fail.
 */
export function parseAuthTokenFlag(value: string): AuthTokenConfig {
  const fields = value.split(",");
  const type = fields[0];
  const options = new Map<string, string>();
  for (const field of fields.slice(1)) {
    const pair = field.split("=");
    if (pair.length !== 2) {
      throw new AuthOptionsError(INVALID_AUTH_OPTIONS, `invalid token specific option: ${value}`);
    }
    if (options.has(pair[0])) {
      throw new AuthOptionsError(
        INVALID_AUTH_OPTIONS,
        `invalid token specific option, duplicated parameters (${pair[0]}): ${value}`,
      );
    }
    options.set(pair[0], pair[1]);
  }
  switch (type) {
    case "simple":
      return { type: "simple" };
    case "jwt":
      return { type: "jwt", options };
    case "":
      return { type: "none" };
    default:
      throw new AuthOptionsError(INVALID_AUTH_OPTIONS, `unknown token type: ${type}`);
  }
}

/** The JWT options with the key files read. */
export interface JwtConfig {
  signMethod: JwtSignMethod;
  /** PEM (or, for HMAC, raw) bytes of `pub-key`, if given. */
  publicKey: Uint8Array | null;
  /** PEM (or, for HMAC, raw secret) bytes of `priv-key`, if given. */
  privateKey: Uint8Array | null;
  ttlMs: number;
  /** Options etcd does not know (it warns and goes on). */
  unknownOptions: string[];
}

const knownOptions = new Set(["sign-method", "pub-key", "priv-key", "ttl"]);

/**
 * etcd's jwtOptions.ParseWithDefaults: ttl, then the key files (`readFile` throws with Go's error
 * text, e.g. `open /x: no such file or directory`), then the sign method. Any failure is
 * `auth: invalid auth options`, with the cause as detail (`problem loading JWT options: …`).
 */
export function loadJwtConfig(
  options: Map<string, string>,
  readFile: (path: string) => Uint8Array,
): JwtConfig {
  const fail = (cause: string): never => {
    throw new AuthOptionsError(INVALID_AUTH_OPTIONS, `problem loading JWT options: ${cause}`);
  };
  let ttlMs = DEFAULT_JWT_TTL_MS;
  const ttl = options.get("ttl") ?? "";
  if (ttl !== "") {
    try {
      ttlMs = parseGoDurationMs(ttl);
    } catch (e) {
      fail((e as Error).message);
    }
  }
  const read = (name: string): Uint8Array | null => {
    const file = options.get(name) ?? "";
    if (file === "") return null;
    try {
      return readFile(file);
    } catch (e) {
      return fail((e as Error).message);
    }
  };
  const publicKey = read("pub-key");
  const privateKey = read("priv-key");
  const method = options.get("sign-method") ?? "";
  if (!(jwtSignMethods as readonly string[]).includes(method)) fail(INVALID_AUTH_METHOD);
  return {
    signMethod: method as JwtSignMethod,
    publicKey,
    privateKey,
    ttlMs,
    unknownOptions: [...options.keys()].filter((k) => !knownOptions.has(k)),
  };
}
