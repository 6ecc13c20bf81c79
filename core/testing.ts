/**
 * The few assertions detcd's tests use, on top of node:assert/strict (JSR's @std/assert is not
 * reachable from these machines). It lives in core, as an import-free leaf for tests only, so
 * that core's unit tests never import tests/ (the conformance tree of real processes), while the
 * server's tests and tests/ use the same assertions.
 *
 * @example
 * ```ts
 * import { assertEquals, assertThrows } from "./testing.ts";
 *
 * assertEquals({ revision: 2n }, { revision: 2n });
 * assertThrows(() => JSON.parse("{"), SyntaxError);
 * ```
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

/** Deep, strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Strict inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message);
}

/** Truthiness. */
export function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message);
}

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

/** `fn` throws an instance of `cls` whose message includes `includes`. */
export function assertThrows(fn: () => unknown, cls: ErrorClass = Error, includes?: string): Error {
  try {
    fn();
  } catch (e) {
    nodeAssert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes !== undefined) {
      nodeAssert.ok((e as Error).message.includes(includes), (e as Error).message);
    }
    return e as Error;
  }
  throw new nodeAssert.AssertionError({ message: `expected ${cls.name} to be thrown` });
}

/** The promise from `fn` rejects with an instance of `cls` whose message includes `includes`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  cls: ErrorClass = Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    nodeAssert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes !== undefined) {
      nodeAssert.ok((e as Error).message.includes(includes), (e as Error).message);
    }
    return e as Error;
  }
  throw new nodeAssert.AssertionError({ message: `expected ${cls.name} to be rejected` });
}
