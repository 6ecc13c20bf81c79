/**
 * Invariant checks for production code: a broken invariant stops the process loudly rather than
 * letting detcd serve or persist wrong data.
 */

/** Raised when an internal invariant does not hold; never caught to continue serving. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = "InvariantError";
  }
}

/** Throws InvariantError unless `condition` holds. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
