/**
 * Go's `%016x` of an int64 (how etcdctl prints lease IDs): sixteen hex digits with leading zeros,
 * a negative value as `-` and fifteen. One copy for detcdctl's printers and the web console.
 */
export function goHexInt64Zero16(v: bigint): string {
  if (v < 0n) return "-" + (-v).toString(16).padStart(15, "0");
  return v.toString(16).padStart(16, "0");
}
