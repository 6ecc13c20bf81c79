/**
 * The JSON side of the gRPC gateway, as etcd 3.4's grpc-gateway (jsonpb, `OrigName: true`) reads
 * and writes it: requests decoded one JSON value at a time from the body (what follows the first
 * value is left for a stream's next message, or ignored), field names as in the .proto or in
 * lowerCamelCase, 64-bit integers as JSON numbers or quoted strings, bytes as standard base64,
 * enums by name or number, unknown fields ignored; responses with the .proto's field names,
 * 64-bit integers quoted, defaults left out. Errors carry Go's words (encoding/json, jsonpb,
 * encoding/base64), because the gateway returns them to the client.
 */

import {
  create,
  type DescEnum,
  type DescField,
  type DescMessage,
  type Message,
  ScalarType,
  toJson,
} from "@bufbuild/protobuf";

/** A request body that is not what the message needs; the text is Go's. */
export class GatewayJsonError extends Error {}

/** A parsed JSON value; numbers keep their text (64-bit integers must not lose precision). */
export type JsonNode =
  | { kind: "object"; entries: Map<string, JsonNode> }
  | { kind: "array"; items: JsonNode[] }
  | { kind: "string"; value: string }
  | { kind: "number"; text: string }
  | { kind: "bool"; value: boolean }
  | { kind: "null" };

/** The result of reading one value: the value, or the body held none (EOF). */
export type NextValue = { node: JsonNode; end: number } | null;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** How Go's scanner names a character in its errors (`quoteChar`). */
function quoteChar(code: number): string {
  if (code === 0x27) return `'\\''`;
  if (code === 0x22) return `'"'`;
  const s = JSON.stringify(String.fromCharCode(code));
  // strconv.Quote's escapes for the control characters JSON.stringify writes as \u00XX.
  const inner = s.slice(1, -1).replace(/\\u00([0-9a-f]{2})/g, "\\x$1");
  return `'${code === 0x7f ? "\\x7f" : inner}'`;
}

class Scanner {
  #pos: number;
  constructor(readonly text: string, start: number) {
    this.#pos = start;
  }

  get pos(): number {
    return this.#pos;
  }

  #eof(): never {
    throw new GatewayJsonError("unexpected EOF");
  }

  #invalid(context: string): never {
    throw new GatewayJsonError(
      `invalid character ${quoteChar(this.text.charCodeAt(this.#pos))} ${context}`,
    );
  }

  skipSpace(): void {
    while (this.#pos < this.text.length && WHITESPACE.has(this.text.charCodeAt(this.#pos))) {
      this.#pos++;
    }
  }

  atEnd(): boolean {
    return this.#pos >= this.text.length;
  }

  value(): JsonNode {
    this.skipSpace();
    if (this.atEnd()) this.#eof();
    const c = this.text[this.#pos];
    switch (c) {
      case "{":
        return this.#object();
      case "[":
        return this.#array();
      case '"':
        return { kind: "string", value: this.#string() };
      case "t":
        this.#literal("true");
        return { kind: "bool", value: true };
      case "f":
        this.#literal("false");
        return { kind: "bool", value: false };
      case "n":
        this.#literal("null");
        return { kind: "null" };
      default:
        if (c === "-" || (c >= "0" && c <= "9")) return { kind: "number", text: this.#number() };
        this.#invalid("looking for beginning of value");
    }
  }

  #literal(word: string): void {
    for (let i = 0; i < word.length; i++) {
      if (this.atEnd()) this.#eof();
      if (this.text[this.#pos] !== word[i]) {
        this.#invalid(`in literal ${word} (expecting '${word[i]}')`);
      }
      this.#pos++;
    }
  }

  #object(): JsonNode {
    const entries = new Map<string, JsonNode>();
    if (this.#opens("}")) return { kind: "object", entries };
    do {
      this.skipSpace();
      if (this.atEnd()) this.#eof();
      if (this.text[this.#pos] !== '"') this.#invalid("looking for beginning of object key string");
      const key = this.#string();
      this.skipSpace();
      if (this.atEnd()) this.#eof();
      if (this.text[this.#pos] !== ":") this.#invalid("after object key");
      this.#pos++;
      entries.set(key, this.value());
    } while (!this.#closes("}", "after object key:value pair"));
    return { kind: "object", entries };
  }

  #array(): JsonNode {
    const items: JsonNode[] = [];
    if (this.#opens("]")) return { kind: "array", items };
    do items.push(this.value()); while (!this.#closes("]", "after array element"));
    return { kind: "array", items };
  }

  /** Past an opening bracket: true (and past `close`) when the container is empty. */
  #opens(close: string): boolean {
    this.#pos++;
    this.skipSpace();
    if (this.atEnd()) this.#eof();
    if (this.text[this.#pos] !== close) return false;
    this.#pos++;
    return true;
  }

  /** After an element: true past `close`, false past a comma; anything else is invalid. */
  #closes(close: string, context: string): boolean {
    this.skipSpace();
    if (this.atEnd()) this.#eof();
    const c = this.text[this.#pos];
    if (c !== "," && c !== close) this.#invalid(context);
    this.#pos++;
    return c === close;
  }

  #string(): string {
    const start = this.#pos;
    this.#pos++;
    while (true) {
      if (this.atEnd()) this.#eof();
      const code = this.text.charCodeAt(this.#pos);
      if (code === 0x22) {
        this.#pos++;
        return JSON.parse(this.text.slice(start, this.#pos));
      }
      if (code < 0x20) this.#invalid("in string literal");
      if (code === 0x5c) {
        this.#pos++;
        if (this.atEnd()) this.#eof();
        const e = this.text[this.#pos];
        if (e === "u") {
          for (let i = 0; i < 4; i++) {
            this.#pos++;
            if (this.atEnd()) this.#eof();
            if (!/[0-9a-fA-F]/.test(this.text[this.#pos])) {
              this.#invalid("in \\u hexadecimal character escape");
            }
          }
        } else if (!'"\\/bfnrt'.includes(e)) this.#invalid("in string escape code");
      }
      this.#pos++;
    }
  }

  #digits(): void {
    while (!this.atEnd() && this.text[this.#pos] >= "0" && this.text[this.#pos] <= "9") this.#pos++;
  }

  #number(): string {
    const start = this.#pos;
    const digit = () => !this.atEnd() && this.text[this.#pos] >= "0" && this.text[this.#pos] <= "9";
    if (this.text[this.#pos] === "-") {
      this.#pos++;
      if (this.atEnd()) this.#eof();
      if (!digit()) this.#invalid("in numeric literal");
    }
    if (this.text[this.#pos] === "0") this.#pos++;
    else this.#digits();
    if (!this.atEnd() && this.text[this.#pos] === ".") {
      this.#pos++;
      if (this.atEnd()) this.#eof();
      if (!digit()) this.#invalid("after decimal point in numeric literal");
      this.#digits();
    }
    if (!this.atEnd() && (this.text[this.#pos] === "e" || this.text[this.#pos] === "E")) {
      this.#pos++;
      if (!this.atEnd() && (this.text[this.#pos] === "+" || this.text[this.#pos] === "-")) {
        this.#pos++;
      }
      if (this.atEnd()) this.#eof();
      if (!digit()) this.#invalid("in exponent of numeric literal");
      this.#digits();
    }
    return this.text.slice(start, this.#pos);
  }
}

/**
 * Reads the JSON value that starts at `start` (after whitespace); null when only whitespace is
 * left (Go's io.EOF). A value cut short throws "unexpected EOF".
 */
export function readJsonValue(text: string, start = 0): NextValue {
  const scanner = new Scanner(text, start);
  scanner.skipSpace();
  if (scanner.atEnd()) return null;
  const node = scanner.value();
  return { node, end: scanner.pos };
}

/** What Go's encoding/json calls a JSON value's kind in "cannot unmarshal X into ...". */
function goKind(node: JsonNode): string {
  return node.kind === "bool" ? "bool" : node.kind;
}

function cannotUnmarshal(node: JsonNode, goType: string): GatewayJsonError {
  return new GatewayJsonError(
    `json: cannot unmarshal ${goKind(node)} into Go value of type ${goType}`,
  );
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUE = new Map([...BASE64].map((c, i) => [c.charCodeAt(0), i]));

/**
 * Go's base64.StdEncoding.DecodeString: padding required, CR and LF skipped, and its error
 * "illegal base64 data at input byte N" at the offset Go reports.
 */
export function decodeGoBase64(text: string): Uint8Array {
  const src = new TextEncoder().encode(text);
  const out: number[] = [];
  const corrupt = (at: number) => new GatewayJsonError(`illegal base64 data at input byte ${at}`);
  const newline = (b: number) => b === 0x0a || b === 0x0d;
  let si = 0;
  while (si < src.length) {
    const quantum = [0, 0, 0, 0];
    let length = 4;
    let failure: GatewayJsonError | null = null;
    for (let j = 0; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return new Uint8Array(out);
        throw corrupt(si - j);
      }
      const b = src[si++];
      const value = BASE64_VALUE.get(b);
      if (value !== undefined) {
        quantum[j] = value;
        continue;
      }
      if (newline(b)) {
        j--;
        continue;
      }
      if (b !== 0x3d) throw corrupt(si - 1);
      // Padding: the quantum ends here.
      if (j === 0 || j === 1) throw corrupt(si - 1);
      if (j === 2) {
        while (si < src.length && newline(src[si])) si++;
        if (si === src.length) throw corrupt(src.length);
        if (src[si] !== 0x3d) throw corrupt(si - 1);
        si++;
      }
      while (si < src.length && newline(src[si])) si++;
      if (si < src.length) failure = corrupt(si);
      length = j;
      break;
    }
    const bits = (quantum[0] << 18) | (quantum[1] << 12) | (quantum[2] << 6) | quantum[3];
    if (length >= 2) out.push((bits >> 16) & 0xff);
    if (length >= 3) out.push((bits >> 8) & 0xff);
    if (length >= 4) out.push(bits & 0xff);
    if (failure !== null) throw failure;
  }
  return new Uint8Array(out);
}

/** Go's name of an enum type ("etcdserverpb.RangeRequest_SortOrder"). */
function goEnumName(desc: DescEnum): string {
  const [pkg, ...rest] = desc.typeName.split(".");
  return `${pkg}.${rest.join("_")}`;
}

interface IntegerType {
  goType: string;
  min: bigint;
  max: bigint;
  big: boolean;
}

const INTEGERS: Partial<Record<ScalarType, IntegerType>> = {
  [ScalarType.INT64]: { goType: "int64", min: -(1n << 63n), max: (1n << 63n) - 1n, big: true },
  [ScalarType.SINT64]: { goType: "int64", min: -(1n << 63n), max: (1n << 63n) - 1n, big: true },
  [ScalarType.SFIXED64]: { goType: "int64", min: -(1n << 63n), max: (1n << 63n) - 1n, big: true },
  [ScalarType.UINT64]: { goType: "uint64", min: 0n, max: (1n << 64n) - 1n, big: true },
  [ScalarType.FIXED64]: { goType: "uint64", min: 0n, max: (1n << 64n) - 1n, big: true },
  [ScalarType.INT32]: { goType: "int32", min: -(1n << 31n), max: (1n << 31n) - 1n, big: false },
  [ScalarType.SINT32]: { goType: "int32", min: -(1n << 31n), max: (1n << 31n) - 1n, big: false },
  [ScalarType.SFIXED32]: { goType: "int32", min: -(1n << 31n), max: (1n << 31n) - 1n, big: false },
  [ScalarType.UINT32]: { goType: "uint32", min: 0n, max: (1n << 32n) - 1n, big: false },
  [ScalarType.FIXED32]: { goType: "uint32", min: 0n, max: (1n << 32n) - 1n, big: false },
};

/** jsonpb's integers: a JSON number, or a string holding one (itself parsed as JSON). */
function integer(node: JsonNode, type: IntegerType): bigint | number {
  let number: JsonNode = node;
  if (node.kind === "string") {
    const inner = readJsonValue(node.value);
    if (inner === null) throw new GatewayJsonError("unexpected end of JSON input");
    const rest = new Scanner(node.value, inner.end);
    rest.skipSpace();
    if (!rest.atEnd()) {
      throw new GatewayJsonError(
        `invalid character ${quoteChar(node.value.charCodeAt(rest.pos))} after top-level value`,
      );
    }
    number = inner.node;
  }
  if (number.kind !== "number") throw cannotUnmarshal(number, type.goType);
  const text = number.text;
  const outOfRange = () =>
    new GatewayJsonError(
      `json: cannot unmarshal number ${text} into Go value of type ${type.goType}`,
    );
  if (!/^-?\d+$/.test(text)) throw outOfRange();
  const value = BigInt(text);
  if (value < type.min || value > type.max) throw outOfRange();
  return type.big ? value : Number(value);
}

function scalar(field: DescField, type: ScalarType, node: JsonNode): unknown {
  const integerType = INTEGERS[type];
  if (integerType !== undefined) return integer(node, integerType);
  switch (type) {
    case ScalarType.BOOL:
      if (node.kind !== "bool") throw cannotUnmarshal(node, "bool");
      return node.value;
    case ScalarType.STRING:
      if (node.kind !== "string") throw cannotUnmarshal(node, "string");
      return node.value;
    case ScalarType.BYTES:
      if (node.kind !== "string") throw cannotUnmarshal(node, "[]uint8");
      return decodeGoBase64(node.value);
    default:
      throw new GatewayJsonError(`field ${field.name}: unsupported type`);
  }
}

function enumValue(desc: DescEnum, node: JsonNode): number {
  if (node.kind === "string") {
    const value = desc.values.find((v) => v.name === node.value);
    if (value === undefined) {
      throw new GatewayJsonError(
        `unknown value ${JSON.stringify(node.value)} for enum ${goEnumName(desc)}`,
      );
    }
    return value.number;
  }
  return integer(node, INTEGERS[ScalarType.INT32]!) as number;
}

/** A field's value (a list field's element) from JSON, by the field's kind. */
function element(field: DescField, node: JsonNode): unknown {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  switch (kind) {
    case "scalar":
      return scalar(field, (field as { scalar: ScalarType }).scalar, node);
    case "enum":
      return enumValue((field as { enum: DescEnum }).enum, node);
    case "message":
      return messageInit((field as { message: DescMessage }).message, node);
    default:
      throw new GatewayJsonError(`field ${field.name}: unsupported kind`);
  }
}

/** The init object `create()` takes for `desc`, from a JSON object as jsonpb reads one. */
function messageInit(desc: DescMessage, node: JsonNode): Record<string, unknown> {
  if (node.kind === "null") return {};
  if (node.kind !== "object") throw cannotUnmarshal(node, "map[string]json.RawMessage");
  const init: Record<string, unknown> = {};
  for (const field of desc.fields) {
    const value = node.entries.get(field.name) ?? node.entries.get(field.jsonName);
    if (value === undefined || value.kind === "null") continue;
    let converted: unknown;
    if (field.fieldKind === "list") {
      if (value.kind !== "array") throw cannotUnmarshal(value, "[]json.RawMessage");
      converted = value.items.map((item) => element(field, item));
    } else if (field.fieldKind === "map") {
      throw new GatewayJsonError(`field ${field.name}: maps are not supported`);
    } else converted = element(field, value);
    if (field.oneof !== undefined) {
      init[field.oneof.localName] = { case: field.localName, value: converted };
    } else init[field.localName] = converted;
  }
  return init;
}

/** A request message from a parsed JSON value (jsonpb's rules; Go's errors). */
export function messageFromJson<D extends DescMessage>(desc: D, node: JsonNode): Message {
  return create(desc, messageInit(desc, node) as never) as Message;
}

/**
 * A message as the gateway writes it: jsonpb with the .proto's names, compact, and Go's
 * encoding/json escapes of <, >, & and the line separators.
 */
export function messageToJsonText(desc: DescMessage, message: Message): string {
  return goEscape(JSON.stringify(toJson(desc, message as never, { useProtoFieldName: true })));
}

/** JSON text with the characters Go's encoding/json escapes (HTML-safe) escaped. */
export function goEscape(json: string): string {
  return json.replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
