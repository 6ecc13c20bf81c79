/**
 * `-w json`: Go's encoding/json of the response structs (see go_json.ts), one line each.
 * Endpoint results use etcdctl's own wrapper structs ({"Endpoint":...,"Status":{...}}).
 */

import {
  type AlarmResponse,
  AlarmResponseSchema,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  HashKVResponseSchema,
  type MemberAddResponse,
  MemberAddResponseSchema,
  type MemberListResponse,
  MemberListResponseSchema,
  type MemberRemoveResponse,
  MemberRemoveResponseSchema,
  type MemberUpdateResponse,
  MemberUpdateResponseSchema,
  type MoveLeaderResponse,
  MoveLeaderResponseSchema,
  type PutResponse,
  PutResponseSchema,
  type RangeResponse,
  RangeResponseSchema,
  StatusResponseSchema,
  type TxnResponse,
  TxnResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { goJsonString } from "../go_format.ts";
import { goJsonMessage } from "./go_json.ts";
import {
  type EpHashKV,
  type EpHealth,
  type EpStatus,
  type PrinterOutput,
  UnsupportedPrinter,
} from "./printer.ts";

/** The json format. */
export class JsonPrinter extends UnsupportedPrinter {
  constructor(out: PrinterOutput) {
    super(out, "json");
  }

  private line(s: string): void {
    this.out.stdout(s + "\n");
  }

  override del(r: DeleteRangeResponse): void {
    this.line(goJsonMessage(DeleteRangeResponseSchema, r));
  }

  override get(r: RangeResponse): void {
    this.line(goJsonMessage(RangeResponseSchema, r));
  }

  override put(r: PutResponse): void {
    this.line(goJsonMessage(PutResponseSchema, r));
  }

  override txn(r: TxnResponse): void {
    this.line(goJsonMessage(TxnResponseSchema, r));
  }

  override alarm(r: AlarmResponse): void {
    this.line(goJsonMessage(AlarmResponseSchema, r));
  }

  override memberList(r: MemberListResponse): void {
    this.line(goJsonMessage(MemberListResponseSchema, r));
  }

  override memberAdd(r: MemberAddResponse): void {
    this.line(goJsonMessage(MemberAddResponseSchema, r));
  }

  override memberRemove(_id: bigint, r: MemberRemoveResponse): void {
    this.line(goJsonMessage(MemberRemoveResponseSchema, r));
  }

  override memberUpdate(_id: bigint, r: MemberUpdateResponse): void {
    this.line(goJsonMessage(MemberUpdateResponseSchema, r));
  }

  override moveLeader(_leader: bigint, _target: bigint, r: MoveLeaderResponse): void {
    this.line(goJsonMessage(MoveLeaderResponseSchema, r));
  }

  override endpointHealth(hs: EpHealth[]): void {
    const items = hs.map((h) => {
      let s = `{"endpoint":${goJsonString(h.ep)},"health":${h.health},"took":${
        goJsonString(h.took)
      }`;
      if (h.error !== "") s += `,"error":${goJsonString(h.error)}`;
      return s + "}";
    });
    this.line("[" + items.join(",") + "]");
  }

  override endpointStatus(ss: EpStatus[]): void {
    const items = ss.map((s) =>
      `{"Endpoint":${goJsonString(s.ep)},"Status":${goJsonMessage(StatusResponseSchema, s.resp)}}`
    );
    this.line("[" + items.join(",") + "]");
  }

  override endpointHashKV(hs: EpHashKV[]): void {
    const items = hs.map((h) =>
      `{"Endpoint":${goJsonString(h.ep)},"HashKV":${goJsonMessage(HashKVResponseSchema, h.resp)}}`
    );
    this.line("[" + items.join(",") + "]");
  }
}
