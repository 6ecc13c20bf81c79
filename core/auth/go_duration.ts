/**
 * Go's time.ParseDuration for the JWT `ttl` option (`5m`, `1h30m`, `1.5s`, `300ms`), in
 * milliseconds, with Go's error texts, which etcd logs before refusing the option.
 */

const unitsNs: Record<string, number> = {
  ns: 1,
  us: 1e3,
  "\u00b5s": 1e3,
  "\u03bcs": 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** The largest Go duration (int64 nanoseconds). */
const MAX_NS = 9223372036854775807;

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** Parses a Go duration; throws Error(`time: invalid duration "…"`) and the like. */
export function parseGoDurationMs(orig: string): number {
  const invalid = () => new Error(`time: invalid duration ${quote(orig)}`);
  let s = orig;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw invalid();
  let totalNs = 0;
  while (s !== "") {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s)!;
    const whole = m[1];
    const frac = m[2];
    if (whole === "" && (frac === undefined || frac === "")) throw invalid();
    s = s.slice(m[0].length);
    const u = /^[^0-9.]*/.exec(s)![0];
    if (u === "") throw new Error(`time: missing unit in duration ${quote(orig)}`);
    const unit = unitsNs[u];
    if (unit === undefined) {
      throw new Error(`time: unknown unit ${quote(u)} in duration ${quote(orig)}`);
    }
    s = s.slice(u.length);
    const value = Number(whole === "" ? "0" : whole) + (frac ? Number(`0.${frac}`) : 0);
    totalNs += value * unit;
    if (totalNs > MAX_NS) throw invalid();
  }
  const ms = Math.trunc(totalNs) / 1e6;
  return neg ? -ms : ms;
}
