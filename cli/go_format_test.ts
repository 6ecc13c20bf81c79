import assert from "node:assert/strict";
import {
  formatGoDuration,
  goJsonString,
  goQuote,
  goQuoteRune,
  goUnquote,
  humanizeBytes,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
  parseGoUint,
} from "./go_format.ts";

Deno.test("goQuote escapes like strconv.Quote, keeping printable unicode", () => {
  const cases: [string | Uint8Array, string][] = [
    ["foo", '"foo"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ["tab\tnl\n\x07\x7f", '"tab\\tnl\\n\\a\\x7f"'],
    ["é世", '"é世"'],
    ["\u200b", '"\\u200b"'],
    [new Uint8Array([0x66, 0xff, 0x00]), '"f\\xff\\x00"'],
  ];
  for (const [input, want] of cases) assert.equal(goQuote(input), want);
  assert.equal(goQuoteRune(0x77), "'w'");
  assert.equal(goQuoteRune(0x27), "'\\''");
});

Deno.test("goUnquote decodes Go string literals to bytes and rejects bad ones", () => {
  const dec = (s: string) => Array.from(goUnquote(s));
  assert.deepEqual(dec('"a\\x41\\n"'), [0x61, 0x41, 0x0a]);
  assert.deepEqual(dec('"\\u00e9"'), [0xc3, 0xa9]);
  assert.deepEqual(dec('"\\101"'), [0x41]);
  assert.deepEqual(dec("`raw\\n`"), [...new TextEncoder().encode("raw\\n")]);
  assert.deepEqual(dec("'x'"), [0x78]);
  for (const bad of ['"abc', '"\\q"', "'ab'", '"a"b"', '"\\\'"']) {
    assert.throws(() => goUnquote(bad), /invalid syntax/, bad);
  }
});

Deno.test("parseGoInt follows strconv.ParseInt: bases, prefixes, underscores, errors", () => {
  assert.equal(parseGoInt("0x10", 0), 16n);
  assert.equal(parseGoInt("0o17", 0), 15n);
  assert.equal(parseGoInt("017", 0), 15n);
  assert.equal(parseGoInt("1_000", 0), 1000n);
  assert.equal(parseGoInt("-9223372036854775808", 10), -9223372036854775808n);
  assert.equal(parseGoInt("694d71ddacfda1a", 16), 0x694d71ddacfda1an);
  assert.throws(() => parseGoInt("x", 0), {
    message: 'strconv.ParseInt: parsing "x": invalid syntax',
  });
  assert.throws(() => parseGoInt("1__0", 0), /invalid syntax/);
  assert.throws(() => parseGoInt("1_0", 10), /invalid syntax/);
  assert.throws(() => parseGoInt("99999999999999999999", 0), {
    message: 'strconv.ParseInt: parsing "99999999999999999999": value out of range',
  });
  assert.throws(() => parseGoInt("9223372036854775808", 10), /value out of range/);
  assert.throws(() => parseGoUint("-1", 16), {
    message: 'strconv.ParseUint: parsing "-1": invalid syntax',
  });
  assert.throws(() => parseGoInt("", 16), {
    message: 'strconv.ParseInt: parsing "": invalid syntax',
  });
});

Deno.test("parseGoBool accepts Go's spellings only", () => {
  for (const t of ["1", "t", "T", "TRUE", "true", "True"]) assert.equal(parseGoBool(t), true);
  for (const f of ["0", "f", "F", "FALSE", "false", "False"]) assert.equal(parseGoBool(f), false);
  assert.throws(() => parseGoBool("yes"), {
    message: 'strconv.ParseBool: parsing "yes": invalid syntax',
  });
});

Deno.test("parseGoDuration parses and rejects like time.ParseDuration", () => {
  const cases: [string, bigint][] = [
    ["5s", 5_000_000_000n],
    ["1m30s", 90_000_000_000n],
    ["1.5h", 5_400_000_000_000n],
    ["300ms", 300_000_000n],
    ["-2us", -2_000n],
    ["1µs", 1_000n],
    ["0", 0n],
    [".5s", 500_000_000n],
  ];
  for (const [s, ns] of cases) assert.equal(parseGoDuration(s), ns, s);
  assert.throws(() => parseGoDuration("5"), { message: 'time: missing unit in duration "5"' });
  assert.throws(() => parseGoDuration("abc"), { message: 'time: invalid duration "abc"' });
  assert.throws(() => parseGoDuration("5x"), {
    message: 'time: unknown unit "x" in duration "5x"',
  });
  assert.throws(() => parseGoDuration(""), { message: 'time: invalid duration ""' });
  assert.throws(() => parseGoDuration("9999999999h"), /invalid duration/);
});

Deno.test("formatGoDuration prints like time.Duration.String", () => {
  const cases: [bigint, string][] = [
    [0n, "0s"],
    [5_000_000_000n, "5s"],
    [2_000_000_000n, "2s"],
    [60_000_000_000n, "1m0s"],
    [90_500_000_000n, "1m30.5s"],
    [3_723_000_000_000n, "1h2m3s"],
    [4_352_524n, "4.352524ms"],
    [1_500n, "1.5µs"],
    [999n, "999ns"],
    [-1_000_000n, "-1ms"],
  ];
  for (const [ns, s] of cases) assert.equal(formatGoDuration(ns), s);
});

Deno.test("humanizeBytes matches go-humanize Bytes, rounding ties to even like %.0f", () => {
  const cases: [number, string][] = [
    [0, "0 B"],
    [9, "9 B"],
    [10, "10 B"],
    [999, "999 B"],
    [1000, "1.0 kB"],
    [16384, "16 kB"],
    [20480, "20 kB"],
    [24576, "25 kB"],
    [1_500_000, "1.5 MB"],
    [20_500, "20 kB"],
    [21_500, "22 kB"],
  ];
  for (const [n, s] of cases) assert.equal(humanizeBytes(n), s, String(n));
});

Deno.test("goJsonString escapes HTML characters and controls like encoding/json", () => {
  assert.equal(
    goJsonString('a<b>&"\\\n\t\x01é\u2028'),
    '"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\t\\u0001é\\u2028"',
  );
});
