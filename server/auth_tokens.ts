/**
 * The member's token provider from `--auth-token` (etcd's auth.NewTokenProvider): `simple`
 * tokens with `--auth-token-ttl`, signed `jwt` tokens from key files, or none (""). Time and
 * randomness are the server's: a crypto-strong generator for the letters of simple tokens,
 * since they are the secret.
 */
import {
  AuthOptionsError,
  JwtTokenProvider,
  loadJwtConfig,
  NopTokenProvider,
  parseAuthTokenFlag,
  SimpleTokenProvider,
  type TokenProvider,
} from "../core/auth/mod.ts";
import type { Logger } from "../core/log.ts";

/** A uniform integer in [0, n) from the platform's cryptographic generator. */
export function cryptoRandomInt(n: number): number {
  // Rejection sampling keeps the draw uniform for any n up to 2^32.
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  const buffer = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buffer);
    if (buffer[0] < limit) return buffer[0] % n;
  }
}

/** Reads a key file; a failure reads as Go's os.ReadFile error (`open X: no such file...`). */
function readKeyFile(path: string): Uint8Array {
  try {
    return Deno.readFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`open ${path}: no such file or directory`);
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new Error(`open ${path}: permission denied`);
    }
    if (e instanceof Deno.errors.IsADirectory) throw new Error(`read ${path}: is a directory`);
    throw e;
  }
}

/** What the provider is built from. */
export interface TokenProviderConfig {
  authToken: string;
  authTokenTtlSeconds: number;
  /** Resolves once this member applied `index` (simple tokens issued through another member). */
  waitApplied: (index: number) => Promise<boolean>;
  logger: Logger;
}

/**
 * Builds the provider; throws AuthOptionsError with etcd's message for a bad `--auth-token`
 * (unknown type, malformed options, unreadable or mismatched keys, unknown sign method).
 */
export async function createTokenProvider(config: TokenProviderConfig): Promise<TokenProvider> {
  try {
    return await buildTokenProvider(config);
  } catch (e) {
    if (e instanceof AuthOptionsError && e.detail !== null) logCause(config, e.detail);
    throw e;
  }
}

/** The line etcd logs about a bad `--auth-token` before it gives up. */
function logCause(config: TokenProviderConfig, detail: string): void {
  const value = config.authToken;
  let m: RegExpExecArray | null;
  if ((m = /^unknown token type: (.*)$/s.exec(detail)) !== null) {
    config.logger.warn("auth/store.go:1394", "unknown token type", {
      type: m[1],
      error: "auth: invalid auth options",
    });
  } else if ((m = /^problem loading JWT options: (.*)$/s.exec(detail)) !== null) {
    config.logger.error("auth/jwt.go:139", "problem loading JWT options", { error: m[1] });
  } else if ((m = /^invalid token specific option, duplicated parameters \((.*?)\)/.exec(detail))) {
    config.logger.warn("auth/store.go:1348", "invalid token option", {
      option: value,
      "duplicate-parameter": m[1],
    });
  } else if (detail.startsWith("invalid token specific option")) {
    config.logger.warn("auth/store.go:1339", "invalid token option", { option: value });
  }
}

async function buildTokenProvider(config: TokenProviderConfig): Promise<TokenProvider> {
  const parsed = parseAuthTokenFlag(config.authToken);
  switch (parsed.type) {
    case "simple":
      config.logger.warn(
        "auth/store.go:1380",
        "simple token is not cryptographically signed",
        {},
      );
      return new SimpleTokenProvider({
        nowMs: () => performance.now(),
        randomInt: cryptoRandomInt,
        ttlSeconds: config.authTokenTtlSeconds,
        waitApplied: config.waitApplied,
        logger: config.logger,
      });
    case "jwt": {
      const jwt = loadJwtConfig(parsed.options, readKeyFile);
      return await JwtTokenProvider.create({
        ...jwt,
        nowMs: () => Date.now(),
        logger: config.logger,
      });
    }
    case "none":
      return new NopTokenProvider();
  }
}

export { AuthOptionsError };
