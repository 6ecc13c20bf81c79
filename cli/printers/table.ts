/** `-w table`: ASCII tables for member and endpoint listings; other results are unsupported. */

import type { MemberListResponse } from "../../gen/etcdserverpb/rpc_pb.ts";
import { renderTable } from "../table_writer.ts";
import {
  type DbStatus,
  dbStatusTable,
  endpointHashKVTable,
  endpointHealthTable,
  endpointStatusTable,
  type EpHashKV,
  type EpHealth,
  type EpStatus,
  memberListTable,
  type PrinterOutput,
  UnsupportedPrinter,
} from "./printer.ts";

/** The table format. */
export class TablePrinter extends UnsupportedPrinter {
  constructor(out: PrinterOutput) {
    super(out, "table");
  }

  #table(t: { header: string[]; rows: string[][] }): void {
    this.out.stdout(renderTable(t.header, t.rows));
  }

  override memberList(r: MemberListResponse): void {
    this.#table(memberListTable(r));
  }

  override endpointHealth(hs: EpHealth[]): void {
    this.#table(endpointHealthTable(hs));
  }

  override endpointStatus(ss: EpStatus[]): void {
    this.#table(endpointStatusTable(ss));
  }

  override endpointHashKV(hs: EpHashKV[]): void {
    this.#table(endpointHashKVTable(hs));
  }

  override dbStatus(s: DbStatus): void {
    this.#table(dbStatusTable(s));
  }
}
