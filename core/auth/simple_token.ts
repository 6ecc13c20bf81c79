/**
 * etcd's `--auth-token simple` (auth/simple_token.go): a token is 16 random letters, a dot and the
 * Raft index of the Authenticate entry that issued it (`xWcRcUdIqhOQeADz.21`). The proposer draws
 * the letters; every member registers the token when it applies the entry, so the token is valid
 * on every member. A token lives `--auth-token-ttl` seconds (300 by default) after its last use,
 * and dies with its user's deletion or password change and when auth is disabled. Not signed:
 * whoever holds a token is that user until it expires.
 *
 * Time and randomness are injected (core reads no clock and draws no randomness of its own); the
 * server must inject a cryptographically strong `randomInt`, since the letters are the secret.
 */

import { assert } from "../assert.ts";
import { type Logger, silentLogger } from "../log.ts";
import type { AuthInfo, TokenAssignment, TokenProvider } from "./token.ts";

/** etcd's default `--auth-token-ttl` (seconds). */
export const DEFAULT_SIMPLE_TOKEN_TTL_SECONDS = 300;
/** How often expired tokens are swept (etcd's ticker: 1 s). */
const SWEEP_INTERVAL_MS = 1000;
const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const TOKEN_LENGTH = 16;

/** What a simple token provider is built from. */
export interface SimpleTokenOptions {
  /** Monotonic milliseconds (the server's clock; a fake one in tests). */
  nowMs: () => number;
  /** A uniform integer in [0, n): crypto-strong in production, seeded in tests. */
  randomInt: (n: number) => number;
  /** `--auth-token-ttl` in seconds; 0 or less means etcd's default (300). */
  ttlSeconds?: number;
  /**
   * Resolves true once this member applied `index` (etcd's indexWaiter), false when the caller
   * gave up: a token issued by an entry not yet applied here is not known yet. Default: at once.
   */
  waitApplied?: (index: number) => Promise<boolean>;
  logger?: Logger;
}

interface Entry {
  username: string;
  expiresMs: number;
}

/** etcd's simple token provider with its TTL keeper. */
export class SimpleTokenProvider implements TokenProvider {
  #nowMs: () => number;
  #randomInt: (n: number) => number;
  #ttlMs: number;
  #waitApplied: (index: number) => Promise<boolean>;
  #logger: Logger;
  /** token → user and expiry; null while auth is disabled (no keeper). */
  #tokens: Map<string, Entry> | null = null;
  #nextSweepMs = 0;

  constructor(options: SimpleTokenOptions) {
    this.#nowMs = options.nowMs;
    this.#randomInt = options.randomInt;
    const ttl = options.ttlSeconds ?? DEFAULT_SIMPLE_TOKEN_TTL_SECONDS;
    this.#ttlMs = (ttl > 0 ? ttl : DEFAULT_SIMPLE_TOKEN_TTL_SECONDS) * 1000;
    this.#waitApplied = options.waitApplied ?? (() => Promise.resolve(true));
    this.#logger = options.logger ?? silentLogger;
  }

  /** Live tokens (for tests and metrics). */
  get size(): number {
    return this.#tokens?.size ?? 0;
  }

  /** Starts keeping tokens (auth enabled). */
  enable(): void {
    if (this.#tokens === null) this.#tokens = new Map();
  }

  /** Forgets every token and stops keeping them (auth disabled). */
  disable(): void {
    this.#tokens = null;
  }

  /** Forgets the user's tokens (user deleted or password changed). */
  invalidateUser(username: string): void {
    if (this.#tokens === null) return;
    for (const [token, entry] of this.#tokens) {
      if (entry.username === username) this.#tokens.delete(token);
    }
  }

  /** 16 LETTERS drawn from the injected randomness. */
  genTokenPrefix(): string {
    let out = "";
    for (let i = 0; i < TOKEN_LENGTH; i++) out += LETTERS[this.#randomInt(LETTERS.length)];
    return out;
  }

  /** Registers `<prefix>.<index>` for the user (synchronously) and returns it. */
  assign(username: string, _revision: number, at: TokenAssignment): Promise<string> {
    const token = `${at.simpleTokenPrefix}.${at.index}`;
    if (this.#tokens !== null) {
      this.#sweep();
      // etcd panics here: the same prefix and index twice means a replayed or forged entry.
      assert(!this.#tokens.has(token), "simple token assigned twice");
      this.#tokens.set(token, { username, expiresMs: this.#nowMs() + this.#ttlMs });
    }
    return Promise.resolve(token);
  }

  /**
   * The token's user with the store's current revision, refreshing its TTL; null for a malformed,
   * unknown or expired token. Waits until this member applied the issuing entry.
   */
  async info(token: string, currentRevision: number): Promise<AuthInfo | null> {
    const index = tokenIndex(token);
    if (index === null) return null;
    if (!await this.#waitApplied(index)) return null;
    if (this.#tokens === null) return null;
    this.#sweep();
    const entry = this.#tokens.get(token);
    if (entry === undefined) return null;
    const now = this.#nowMs();
    if (now > entry.expiresMs) {
      this.#expire(token, entry);
      return null;
    }
    entry.expiresMs = now + this.#ttlMs;
    return { username: entry.username, revision: currentRevision };
  }

  /** Drops expired tokens at most once a second, as etcd's keeper does. */
  #sweep(): void {
    const now = this.#nowMs();
    if (now < this.#nextSweepMs || this.#tokens === null) return;
    this.#nextSweepMs = now + SWEEP_INTERVAL_MS;
    for (const [token, entry] of this.#tokens) {
      if (now > entry.expiresMs) this.#expire(token, entry);
    }
  }

  #expire(token: string, entry: Entry): void {
    this.#tokens?.delete(token);
    // etcd logs the token too; detcd never logs a secret.
    this.#logger.info("auth/simple_token.go:174", "deleted a simple token", {
      "user-name": entry.username,
    });
  }
}

/**
 * The index part of a simple token, or null when the token is not `<prefix>.<index>` with an
 * index Go's strconv.Atoi accepts (optional sign, decimal digits) that is not negative.
 */
function tokenIndex(token: string): number | null {
  const parts = token.split(".");
  if (parts.length !== 2) return null;
  if (!/^[+-]?[0-9]+$/.test(parts[1])) return null;
  const index = Number(parts[1]);
  // A negative index becomes a huge uint64 in etcd, which no member ever reaches.
  if (!Number.isSafeInteger(index) || index < 0) return null;
  return index;
}
