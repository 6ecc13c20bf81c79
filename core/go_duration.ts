/** Go's time.Duration.String(), for durations etcd logs (zap writes them this way). */

/** The fraction of `v` with `prec` digits, trailing zeros dropped (Go's fmtFrac). */
function split(v: bigint, prec: number): { whole: bigint; frac: string } {
  const unit = 10n ** BigInt(prec);
  const digits = (v % unit).toString().padStart(prec, "0").replace(/0+$/, "");
  return { whole: v / unit, frac: digits === "" ? "" : `.${digits}` };
}

/** A duration given in milliseconds (rounded to nanoseconds) as Go prints it: "1.5ms", "2m3.5s". */
export function formatGoDurationMs(ms: number): string {
  let ns = BigInt(Math.round(ms * 1e6));
  if (ns === 0n) return "0s";
  const sign = ns < 0n ? "-" : "";
  if (ns < 0n) ns = -ns;
  if (ns < 1_000_000_000n) {
    if (ns < 1000n) return `${sign}${ns}ns`;
    const [prec, unit] = ns < 1_000_000n ? [3, "µs"] : [6, "ms"];
    const { whole, frac } = split(ns, prec);
    return `${sign}${whole}${frac}${unit}`;
  }
  const { whole: seconds, frac } = split(ns, 9);
  const s = seconds % 60n;
  const minutes = seconds / 60n;
  if (minutes === 0n) return `${sign}${s}${frac}s`;
  const m = minutes % 60n;
  const hours = minutes / 60n;
  return hours === 0n ? `${sign}${m}m${s}${frac}s` : `${sign}${hours}h${m}m${s}${frac}s`;
}
