/**
 * How the user, role and auth results of etcdctl's printers look in every `--write-out` format
 * (ctlv3/command/printer*.go): simple writes etcdctl's sentences and permission listings, json
 * and protobuf write the response message, fields writes the header (and a role's permissions or
 * the role list), table supports none of them. Kept apart from the Printer classes because these
 * results belong to the user and role commands alone.
 */

import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Permission, Permission_Type } from "../../gen/authpb/auth_pb.ts";
import {
  type AuthRoleAddResponse,
  AuthRoleAddResponseSchema,
  type AuthRoleDeleteResponse,
  AuthRoleDeleteResponseSchema,
  type AuthRoleGetResponse,
  AuthRoleGetResponseSchema,
  type AuthRoleGrantPermissionResponse,
  AuthRoleGrantPermissionResponseSchema,
  type AuthRoleListResponse,
  AuthRoleListResponseSchema,
  type AuthRoleRevokePermissionResponse,
  AuthRoleRevokePermissionResponseSchema,
  type AuthUserAddResponse,
  AuthUserAddResponseSchema,
  type AuthUserChangePasswordResponse,
  AuthUserChangePasswordResponseSchema,
  type AuthUserDeleteResponse,
  AuthUserDeleteResponseSchema,
  type AuthUserGetResponse,
  AuthUserGetResponseSchema,
  type AuthUserGrantRoleResponse,
  AuthUserGrantRoleResponseSchema,
  type AuthUserListResponse,
  AuthUserListResponseSchema,
  type AuthUserRevokeRoleResponse,
  AuthUserRevokeRoleResponseSchema,
  type ResponseHeader,
  ResponseHeaderSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { goQuote } from "../go_format.ts";
import { ExitCode } from "../io.ts";
import { goJsonMessage } from "./go_json.ts";
import type { PrinterOutput } from "./printer.ts";

/** The user and role methods of etcdctl's printer interface. */
export interface AuthPrinter {
  roleAdd(role: string, r: AuthRoleAddResponse): void;
  roleGet(role: string, r: AuthRoleGetResponse): void;
  roleDelete(role: string, r: AuthRoleDeleteResponse): void;
  roleList(r: AuthRoleListResponse): void;
  roleGrantPermission(role: string, r: AuthRoleGrantPermissionResponse): void;
  /** `key` as the user typed it, `end` the range end that was sent. */
  roleRevokePermission(
    role: string,
    key: Uint8Array,
    end: Uint8Array,
    r: AuthRoleRevokePermissionResponse,
  ): void;
  userAdd(user: string, r: AuthUserAddResponse): void;
  userGet(user: string, r: AuthUserGetResponse): void;
  userList(r: AuthUserListResponse): void;
  userChangePassword(r: AuthUserChangePasswordResponse): void;
  userGrantRole(user: string, role: string, r: AuthUserGrantRoleResponse): void;
  userRevokeRole(user: string, role: string, r: AuthUserRevokeRoleResponse): void;
  userDelete(user: string, r: AuthUserDeleteResponse): void;
}

const encoder = new TextEncoder();

/** Joins text and raw bytes (keys are printed as the bytes they are, like Go's string(key)). */
function bytesOf(...parts: (string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** clientv3.GetPrefixRangeEnd (core/bytes.ts). */
import { prefixRangeEnd } from "../../core/bytes.ts";
export { prefixRangeEnd };

const openEnded = new Uint8Array([0]);

/** The simple printer's `role get` listing of a role's read and write permissions. */
export function roleGetText(role: string, perms: readonly Permission[]): Uint8Array {
  const parts: (string | Uint8Array)[] = [`Role ${role}\n`];
  const listing = (perm: Permission) => {
    if (perm.rangeEnd.length === 0) {
      parts.push("\t", perm.key, "\n");
      return;
    }
    if (!sameBytes(perm.rangeEnd, openEnded)) parts.push("\t[", perm.key, ", ", perm.rangeEnd, ")");
    else parts.push("\t[", perm.key, ", <open ended>");
    if (sameBytes(prefixRangeEnd(perm.key), perm.rangeEnd)) parts.push(" (prefix ", perm.key, ")");
    parts.push("\n");
  };
  parts.push("KV Read:\n");
  for (const perm of perms) {
    if (perm.permType === Permission_Type.READ || perm.permType === Permission_Type.READWRITE) {
      listing(perm);
    }
  }
  parts.push("KV Write:\n");
  for (const perm of perms) {
    if (perm.permType === Permission_Type.WRITE || perm.permType === Permission_Type.READWRITE) {
      listing(perm);
    }
  }
  return bytesOf(...parts);
}

/** The simple format: etcdctl's sentences. */
class SimpleAuthPrinter implements AuthPrinter {
  readonly #out: PrinterOutput;

  constructor(out: PrinterOutput) {
    this.#out = out;
  }
  #line(...parts: (string | Uint8Array)[]): void {
    this.#out.stdout(bytesOf(...parts, "\n"));
  }
  roleAdd(role: string): void {
    this.#line(`Role ${role} created`);
  }
  roleGet(role: string, r: AuthRoleGetResponse): void {
    this.#out.stdout(roleGetText(role, r.perm));
  }
  roleDelete(role: string): void {
    this.#line(`Role ${role} deleted`);
  }
  roleList(r: AuthRoleListResponse): void {
    for (const role of r.roles) this.#line(role);
  }
  roleGrantPermission(role: string): void {
    this.#line(`Role ${role} updated`);
  }
  roleRevokePermission(role: string, key: Uint8Array, end: Uint8Array): void {
    if (end.length === 0) {
      this.#line("Permission of key ", key, ` is revoked from role ${role}`);
    } else if (!sameBytes(end, openEnded)) {
      this.#line("Permission of range [", key, ", ", end, `) is revoked from role ${role}`);
    } else {
      this.#line("Permission of range [", key, `, <open ended> is revoked from role ${role}`);
    }
  }
  userAdd(user: string): void {
    this.#line(`User ${user} created`);
  }
  userGet(user: string, r: AuthUserGetResponse): void {
    this.#line(`User: ${user}\nRoles:${r.roles.map((role) => ` ${role}`).join("")}`);
  }
  userList(r: AuthUserListResponse): void {
    for (const user of r.users) this.#line(user);
  }
  userChangePassword(): void {
    this.#line("Password updated");
  }
  userGrantRole(user: string, role: string): void {
    this.#line(`Role ${role} is granted to user ${user}`);
  }
  userRevokeRole(user: string, role: string): void {
    this.#line(`Role ${role} is revoked from user ${user}`);
  }
  userDelete(user: string): void {
    this.#line(`User ${user} deleted`);
  }
}

/** The json and protobuf formats (etcdctl's printerRPC): the response message, encoded. */
class MessageAuthPrinter implements AuthPrinter {
  readonly #write: <D extends DescMessage>(schema: D, msg: MessageShape<D>) => void;

  constructor(write: <D extends DescMessage>(schema: D, msg: MessageShape<D>) => void) {
    this.#write = write;
  }
  roleAdd(_role: string, r: AuthRoleAddResponse): void {
    this.#write(AuthRoleAddResponseSchema, r);
  }
  roleGet(_role: string, r: AuthRoleGetResponse): void {
    this.#write(AuthRoleGetResponseSchema, r);
  }
  roleDelete(_role: string, r: AuthRoleDeleteResponse): void {
    this.#write(AuthRoleDeleteResponseSchema, r);
  }
  roleList(r: AuthRoleListResponse): void {
    this.#write(AuthRoleListResponseSchema, r);
  }
  roleGrantPermission(_role: string, r: AuthRoleGrantPermissionResponse): void {
    this.#write(AuthRoleGrantPermissionResponseSchema, r);
  }
  roleRevokePermission(
    _role: string,
    _key: Uint8Array,
    _end: Uint8Array,
    r: AuthRoleRevokePermissionResponse,
  ): void {
    this.#write(AuthRoleRevokePermissionResponseSchema, r);
  }
  userAdd(_user: string, r: AuthUserAddResponse): void {
    this.#write(AuthUserAddResponseSchema, r);
  }
  userGet(_user: string, r: AuthUserGetResponse): void {
    this.#write(AuthUserGetResponseSchema, r);
  }
  userList(r: AuthUserListResponse): void {
    this.#write(AuthUserListResponseSchema, r);
  }
  userChangePassword(r: AuthUserChangePasswordResponse): void {
    this.#write(AuthUserChangePasswordResponseSchema, r);
  }
  userGrantRole(_user: string, _role: string, r: AuthUserGrantRoleResponse): void {
    this.#write(AuthUserGrantRoleResponseSchema, r);
  }
  userRevokeRole(_user: string, _role: string, r: AuthUserRevokeRoleResponse): void {
    this.#write(AuthUserRevokeRoleResponseSchema, r);
  }
  userDelete(_user: string, r: AuthUserDeleteResponse): void {
    this.#write(AuthUserDeleteResponseSchema, r);
  }
}

/** A format that prints none of these results (etcdctl's printerUnsupported). */
class UnsupportedAuthPrinter implements AuthPrinter {
  readonly #format: string;

  constructor(protected readonly out: PrinterOutput, format: string) {
    this.#format = format;
  }
  protected unsupported(): never {
    this.out.fail(ExitCode.BadFeature, `${this.#format} not supported as output format`);
  }
  roleAdd(_role: string, _r: AuthRoleAddResponse): void {
    this.unsupported();
  }
  roleGet(_role: string, _r: AuthRoleGetResponse): void {
    this.unsupported();
  }
  roleDelete(_role: string, _r: AuthRoleDeleteResponse): void {
    this.unsupported();
  }
  roleList(_r: AuthRoleListResponse): void {
    this.unsupported();
  }
  roleGrantPermission(_role: string, _r: AuthRoleGrantPermissionResponse): void {
    this.unsupported();
  }
  roleRevokePermission(
    _role: string,
    _key: Uint8Array,
    _end: Uint8Array,
    _r: AuthRoleRevokePermissionResponse,
  ): void {
    this.unsupported();
  }
  userAdd(_user: string, _r: AuthUserAddResponse): void {
    this.unsupported();
  }
  userGet(_user: string, _r: AuthUserGetResponse): void {
    this.unsupported();
  }
  userList(_r: AuthUserListResponse): void {
    this.unsupported();
  }
  userChangePassword(_r: AuthUserChangePasswordResponse): void {
    this.unsupported();
  }
  userGrantRole(_user: string, _role: string, _r: AuthUserGrantRoleResponse): void {
    this.unsupported();
  }
  userRevokeRole(_user: string, _role: string, _r: AuthUserRevokeRoleResponse): void {
    this.unsupported();
  }
  userDelete(_user: string, _r: AuthUserDeleteResponse): void {
    this.unsupported();
  }
}

/** Go's Permission_Type.String(): the enum name, or the number for an unknown value. */
function permTypeName(t: Permission_Type): string {
  return Permission_Type[t] ?? String(t);
}

/**
 * The fields format: the header of every result, a role's permissions, the role list; user get
 * and user list are not among its results (etcdctl fails them as unsupported).
 */
class FieldsAuthPrinter extends UnsupportedAuthPrinter {
  constructor(out: PrinterOutput) {
    super(out, "fields");
  }
  #w(s: string): void {
    this.out.stdout(s + "\n");
  }
  #hdr(h: ResponseHeader | undefined): void {
    const header = h ?? create(ResponseHeaderSchema);
    this.#w(`"ClusterID" : ${header.clusterId}`);
    this.#w(`"MemberID" : ${header.memberId}`);
    this.#w(`"Revision" : ${header.revision}`);
    this.#w(`"RaftTerm" : ${header.raftTerm}`);
  }
  override roleAdd(_role: string, r: AuthRoleAddResponse): void {
    this.#hdr(r.header);
  }
  override roleGet(_role: string, r: AuthRoleGetResponse): void {
    this.#hdr(r.header);
    for (const p of r.perm) {
      // fmt.Println puts a space between its operands, after the one that already ends in one.
      this.#w(`"PermType" :  ${permTypeName(p.permType)}`);
      this.#w(`"Key" : ${goQuote(p.key)}`);
      this.#w(`"RangeEnd" : ${goQuote(p.rangeEnd)}`);
    }
  }
  override roleDelete(_role: string, r: AuthRoleDeleteResponse): void {
    this.#hdr(r.header);
  }
  override roleList(r: AuthRoleListResponse): void {
    this.#hdr(r.header);
    this.#w(`"Roles" :${r.roles.map((role) => ` ${goQuote(role)}`).join("")}`);
  }
  override roleGrantPermission(_role: string, r: AuthRoleGrantPermissionResponse): void {
    this.#hdr(r.header);
  }
  override roleRevokePermission(
    _role: string,
    _key: Uint8Array,
    _end: Uint8Array,
    r: AuthRoleRevokePermissionResponse,
  ): void {
    this.#hdr(r.header);
  }
  override userAdd(_user: string, r: AuthUserAddResponse): void {
    this.#hdr(r.header);
  }
  override userChangePassword(r: AuthUserChangePasswordResponse): void {
    this.#hdr(r.header);
  }
  override userGrantRole(_user: string, _role: string, r: AuthUserGrantRoleResponse): void {
    this.#hdr(r.header);
  }
  override userRevokeRole(_user: string, _role: string, r: AuthUserRevokeRoleResponse): void {
    this.#hdr(r.header);
  }
  override userDelete(_user: string, r: AuthUserDeleteResponse): void {
    this.#hdr(r.header);
  }
}

/**
 * The printer of user and role results for a `--write-out` format already accepted by
 * newPrinter (an unknown format never gets this far).
 */
export function newAuthPrinter(format: string, out: PrinterOutput): AuthPrinter {
  switch (format) {
    case "simple":
      return new SimpleAuthPrinter(out);
    case "json":
      return new MessageAuthPrinter((schema, msg) => out.stdout(goJsonMessage(schema, msg) + "\n"));
    case "protobuf":
      return new MessageAuthPrinter((schema, msg) =>
        out.stdout(toBinary(schema, msg, { writeUnknownFields: false }))
      );
    case "fields":
      return new FieldsAuthPrinter(out);
    default:
      return new UnsupportedAuthPrinter(out, format);
  }
}
