/**
 * A small re-implementation of spf13/pflag, the flag library behind etcdctl: same syntax
 * (`--flag=v`, `--flag v`, `-f v`, `-fv`, `--bool`, `--bool=false`, interspersed positional
 * arguments, `--` ends flags), same value types and the same error texts, so that detcdctl
 * accepts and rejects exactly the command lines etcdctl does.
 */

import {
  formatGoDuration,
  goQuote,
  goQuoteRune,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
  parseGoUint,
} from "./go_format.ts";

/** A typed flag value, like pflag.Value: parse from text, print as text. */
export interface FlagValue {
  /** Parses and stores `s`; throws an Error whose message is Go's. */
  set(s: string): void;
  /** The value as pflag prints it (used for defaults in help and `--debug` dumps). */
  string(): string;
  /** pflag's type name; "string" values are shown quoted in help. */
  type(): string;
}

/** A bool flag value. */
export class BoolValue implements FlagValue {
  constructor(public value: boolean) {}
  set(s: string): void {
    this.value = parseGoBool(s);
  }
  string(): string {
    return String(this.value);
  }
  type(): string {
    return "bool";
  }
}

/** A string flag value. */
export class StringValue implements FlagValue {
  constructor(public value: string) {}
  set(s: string): void {
    this.value = s;
  }
  string(): string {
    return this.value;
  }
  type(): string {
    return "string";
  }
}

/** An int64 flag value (parsed with base 0 like pflag: 0x10, 0o7, 1_000). */
export class Int64Value implements FlagValue {
  readonly #bits: number;
  readonly #name: string;

  constructor(public value: bigint, bits = 64, name = "int64") {
    this.#bits = bits;
    this.#name = name;
  }
  set(s: string): void {
    this.value = parseGoInt(s, 0, this.#bits);
  }
  string(): string {
    return this.value.toString();
  }
  type(): string {
    return this.#name;
  }
}

/** A uint64 flag value. */
export class Uint64Value implements FlagValue {
  constructor(public value: bigint) {}
  set(s: string): void {
    this.value = parseGoUint(s, 0, 64);
  }
  string(): string {
    return this.value.toString();
  }
  type(): string {
    return "uint64";
  }
}

/** A time.Duration flag value, in nanoseconds. */
export class DurationValue implements FlagValue {
  constructor(public value: bigint) {}
  set(s: string): void {
    this.value = parseGoDuration(s);
  }
  string(): string {
    return formatGoDuration(this.value);
  }
  type(): string {
    return "duration";
  }
}

/** encoding/csv's reading of one record, as pflag's string slices use it. */
export function readCsvRecord(line: string): string[] {
  if (line === "") return [];
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let field = "";
      let j = i + 1;
      for (;;) {
        if (j >= line.length) {
          throw new Error(
            `parse error on line 1, column ${j + 1}: extraneous or missing " in quoted-field`,
          );
        }
        if (line[j] === '"') {
          if (line[j + 1] === '"') {
            field += '"';
            j += 2;
            continue;
          }
          j++;
          break;
        }
        field += line[j++];
      }
      if (j < line.length && line[j] !== ",") {
        throw new Error(
          `parse error on line 1, column ${j + 1}: extraneous or missing " in quoted-field`,
        );
      }
      fields.push(field);
      if (j >= line.length) return fields;
      i = j + 1;
    } else {
      let j = i;
      while (j < line.length && line[j] !== ",") {
        if (line[j] === '"') {
          throw new Error(`parse error on line 1, column ${j + 1}: bare " in non-quoted-field`);
        }
        j++;
      }
      let field = line.slice(i, j);
      if (j >= line.length) {
        field = field.replace(/\r?\n$/, "");
        fields.push(field);
        return fields;
      }
      fields.push(field);
      i = j + 1;
    }
  }
}

function csvField(f: string): string {
  const needs = f !== "" &&
    (f === "\\." || /[,"\r\n]/.test(f) || /^[\s\u0085\u00a0]/u.test(f));
  return needs ? '"' + f.replaceAll('"', '""') + '"' : f;
}

/** A []string flag value: comma-separated (CSV), the first Set replaces the default. */
export class StringSliceValue implements FlagValue {
  #changed = false;
  constructor(public value: string[]) {}
  set(s: string): void {
    const v = readCsvRecord(s);
    this.value = this.#changed ? [...this.value, ...v] : v;
    this.#changed = true;
  }
  string(): string {
    return "[" + this.value.map(csvField).join(",") + "]";
  }
  type(): string {
    return "stringSlice";
  }
}

/** One defined flag; the same object is shared by every FlagSet it is merged into. */
export interface Flag {
  readonly name: string;
  readonly shorthand: string;
  readonly usage: string;
  readonly value: FlagValue;
  readonly defValue: string;
  /** The value taken when the flag is given without `=value` ("true" for bools). */
  readonly noOptDefVal: string;
  changed: boolean;
  hidden?: boolean;
  deprecated?: string;
}

/** A parse failure; the message is pflag's. */
export class FlagError extends Error {}

/** Thrown by parse when `--help`/`-h` is given but not defined (pflag's ErrHelp). */
export class HelpRequested extends Error {
  constructor() {
    super("pflag: help requested");
  }
}

/** A set of flags, like pflag.FlagSet (ContinueOnError, interspersed, sorted for display). */
export class FlagSet {
  readonly #formal = new Map<string, Flag>();
  readonly #shorthands = new Map<string, Flag>();
  readonly #insertion: Flag[] = [];
  /** Positional arguments left after parse. */
  args: string[] = [];
  /** len(args) when `--` was seen, -1 otherwise. */
  argsLenAtDash = -1;
  /** Visit in name order (pflag's default) or in insertion order. */
  sortFlags = true;

  constructor(readonly name: string) {}

  /** Adds an existing flag (shared, not copied); ignored if the name is already defined. */
  addFlag(flag: Flag): void {
    if (this.#formal.has(flag.name)) return;
    this.#formal.set(flag.name, flag);
    this.#insertion.push(flag);
    if (flag.shorthand !== "") {
      if (flag.shorthand.length !== 1) {
        throw new Error(`${flag.shorthand} shorthand is more than one ASCII character`);
      }
      if (!this.#shorthands.has(flag.shorthand)) this.#shorthands.set(flag.shorthand, flag);
    }
  }

  /** Adds every flag of `other` that this set lacks. */
  addFlagSet(other: FlagSet): void {
    other.visitAll((f) => this.addFlag(f), false);
  }

  /** Defines a flag with the given value object. */
  define<V extends FlagValue>(
    name: string,
    value: V,
    usage: string,
    opts: { shorthand?: string; noOptDefVal?: string; hidden?: boolean } = {},
  ): V {
    const flag: Flag = {
      name,
      shorthand: opts.shorthand ?? "",
      usage,
      value,
      defValue: value.string(),
      noOptDefVal: opts.noOptDefVal ?? (value.type() === "bool" ? "true" : ""),
      changed: false,
      hidden: opts.hidden,
    };
    if (this.#formal.has(name)) throw new Error(`${this.name} flag redefined: ${name}`);
    this.addFlag(flag);
    return value;
  }

  /** Defines a bool flag. */
  bool(name: string, def: boolean, usage: string, shorthand = ""): BoolValue {
    return this.define(name, new BoolValue(def), usage, { shorthand });
  }

  /** Defines a string flag. */
  string(name: string, def: string, usage: string, shorthand = ""): StringValue {
    return this.define(name, new StringValue(def), usage, { shorthand });
  }

  /** Defines an int64 flag. */
  int64(name: string, def: bigint, usage: string, shorthand = ""): Int64Value {
    return this.define(name, new Int64Value(def), usage, { shorthand });
  }

  /** Defines an int flag (64-bit on etcdctl's platforms; pflag names the type "int"). */
  int(name: string, def: bigint, usage: string, shorthand = ""): Int64Value {
    return this.define(name, new Int64Value(def, 64, "int"), usage, { shorthand });
  }

  /** Defines a uint64 flag. */
  uint64(name: string, def: bigint, usage: string, shorthand = ""): Uint64Value {
    return this.define(name, new Uint64Value(def), usage, { shorthand });
  }

  /** Defines a duration flag (nanoseconds). */
  duration(name: string, def: bigint, usage: string, shorthand = ""): DurationValue {
    return this.define(name, new DurationValue(def), usage, { shorthand });
  }

  /** Defines a string-slice flag. */
  stringSlice(name: string, def: string[], usage: string, shorthand = ""): StringSliceValue {
    return this.define(name, new StringSliceValue(def), usage, { shorthand });
  }

  /** The flag called `name`, if defined. */
  lookup(name: string): Flag | undefined {
    return this.#formal.get(name);
  }

  /** The flag with one-letter shorthand `c`, if defined. */
  shorthandLookup(c: string): Flag | undefined {
    return this.#shorthands.get(c);
  }

  /** True when at least one flag is defined. */
  hasFlags(): boolean {
    return this.#formal.size > 0;
  }

  /** True when a flag that is neither hidden nor deprecated is defined. */
  hasAvailableFlags(): boolean {
    return this.#insertion.some((f) => !f.hidden && !f.deprecated);
  }

  /** Calls fn on every flag, in name order unless the set (or `sorted`) says otherwise. */
  visitAll(fn: (f: Flag) => void, sorted = this.sortFlags): void {
    const list = sorted
      ? [...this.#insertion].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      : this.#insertion;
    for (const f of list) fn(f);
  }

  /** Sets a flag by name like pflag's Set, marking it changed. */
  set(name: string, value: string): void {
    const flag = this.#formal.get(name);
    if (!flag) throw new FlagError(`no such flag -${name}`);
    try {
      flag.value.set(value);
    } catch (e) {
      const flagName = flag.shorthand !== ""
        ? `-${flag.shorthand}, --${flag.name}`
        : `--${flag.name}`;
      throw new FlagError(
        `invalid argument ${goQuote(value)} for ${goQuote(flagName)} flag: ${(e as Error).message}`,
      );
    }
    flag.changed = true;
  }

  /** True if the flag was set on the command line (or from the environment). */
  changed(name: string): boolean {
    return this.#formal.get(name)?.changed ?? false;
  }

  /** Parses `args` with pflag's rules; positional arguments end up in `this.args`. */
  parse(args: string[]): void {
    this.args = [];
    let rest = args;
    while (rest.length > 0) {
      const s = rest[0];
      rest = rest.slice(1);
      if (s.length === 0 || s[0] !== "-" || s.length === 1) {
        this.args.push(s);
        continue;
      }
      if (s[1] === "-") {
        if (s.length === 2) {
          this.argsLenAtDash = this.args.length;
          this.args.push(...rest);
          break;
        }
        rest = this.#parseLongArg(s, rest);
      } else {
        rest = this.#parseShortArg(s, rest);
      }
    }
  }

  #parseLongArg(s: string, args: string[]): string[] {
    let name = s.slice(2);
    if (name.length === 0 || name[0] === "-" || name[0] === "=") {
      throw new FlagError(`bad flag syntax: ${s}`);
    }
    const eq = name.indexOf("=");
    const hasValue = eq >= 0;
    const inline = hasValue ? name.slice(eq + 1) : "";
    if (hasValue) name = name.slice(0, eq);
    const flag = this.#formal.get(name);
    if (!flag) {
      if (name === "help") throw new HelpRequested();
      throw new FlagError(`unknown flag: --${name}`);
    }
    let value: string;
    if (hasValue) {
      value = inline;
    } else if (flag.noOptDefVal !== "") {
      value = flag.noOptDefVal;
    } else if (args.length > 0) {
      value = args[0];
      args = args.slice(1);
    } else {
      throw new FlagError(`flag needs an argument: ${s}`);
    }
    this.set(flag.name, value);
    return args;
  }

  #parseShortArg(s: string, args: string[]): string[] {
    let shorthands = s.slice(1);
    let out = args;
    while (shorthands.length > 0) {
      // pflag hands the original args to every shorthand of a group (e.g. "-iw json").
      [shorthands, out] = this.#parseSingleShortArg(shorthands, args);
    }
    return out;
  }

  #parseSingleShortArg(shorthands: string, args: string[]): [string, string[]] {
    let outArgs = args;
    if (shorthands.startsWith("test.")) return ["", outArgs];
    let outShorts = shorthands.slice(1);
    const c = shorthands[0];
    const flag = this.#shorthands.get(c);
    if (!flag) {
      if (c === "h") throw new HelpRequested();
      throw new FlagError(
        `unknown shorthand flag: ${goQuoteRune(c.charCodeAt(0))} in -${shorthands}`,
      );
    }
    let value: string;
    if (shorthands.length > 2 && shorthands[1] === "=") {
      value = shorthands.slice(2);
      outShorts = "";
    } else if (flag.noOptDefVal !== "") {
      value = flag.noOptDefVal;
    } else if (shorthands.length > 1) {
      value = shorthands.slice(1);
      outShorts = "";
    } else if (args.length > 0) {
      value = args[0];
      outArgs = args.slice(1);
    } else {
      throw new FlagError(
        `flag needs an argument: ${goQuoteRune(c.charCodeAt(0))} in -${shorthands}`,
      );
    }
    this.set(flag.name, value);
    return [outShorts, outArgs];
  }

  #typed<T extends FlagValue>(name: string, ctor: abstract new (...a: never[]) => T): T {
    const flag = this.#formal.get(name);
    if (!flag) throw new FlagError(`flag accessed but not defined: ${name}`);
    if (!(flag.value instanceof ctor)) {
      throw new FlagError(`trying to get ${ctor.name} value of flag of type ${flag.value.type()}`);
    }
    return flag.value;
  }

  /** The value of a bool flag. */
  getBool(name: string): boolean {
    return this.#typed(name, BoolValue).value;
  }

  /** The value of a string flag. */
  getString(name: string): string {
    return this.#typed(name, StringValue).value;
  }

  /** The value of an int64 (or int) flag. */
  getInt64(name: string): bigint {
    return this.#typed(name, Int64Value).value;
  }

  /** The value of a duration flag, in nanoseconds. */
  getDuration(name: string): bigint {
    return this.#typed(name, DurationValue).value;
  }

  /** The value of a string-slice flag. */
  getStringSlice(name: string): string[] {
    return [...this.#typed(name, StringSliceValue).value];
  }
}
