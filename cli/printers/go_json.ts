/**
 * Go's encoding/json applied to the gogo-protobuf structs etcdctl prints with `-w json`:
 * keys are the proto field names (the structs' json tags), zero values are omitted
 * (omitempty), 64-bit integers are bare numbers, bytes are base64, enums are numbers, and a
 * oneof appears as {"<OneofName>":{"<FieldName>":...}} with Go's CamelCase names.
 */

import type { DescField, DescMessage, DescOneof, Message } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { base64Std, goJsonString } from "../go_format.ts";

/** protoc-gen-go's CamelCase: "response_range" becomes "ResponseRange". */
export function goCamelCase(s: string): string {
  if (s === "") return "";
  let out = "";
  let i = 0;
  const isLower = (c: string) => c >= "a" && c <= "z";
  const isDigit = (c: string) => c >= "0" && c <= "9";
  if (s[0] === "_") {
    out += "X";
    i++;
  }
  for (; i < s.length; i++) {
    let c = s[i];
    if (c === "_" && i + 1 < s.length && isLower(s[i + 1])) continue;
    if (isDigit(c)) {
      out += c;
      continue;
    }
    if (isLower(c)) c = c.toUpperCase();
    out += c;
    while (i + 1 < s.length && isLower(s[i + 1])) {
      i++;
      out += s[i];
    }
  }
  return out;
}

type Scalar = string | number | bigint | boolean | Uint8Array;

function isZeroScalar(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (typeof v === "number") return v === 0;
  if (typeof v === "bigint") return v === 0n;
  if (typeof v === "boolean") return !v;
  if (typeof v === "string") return v === "";
  if (v instanceof Uint8Array) return v.length === 0;
  return false;
}

function scalarJson(type: ScalarType, v: Scalar): string {
  switch (type) {
    case ScalarType.BYTES:
      return '"' + base64Std(v as Uint8Array) + '"';
    case ScalarType.STRING:
      return goJsonString(v as string);
    case ScalarType.BOOL:
      return v ? "true" : "false";
    default:
      return String(v);
  }
}

function fieldValueJson(field: DescField, v: unknown): string {
  switch (field.fieldKind) {
    case "scalar":
      return scalarJson(field.scalar, v as Scalar);
    case "enum":
      return String(v);
    case "message":
      return v === undefined ? "null" : goJsonMessage(field.message, v as Message);
    case "list": {
      const items = v as unknown[];
      const parts = items.map((item) => {
        if (field.listKind === "message") return goJsonMessage(field.message, item as Message);
        if (field.listKind === "enum") return String(item);
        return scalarJson(field.scalar, item as Scalar);
      });
      return "[" + parts.join(",") + "]";
    }
    case "map":
      throw new Error("map fields are not used by etcd's API");
  }
}

function isOmitted(field: DescField, v: unknown): boolean {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
      return isZeroScalar(v);
    case "message":
      return v === undefined;
    case "list":
      return (v as unknown[]).length === 0;
    case "map":
      return true;
  }
}

/** How to write one member of a message: computed once per message type. */
type MemberWriter = (rec: Record<string, unknown>, parts: string[]) => void;

const plans = new WeakMap<DescMessage, MemberWriter[]>();

function plan(desc: DescMessage): MemberWriter[] {
  let p = plans.get(desc);
  if (p) return p;
  p = desc.members.map((member): MemberWriter => {
    if (member.kind === "oneof") {
      const oneof = member as DescOneof;
      const key = goJsonString(goCamelCase(oneof.name)) + ":";
      const inner = new Map(
        oneof.fields.map((
          f,
        ) => [f.localName, { field: f, key: "{" + goJsonString(goCamelCase(f.name)) + ":" }]),
      );
      return (rec, parts) => {
        const sel = rec[oneof.localName] as { case?: string; value?: unknown };
        if (sel.case === undefined) {
          parts.push(key + "null");
          return;
        }
        const f = inner.get(sel.case)!;
        parts.push(key + f.key + fieldValueJson(f.field, sel.value) + "}");
      };
    }
    const field = member as DescField;
    const key = goJsonString(field.name) + ":";
    const name = field.localName;
    return (rec, parts) => {
      const v = rec[name];
      if (!isOmitted(field, v)) parts.push(key + fieldValueJson(field, v));
    };
  });
  plans.set(desc, p);
  return p;
}

/** Encodes `msg` as Go's json.Marshal would encode the corresponding gogo struct. */
export function goJsonMessage(desc: DescMessage, msg: Message): string {
  const rec = msg as unknown as Record<string, unknown>;
  const parts: string[] = [];
  for (const write of plan(desc)) write(rec, parts);
  return "{" + parts.join(",") + "}";
}
