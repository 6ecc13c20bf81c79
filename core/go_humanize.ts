/** go-humanize's byte sizes, for the numbers etcd prints and logs that way. */

/** Go's %.0f: round half to even on the exact binary value (JS toFixed rounds half up). */
function formatFixed0(v: number): string {
  const fl = Math.floor(v);
  if (v - fl === 0.5) return (fl % 2 === 0 ? fl : fl + 1).toFixed(0);
  return v.toFixed(0);
}

/** go-humanize Bytes (SI units): "20 kB", "1.5 MB", "7 B". */
export function humanizeBytes(size: bigint | number): string {
  const s = typeof size === "bigint" ? Number(BigInt.asUintN(64, size)) : size;
  if (s < 10) return `${s} B`;
  const sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
  const e = Math.floor(Math.log(s) / Math.log(1000));
  const suffix = sizes[e];
  const val = Math.floor((s / Math.pow(1000, e)) * 10 + 0.5) / 10;
  return val < 10 ? `${val.toFixed(1)} ${suffix}` : `${formatFixed0(val)} ${suffix}`;
}
