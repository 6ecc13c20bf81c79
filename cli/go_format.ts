/**
 * Go standard-library formatting and parsing, re-implemented so detcdctl prints and rejects
 * exactly what etcdctl (a Go program) prints and rejects: strconv quoting and number parsing,
 * time.Duration parsing/printing, go-humanize byte sizes and encoding/json string escaping.
 * Every error message here is the Go one verbatim, because etcdctl shows them to users.
 */

import { Buffer } from "node:buffer";
export { humanizeBytes } from "../core/go_humanize.ts";

const encoder = new TextEncoder();
const LOWER_HEX = "0123456789abcdef";

/** Bytes of a Go string: JS strings are UTF-16, Go strings are bytes (UTF-8 here). */
export function goBytes(s: string | Uint8Array): Uint8Array {
  return typeof s === "string" ? encoder.encode(s) : s;
}

/** Decodes one UTF-8 rune at `i`; returns [rune, size], rune -1 for an invalid byte. */
export function decodeRune(b: Uint8Array, i: number): [number, number] {
  const c0 = b[i];
  if (c0 < 0x80) return [c0, 1];
  let need: number;
  if (c0 >= 0xc2 && c0 <= 0xdf) need = 1;
  else if (c0 >= 0xe0 && c0 <= 0xef) need = 2;
  else if (c0 >= 0xf0 && c0 <= 0xf4) need = 3;
  else return [-1, 1];
  if (i + need >= b.length) return [-1, 1];
  let r = c0 & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
  for (let k = 1; k <= need; k++) {
    const c = b[i + k];
    if ((c & 0xc0) !== 0x80) return [-1, 1];
    // Second-byte ranges that Go rejects (overlong forms, surrogates, beyond U+10FFFF).
    if (k === 1) {
      if (c0 === 0xe0 && c < 0xa0) return [-1, 1];
      if (c0 === 0xed && c > 0x9f) return [-1, 1];
      if (c0 === 0xf0 && c < 0x90) return [-1, 1];
      if (c0 === 0xf4 && c > 0x8f) return [-1, 1];
    }
    r = (r << 6) | (c & 0x3f);
  }
  return [r, need + 1];
}

const printableRe = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isGoPrint(r: number): boolean {
  if (r < 0x80) return r >= 0x20 && r < 0x7f;
  if (r >= 0xd800 && r <= 0xdfff) return false;
  return printableRe.test(String.fromCodePoint(r));
}

function escapeRune(r: number, quote: number, out: string[]): void {
  if (r === quote || r === 0x5c) {
    out.push("\\" + String.fromCharCode(r));
    return;
  }
  if (isGoPrint(r)) {
    out.push(String.fromCodePoint(r));
    return;
  }
  switch (r) {
    case 0x07:
      out.push("\\a");
      return;
    case 0x08:
      out.push("\\b");
      return;
    case 0x0c:
      out.push("\\f");
      return;
    case 0x0a:
      out.push("\\n");
      return;
    case 0x0d:
      out.push("\\r");
      return;
    case 0x09:
      out.push("\\t");
      return;
    case 0x0b:
      out.push("\\v");
      return;
  }
  if (r < 0x20 || r === 0x7f) {
    out.push("\\x" + LOWER_HEX[r >> 4] + LOWER_HEX[r & 0xf]);
  } else if (r < 0x10000) {
    out.push("\\u" + r.toString(16).padStart(4, "0"));
  } else {
    out.push("\\U" + r.toString(16).padStart(8, "0"));
  }
}

/** strconv.Quote (and fmt's %q on strings): invalid UTF-8 bytes become \xNN. */
export function goQuote(s: string | Uint8Array): string {
  const b = goBytes(s);
  const out: string[] = ['"'];
  for (let i = 0; i < b.length;) {
    const [r, size] = decodeRune(b, i);
    if (r < 0) {
      out.push("\\x" + LOWER_HEX[b[i] >> 4] + LOWER_HEX[b[i] & 0xf]);
    } else {
      escapeRune(r, 0x22, out);
    }
    i += size;
  }
  out.push('"');
  return out.join("");
}

/** strconv.QuoteRune (fmt's %q on a byte or rune), e.g. 'w'. */
export function goQuoteRune(r: number): string {
  const out: string[] = ["'"];
  escapeRune(r, 0x27, out);
  out.push("'");
  return out.join("");
}

/** Raised where Go's strconv returns ErrSyntax. */
export class GoSyntaxError extends Error {
  constructor() {
    super("invalid syntax");
  }
}

function unhex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function pushRune(out: number[], r: number): void {
  out.push(...encoder.encode(String.fromCodePoint(r)));
}

/**
 * strconv.Unquote for double-quoted, single-quoted and back-quoted literals. Returns bytes:
 * a Go string literal may hold any bytes (\xff), which a JS string cannot.
 */
export function goUnquote(s: string): Uint8Array {
  const b = goBytes(s);
  const n = b.length;
  if (n < 2) throw new GoSyntaxError();
  const quote = b[0];
  if (quote !== b[n - 1]) throw new GoSyntaxError();
  const body = b.subarray(1, n - 1);
  if (quote === 0x60) {
    if (body.includes(0x60)) throw new GoSyntaxError();
    return Uint8Array.from(body.filter((c) => c !== 0x0d));
  }
  if (quote !== 0x22 && quote !== 0x27) throw new GoSyntaxError();
  if (body.includes(0x0a)) throw new GoSyntaxError();
  const out: number[] = [];
  let i = 0;
  let runes = 0;
  while (i < body.length) {
    const c = body[i];
    runes++;
    if (c === quote) throw new GoSyntaxError();
    if (c !== 0x5c) {
      const [r, size] = decodeRune(body, i);
      if (r < 0 && quote === 0x27) throw new GoSyntaxError();
      for (let k = 0; k < size; k++) out.push(body[i + k]);
      i += size;
      continue;
    }
    i++;
    if (i >= body.length) throw new GoSyntaxError();
    const e = body[i++];
    switch (e) {
      case 0x61:
        out.push(7);
        break;
      case 0x62:
        out.push(8);
        break;
      case 0x66:
        out.push(12);
        break;
      case 0x6e:
        out.push(10);
        break;
      case 0x72:
        out.push(13);
        break;
      case 0x74:
        out.push(9);
        break;
      case 0x76:
        out.push(11);
        break;
      case 0x5c:
        out.push(0x5c);
        break;
      case 0x27:
      case 0x22:
        if (e !== quote) throw new GoSyntaxError();
        out.push(e);
        break;
      case 0x78:
      case 0x75:
      case 0x55: {
        const len = e === 0x78 ? 2 : e === 0x75 ? 4 : 8;
        if (i + len > body.length) throw new GoSyntaxError();
        let v = 0;
        for (let k = 0; k < len; k++) {
          const d = unhex(body[i + k]);
          if (d < 0) throw new GoSyntaxError();
          v = v * 16 + d;
        }
        i += len;
        if (e === 0x78) {
          out.push(v);
        } else {
          if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) throw new GoSyntaxError();
          pushRune(out, v);
        }
        break;
      }
      default: {
        if (e >= 0x30 && e <= 0x37) {
          if (i + 2 > body.length) throw new GoSyntaxError();
          let v = e - 0x30;
          for (let k = 0; k < 2; k++) {
            const d = body[i + k] - 0x30;
            if (d < 0 || d > 7) throw new GoSyntaxError();
            v = v * 8 + d;
          }
          if (v > 255) throw new GoSyntaxError();
          i += 2;
          out.push(v);
          break;
        }
        throw new GoSyntaxError();
      }
    }
  }
  if (quote === 0x27 && runes !== 1) throw new GoSyntaxError();
  return Uint8Array.from(out);
}

/** Go's strconv.NumError text: `strconv.ParseInt: parsing "x": invalid syntax`. */
export class GoNumError extends Error {
  constructor(readonly func: string, readonly num: string, readonly reason: "syntax" | "range") {
    super(
      `strconv.${func}: parsing ${goQuote(num)}: ${
        reason === "syntax" ? "invalid syntax" : "value out of range"
      }`,
    );
  }
}

/** strconv.ParseBool. */
export function parseGoBool(s: string): boolean {
  switch (s) {
    case "1":
    case "t":
    case "T":
    case "TRUE":
    case "true":
    case "True":
      return true;
    case "0":
    case "f":
    case "F":
    case "FALSE":
    case "false":
    case "False":
      return false;
  }
  throw new GoNumError("ParseBool", s, "syntax");
}

function underscoreOk(s0: string): boolean {
  let saw = "^";
  let s = s0;
  let i = 0;
  if (s.length >= 1 && (s[0] === "-" || s[0] === "+")) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === "0" && "box".includes(s[1].toLowerCase())) {
    i = 2;
    saw = "0";
    hex = s[1].toLowerCase() === "x";
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if ((c >= "0" && c <= "9") || (hex && c.toLowerCase() >= "a" && c.toLowerCase() <= "f")) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** strconv.ParseUint(s, base, bitSize); base 0 means "from the prefix" like Go. */
export function parseGoUint(s: string, base: number, bitSize = 64, func = "ParseUint"): bigint {
  if (s === "") throw new GoNumError(func, s, "syntax");
  const base0 = base === 0;
  const s0 = s;
  if (base === 0) {
    base = 10;
    if (s[0] === "0") {
      const p = s.length >= 3 ? s[1].toLowerCase() : "";
      if (p === "b") {
        base = 2;
        s = s.slice(2);
      } else if (p === "o") {
        base = 8;
        s = s.slice(2);
      } else if (p === "x") {
        base = 16;
        s = s.slice(2);
      } else {
        base = 8;
        s = s.slice(1);
      }
    }
  } else if (base < 2 || base > 36) {
    throw new Error(`strconv.${func}: parsing ${goQuote(s0)}: invalid base ${base}`);
  }
  const maxVal = (1n << BigInt(bitSize)) - 1n;
  const bigBase = BigInt(base);
  let n = 0n;
  let underscores = false;
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    let d: number;
    if (ch === "_" && base0) {
      underscores = true;
      continue;
    } else if (c >= 0x30 && c <= 0x39) {
      d = c - 0x30;
    } else if (ch.length === 1 && ch.toLowerCase() >= "a" && ch.toLowerCase() <= "z") {
      d = ch.toLowerCase().charCodeAt(0) - 0x61 + 10;
    } else {
      throw new GoNumError(func, s0, "syntax");
    }
    if (d >= base) throw new GoNumError(func, s0, "syntax");
    n = n * bigBase + BigInt(d);
    if (n > maxVal) throw new GoNumError(func, s0, "range");
  }
  if (underscores && !underscoreOk(s0)) throw new GoNumError(func, s0, "syntax");
  return n;
}

/** strconv.ParseInt(s, base, bitSize). */
export function parseGoInt(s: string, base: number, bitSize = 64): bigint {
  if (s === "") throw new GoNumError("ParseInt", s, "syntax");
  const s0 = s;
  let neg = false;
  if (s[0] === "+") {
    s = s.slice(1);
  } else if (s[0] === "-") {
    neg = true;
    s = s.slice(1);
  }
  let un: bigint;
  try {
    un = parseGoUint(s, base, bitSize, "ParseInt");
  } catch (e) {
    if (e instanceof GoNumError) throw new GoNumError("ParseInt", s0, e.reason);
    throw e;
  }
  const cutoff = 1n << BigInt(bitSize - 1);
  if (!neg && un >= cutoff) throw new GoNumError("ParseInt", s0, "range");
  if (neg && un > cutoff) throw new GoNumError("ParseInt", s0, "range");
  return neg ? -un : un;
}

/** The quoting used by Go's time package in its error messages. */
function timeQuote(s: string): string {
  const b = goBytes(s);
  let out = '"';
  for (let i = 0; i < b.length;) {
    const [r, size] = decodeRune(b, i);
    if (r < 0 || r >= 0x80 || r < 0x20) {
      for (let k = 0; k < size; k++) {
        out += "\\x" + LOWER_HEX[b[i + k] >> 4] + LOWER_HEX[b[i + k] & 0xf];
      }
    } else {
      const ch = String.fromCharCode(r);
      out += ch === '"' || ch === "\\" ? "\\" + ch : ch;
    }
    i += size;
  }
  return out + '"';
}

const durationUnits: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  "\u00b5s": 1000n,
  "\u03bcs": 1000n,
  ms: 1000000n,
  s: 1000000000n,
  m: 60000000000n,
  h: 3600000000000n,
};

const twoTo63 = 1n << 63n;

/** time.ParseDuration, in nanoseconds. */
export function parseGoDuration(orig: string): bigint {
  const invalid = () => new Error("time: invalid duration " + timeQuote(orig));
  let s = orig;
  let d = 0n;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") throw invalid();
  const isDigit = (c: string) => c >= "0" && c <= "9";
  while (s !== "") {
    let v = 0n;
    let f = 0n;
    let scale = 1;
    if (!(s[0] === "." || isDigit(s[0]))) throw invalid();
    let i = 0;
    while (i < s.length && isDigit(s[i])) {
      if (v > twoTo63 / 10n) throw invalid();
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > twoTo63) throw invalid();
      i++;
    }
    const pre = i !== 0;
    s = s.slice(i);
    let post = false;
    if (s !== "" && s[0] === ".") {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (j < s.length && isDigit(s[j])) {
        if (!overflow) {
          if (f > (twoTo63 - 1n) / 10n) {
            overflow = true;
          } else {
            const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
            if (y > twoTo63) {
              overflow = true;
            } else {
              f = y;
              scale *= 10;
            }
          }
        }
        j++;
      }
      post = j !== 0;
      s = s.slice(j);
    }
    if (!pre && !post) throw invalid();
    let u = 0;
    while (u < s.length && !(s[u] === "." || isDigit(s[u]))) u++;
    if (u === 0) throw new Error("time: missing unit in duration " + timeQuote(orig));
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = durationUnits[unitName];
    if (unit === undefined) {
      throw new Error(
        "time: unknown unit " + timeQuote(unitName) + " in duration " + timeQuote(orig),
      );
    }
    if (v > twoTo63 / unit) throw invalid();
    v *= unit;
    if (f > 0n) {
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > twoTo63) throw invalid();
    }
    d += v;
    if (d > twoTo63) throw invalid();
  }
  if (neg) return -d;
  if (d > twoTo63 - 1n) throw invalid();
  return d;
}

function fmtFrac(v: bigint, prec: number): [string, bigint] {
  let out = "";
  let print = false;
  for (let i = 0; i < prec; i++) {
    const digit = v % 10n;
    print = print || digit !== 0n;
    if (print) out = digit.toString() + out;
    v /= 10n;
  }
  if (print) out = "." + out;
  return [out, v];
}

/** time.Duration.String: "5s", "1m30s", "4.352524ms", "0s". */
export function formatGoDuration(d: bigint): string {
  const neg = d < 0n;
  let u = neg ? -d : d;
  let out: string;
  if (u < 1000000000n) {
    if (u === 0n) return "0s";
    let prec: number;
    let unit: string;
    if (u < 1000n) {
      prec = 0;
      unit = "ns";
    } else if (u < 1000000n) {
      prec = 3;
      unit = "\u00b5s";
    } else {
      prec = 6;
      unit = "ms";
    }
    const [frac, rest] = fmtFrac(u, prec);
    out = rest.toString() + frac + unit;
  } else {
    const [frac, rest] = fmtFrac(u, 9);
    u = rest;
    out = (u % 60n).toString() + frac + "s";
    u /= 60n;
    if (u > 0n) {
      out = (u % 60n).toString() + "m" + out;
      u /= 60n;
      if (u > 0n) out = u.toString() + "h" + out;
    }
  }
  return neg ? "-" + out : out;
}

/** encoding/json's string encoding with HTML escaping, as Go 1.19 writes it. */
export function goJsonString(s: string): string {
  // deno-lint-ignore no-control-regex
  if (!/[\u0000-\u001f"\\<>&\u2028\u2029\ud800-\udfff]/.test(s)) return '"' + s + '"';
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) {
      if (ch === '"' || ch === "\\") {
        out += "\\" + ch;
      } else if (ch === "\n") {
        out += "\\n";
      } else if (ch === "\r") {
        out += "\\r";
      } else if (ch === "\t") {
        out += "\\t";
      } else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&") {
        out += "\\u00" + LOWER_HEX[c >> 4] + LOWER_HEX[c & 0xf];
      } else {
        out += ch;
      }
    } else if (c === 0x2028 || c === 0x2029) {
      out += "\\u" + c.toString(16);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      out += "\\ufffd";
    } else {
      out += ch;
    }
  }
  return out + '"';
}

/** encoding/base64 StdEncoding, as encoding/json writes []byte. */
export function base64Std(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString("base64");
}

/** fmt's %v of a []string: "[a b c]". */
export function goSliceString(items: readonly string[]): string {
  return "[" + items.join(" ") + "]";
}

/** fmt's %x of an integer printed as Go's uint64 (IDs are uint64 on the wire). */
export function goHex(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16);
}

/** fmt's %16x: right-aligned in `width` columns, padded with spaces. */
export function goHexPadded(v: bigint, width: number): string {
  return goHex(v).padStart(width, " ");
}

/** fmt's %016x: zero-padded to `width` digits. */
export function goHexZero(v: bigint, width: number): string {
  return goHex(v).padStart(width, "0");
}

/** The errno text Go's os package gives for a failed file operation ("no such file or directory"). */
export function goErrnoText(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.AlreadyExists) return "file exists";
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  return (e as Error).message;
}
