/**
 * Apply as a chain of small layers, as etcd wraps its applier (corruption guard → capped
 * (NOSPACE) → auth → quota → backend). Every operation passes every layer in order; a layer may
 * refuse it (throw the EtcdError the client gets) or pass it on. Adding a check (auth, quotas) is
 * adding a layer: no case of the backend changes.
 */
import type { ApplyMeta, Operation, Response } from "./operation.ts";

/** Applies one operation and returns its response, or throws the client's EtcdError. */
export type Apply = (operation: Operation, meta: ApplyMeta) => Response;

/** One layer of the chain: looks at the operation and calls `next` to pass it on. */
export interface ApplyLayer {
  /** For logs and the ADR's picture of the chain. */
  readonly name: string;
  apply(operation: Operation, meta: ApplyMeta, next: Apply): Response;
}

/** The applier that runs `layers` in order (the first sees an operation first), then `backend`. */
export function chain(layers: readonly ApplyLayer[], backend: Apply): Apply {
  let apply = backend;
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i];
    const next = apply;
    apply = (operation, meta) => layer.apply(operation, meta, next);
  }
  return apply;
}
