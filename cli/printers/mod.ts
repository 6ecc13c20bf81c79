/**
 * The `--write-out` formats and etcdctl's NewPrinter selection among them.
 *
 * @example
 * ```ts
 * import { newPrinter } from "./mod.ts";
 *
 * const out = {
 *   stdout: (d: string | Uint8Array) => void Deno.stdout.writeSync(
 *     typeof d === "string" ? new TextEncoder().encode(d) : d,
 *   ),
 *   stderr: (d: string | Uint8Array) => void Deno.stderr.writeSync(
 *     typeof d === "string" ? new TextEncoder().encode(d) : d,
 *   ),
 *   fail: (code: number, message: string): never => {
 *     throw new Error(`exit ${code}: ${message}`);
 *   },
 * };
 * newPrinter("simple", false, out); // SimplePrinter
 * newPrinter("yaml", false, out); // undefined: etcdctl says "unknown output format"
 * ```
 *
 * @module
 */

import { FieldsPrinter } from "./fields.ts";
import { JsonPrinter } from "./json.ts";
import type { Printer, PrinterOutput } from "./printer.ts";
import { ProtobufPrinter } from "./protobuf.ts";
import { SimplePrinter } from "./simple.ts";
import { TablePrinter } from "./table.ts";

export type { EpHashKV, EpHealth, EpStatus, Printer, PrinterOutput } from "./printer.ts";
export { SimplePrinter } from "./simple.ts";

/** etcdctl's NewPrinter: the printer for a format name, or undefined if unknown. */
export function newPrinter(
  format: string,
  isHex: boolean,
  out: PrinterOutput,
): Printer | undefined {
  switch (format) {
    case "simple":
      return new SimplePrinter(out, isHex);
    case "fields":
      return new FieldsPrinter(out);
    case "json":
      return new JsonPrinter(out);
    case "protobuf":
      return new ProtobufPrinter(out);
    case "table":
      return new TablePrinter(out);
  }
  return undefined;
}
