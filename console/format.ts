/**
 * How the console shows keys and values: the readable form of a value's bytes, key labels, and a
 * line diff. No DOM here, so that Deno tests run it as the browser does.
 */
import { goHexInt64Zero16 } from "../core/go_hex.ts";

/** A value as the console shows it. */
export interface Shown {
  /** "json" | "yaml" | "text" | "kubernetes" | "binary" | "empty" */
  kind: string;
  /** What the value view prints. */
  text: string;
  /** A line above it (the Kubernetes object's apiVersion and kind). */
  note?: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Kubernetes' protobuf storage envelope: "k8s\0", then a runtime.Unknown message. */
const K8S_MAGIC = [0x6b, 0x38, 0x73, 0x00];

/** Hex dump: 16 bytes a line, offset, hex and the printable ASCII. */
export function hexDump(bytes: Uint8Array, max = 4096): string {
  const lines: string[] = [];
  const n = Math.min(bytes.length, max);
  for (let at = 0; at < n; at += 16) {
    const row = bytes.subarray(at, Math.min(at + 16, n));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."))
      .join("");
    lines.push(`${at.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > n) lines.push(`… ${bytes.length - n} more bytes`);
  return lines.join("\n");
}

/** Reads protobuf fields (varint and length-delimited only) of one message level. */
function protoFields(bytes: Uint8Array): Map<number, Uint8Array[]> | null {
  const fields = new Map<number, Uint8Array[]>();
  let at = 0;
  const varint = (): number | null => {
    let result = 0;
    let shift = 0;
    while (at < bytes.length && shift < 35) {
      const b = bytes[at++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
    return null;
  };
  while (at < bytes.length) {
    const tag = varint();
    if (tag === null) return null;
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) {
      if (varint() === null) return null;
    } else if (wire === 2) {
      const len = varint();
      if (len === null || at + len > bytes.length) return null;
      const list = fields.get(field) ?? [];
      list.push(bytes.subarray(at, at + len));
      fields.set(field, list);
      at += len;
    } else if (wire === 5) at += 4;
    else if (wire === 1) at += 8;
    else return null;
  }
  return fields;
}

/** What the Kubernetes protobuf envelope says of its object. */
export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  /** metadata.namespace and metadata.name, when the object carries them. */
  namespace: string;
  name: string;
}

/** apiVersion, kind, namespace and name of a Kubernetes protobuf-encoded object, or null. */
export function kubernetesType(bytes: Uint8Array): KubernetesObject | null {
  if (bytes.length < 4 || K8S_MAGIC.some((b, i) => bytes[i] !== b)) return null;
  // runtime.Unknown: 1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType.
  const unknown = protoFields(bytes.subarray(4));
  const typeMeta = unknown?.get(1)?.[0];
  if (typeMeta === undefined) return null;
  const meta = protoFields(typeMeta);
  if (meta === null) return null;
  // raw: the object itself, whose field 1 is its ObjectMeta {1 name, 3 namespace}.
  const raw = unknown?.get(2)?.[0];
  const objectMeta = raw === undefined ? undefined : protoFields(raw)?.get(1)?.[0];
  const metadata = objectMeta === undefined ? null : protoFields(objectMeta);
  try {
    const text = (fields: Map<number, Uint8Array[]> | null, n: number) =>
      utf8.decode(fields?.get(n)?.[0] ?? new Uint8Array(0));
    return {
      apiVersion: text(meta, 1),
      kind: text(meta, 2),
      name: text(metadata, 1),
      namespace: text(metadata, 3),
    };
  } catch {
    return null;
  }
}

/** Whether text reads as YAML of a mapping or a list (not merely a line of prose). */
function looksLikeYaml(text: string): boolean {
  const lines = text.split("\n").filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  if (lines.length < 2 && !text.startsWith("---")) return false;
  return lines.every((l) =>
    /^\s*-\s/.test(l) || /^\s*-$/.test(l) || /^\s*[\w.\-"'/]+\s*:(\s|$)/.test(l) ||
    /^\s+\S/.test(l) || l === "---"
  );
}

/** The readable form of a value: JSON pretty-printed, YAML, UTF-8 text, or a hex dump. */
export function showValue(bytes: Uint8Array): Shown {
  if (bytes.length === 0) return { kind: "empty", text: "" };
  const k8s = kubernetesType(bytes);
  if (k8s !== null) {
    const where = k8s.name === "" ? "" : `, ${k8s.namespace ? `${k8s.namespace}/` : ""}${k8s.name}`;
    return {
      kind: "kubernetes",
      note: `Kubernetes object: apiVersion ${k8s.apiVersion || "?"}, kind ${
        k8s.kind || "?"
      }${where}`,
      text: hexDump(bytes),
    };
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { kind: "binary", text: hexDump(bytes) };
  }
  // Control characters other than tab, newline and carriage return: binary that happens to be
  // valid UTF-8.
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) {
    return { kind: "binary", text: hexDump(bytes) };
  }
  const trimmed = text.trim();
  if (/^[[{]/.test(trimmed)) {
    try {
      const parsed = JSON.parse(trimmed);
      // Kubernetes' JSON encoding: apiVersion and kind at the top.
      const note = parsed && typeof parsed === "object" && typeof parsed.kind === "string" &&
          typeof parsed.apiVersion === "string"
        ? `Kubernetes object: apiVersion ${parsed.apiVersion}, kind ${parsed.kind}`
        : undefined;
      return { kind: "json", text: JSON.stringify(parsed, null, 2), note };
    } catch {
      // not JSON after all
    }
  }
  if (looksLikeYaml(text)) return { kind: "yaml", text };
  return { kind: "text", text };
}

/** A key's bytes as a label: UTF-8 when it is, else escaped hex. */
/** A lease ID as etcdctl prints it (`%016x`: "lease 0f54a248c6d78003 granted"). */
export const leaseHex = goHexInt64Zero16;

export function keyLabel(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return Array.from(
      bytes,
      (b) =>
        b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`,
    )
      .join("");
  }
}

/** A line diff (longest common subsequence): lines prefixed "  ", "- " or "+ ". */
export function lineDiff(a: string, b: string): string[] {
  const x = a.split("\n");
  const y = b.split("\n");
  if (x.length * y.length > 4_000_000) return ["(too large to compare line by line)"];
  const lcs: number[][] = Array.from(
    { length: x.length + 1 },
    () => new Array(y.length + 1).fill(0),
  );
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      out.push(`  ${x[i]}`);
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(`- ${x[i++]}`);
    else out.push(`+ ${y[j++]}`);
  }
  while (i < x.length) out.push(`- ${x[i++]}`);
  while (j < y.length) out.push(`+ ${y[j++]}`);
  return out;
}
