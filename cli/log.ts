/**
 * The two log formats etcdctl writes to stderr: zap JSON lines from the Go client (e.g. the
 * "retrying of unary invoker failed" warning before an RPC error) and capnslog lines from
 * pkg/flags (environment variable warnings). Scripts and tests match on their shape, so the
 * field order, time formats and escaping follow the Go libraries.
 */

const LOWER_HEX = "0123456789abcdef";

/** zap's JSON string escaping (no HTML escaping, unlike encoding/json). */
export function zapJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20) out += "\\u00" + LOWER_HEX[c >> 4] + LOWER_HEX[c & 0xf];
    else if (c >= 0xd800 && c <= 0xdfff) out += "\\ufffd";
    else out += ch;
  }
  return out + '"';
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

function offsetParts(d: Date): { sign: string; hh: string; mm: string; zero: boolean } {
  const off = -d.getTimezoneOffset();
  const abs = Math.abs(off);
  return {
    sign: off < 0 ? "-" : "+",
    hh: pad(Math.floor(abs / 60)),
    mm: pad(abs % 60),
    zero: off === 0,
  };
}

/** zapcore.ISO8601TimeEncoder: "2006-01-02T15:04:05.000Z0700" in local time. */
export function zapIsoTime(d: Date): string {
  const o = offsetParts(d);
  const zone = o.zero ? "Z" : `${o.sign}${o.hh}${o.mm}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${
    pad(d.getMinutes())
  }:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}${zone}`;
}

/** A zap field value: strings are quoted, numbers and booleans written bare. */
export type LogValue = string | number | boolean | bigint;

/** One zap JSON log line (with trailing newline), fields in the given order. */
export function zapLine(
  now: Date,
  level: "debug" | "info" | "warn" | "error",
  caller: string,
  msg: string,
  fields: [string, LogValue][],
): string {
  let s = `{"level":${zapJsonString(level)},"ts":${zapJsonString(zapIsoTime(now))},"caller":${
    zapJsonString(caller)
  },"msg":${zapJsonString(msg)}`;
  for (const [k, v] of fields) {
    s += `,${zapJsonString(k)}:${typeof v === "string" ? zapJsonString(v) : String(v)}`;
  }
  return s + "}\n";
}

/** A capnslog line: "2006-01-02 15:04:05.000000 W | pkg/flags: message". */
export function capnsLine(
  now: Date,
  level: "C" | "E" | "W" | "N" | "I",
  pkg: string,
  msg: string,
): string {
  const micros = pad(now.getMilliseconds(), 3) + "000";
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ${
    pad(now.getHours())
  }:${pad(now.getMinutes())}:${pad(now.getSeconds())}.${micros} ${level} | ${pkg}: ${msg}\n`;
}
