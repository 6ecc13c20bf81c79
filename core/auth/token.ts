/**
 * What the auth store needs from a token provider (etcd's auth.TokenProvider): tokens are issued
 * when an Authenticate entry is applied and resolved to a user on every later request. Providers
 * keep member-local state only (simple tokens: which token belongs to whom), derived from applied
 * entries, so every member that applied the same log resolves the same tokens.
 */

import { Errors } from "../errors.ts";

/** Who a request acts as: the user and the auth revision its token carries. */
export interface AuthInfo {
  username: string;
  /** Auth revision the token was issued at (JWT), or the store's current one (simple tokens). */
  revision: number;
}

/** Where an Authenticate entry was applied: what a simple token is built from. */
export interface TokenAssignment {
  /** Raft index of the Authenticate entry (the simple token's suffix). */
  index: number;
  /** 16 random letters the proposer drew (empty for JWT). */
  simpleTokenPrefix: string;
}

/** A token scheme: `simple`, `jwt`, or none. */
export interface TokenProvider {
  /** Called when auth is enabled (and on recovery of an enabled store). */
  enable(): void;
  /** Called when auth is disabled: forgets every token it can. */
  disable(): void;
  /** A user was deleted or changed password: forget its tokens where the scheme can. */
  invalidateUser(username: string): void;
  /** The random part of a simple token, drawn by the proposer before Raft ("" for JWT). */
  genTokenPrefix(): string;
  /**
   * Issues a token for `username` at auth `revision`. Any state change (a simple token's
   * registration) happens synchronously, during the call, so applying stays deterministic; the
   * promise only waits for work that changes nothing (a JWT signature).
   */
  assign(username: string, revision: number, at: TokenAssignment): Promise<string>;
  /**
   * The user a token stands for, or null when it is unknown, expired or badly signed.
   * `currentRevision` is the store's revision (simple tokens report it as theirs).
   */
  info(token: string, currentRevision: number): Promise<AuthInfo | null>;
}

/** No token scheme (`--auth-token ""`): nothing resolves, Authenticate fails (etcd's tokenNop). */
export class NopTokenProvider implements TokenProvider {
  /** Nothing to start. */
  enable(): void {}
  /** Nothing to forget. */
  disable(): void {}
  /** Nothing to forget. */
  invalidateUser(_username: string): void {}
  /** No prefix: nothing is issued. */
  genTokenPrefix(): string {
    return "";
  }
  /** Always fails, with etcd's authentication-failed error. */
  assign(_username: string, _revision: number, _at: TokenAssignment): Promise<string> {
    return Promise.reject(Errors.authFailed());
  }
  /** Never resolves a token. */
  info(_token: string, _currentRevision: number): Promise<AuthInfo | null> {
    return Promise.resolve(null);
  }
}
