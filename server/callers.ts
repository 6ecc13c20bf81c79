/**
 * Who a client call comes from: the user its token stands for, resolved on every call and
 * stream, for gRPC, Connect and gRPC-Web callers alike.
 */
import type { AuthInfo } from "../core/auth/mod.ts";
import { asMaintenanceAuthError } from "../core/errors.ts";
import type { EtcdNode } from "../core/node/mod.ts";
import { type CallContext, tokenOf } from "./grpc.ts";

/**
 * Who a call comes from (etcd's EtcdServer.AuthInfoFromCtx): the user of its token; etcd's
 * `invalid auth token` for a token no member issued, or that expired, or whose user is gone.
 * Without a token, on a TLS connection whose client certificate was verified (--client-cert-auth),
 * the certificate's common name (AuthInfoFromTLS), except for requests relayed by a gRPC gateway
 * (`grpcgateway-accept`), whose certificate is the gateway's; else null.
 */
export function callerOf(
  node: EtcdNode,
  ctx: CallContext,
): AuthInfo | null | Promise<AuthInfo | null> {
  const token = tokenOf(ctx);
  if (token !== undefined) return node.auth.callerOf(token);
  if (ctx.tlsCommonName !== undefined && ctx.headers["grpcgateway-accept"] === undefined) {
    return node.auth.callerOfCommonName(ctx.tlsCommonName);
  }
  return null;
}

/**
 * The caller of a Maintenance call, checked: a root user for `admin`, any user for `user`.
 * Refusals are in the auth package's words with code Unknown, as etcd's Maintenance service
 * answers them (`auth: user name is empty`).
 */
export async function maintenanceCaller(
  node: EtcdNode,
  ctx: CallContext,
  level: "admin" | "user",
): Promise<AuthInfo | null> {
  try {
    const caller = await callerOf(node, ctx);
    if (level === "admin") node.auth.requireAdmin(caller);
    else node.auth.requireUser(caller);
    return caller;
  } catch (e) {
    throw asMaintenanceAuthError(e);
  }
}
