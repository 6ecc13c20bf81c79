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
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeResponse,
  LeaseRevokeResponseSchema,
  type LeaseTimeToLiveResponse,
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
  type ResponseHeader,
  ResponseHeaderSchema,
  StatusResponseSchema,
  type TxnResponse,
  TxnResponseSchema,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { create } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/mvccpb/kv_pb.ts";
import { base64Std, goJsonString } from "../go_format.ts";
import { goJsonMessage } from "./go_json.ts";
import {
  type DbStatus,
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

  #line(s: string): void {
    this.out.stdout(s + "\n");
  }

  override del(r: DeleteRangeResponse): void {
    this.#line(goJsonMessage(DeleteRangeResponseSchema, r));
  }

  override get(r: RangeResponse): void {
    this.#line(goJsonMessage(RangeResponseSchema, r));
  }

  override put(r: PutResponse): void {
    this.#line(goJsonMessage(PutResponseSchema, r));
  }

  override txn(r: TxnResponse): void {
    this.#line(goJsonMessage(TxnResponseSchema, r));
  }

  override watch(r: WatchResponse): void {
    // clientv3.WatchResponse: exported fields without json tags, Header by value.
    const header = goJsonMessage(ResponseHeaderSchema, r.header ?? create(ResponseHeaderSchema));
    const events = r.events.map((e) => goJsonMessage(EventSchema, e)).join(",");
    this.#line(
      `{"Header":${header},"Events":[${events}],"CompactRevision":${r.compactRevision},` +
        `"Canceled":${r.canceled},"Created":${r.created}}`,
    );
  }
  override grant(r: LeaseGrantResponse): void {
    this.#line(
      embedded(r.header, [`"ID":${r.ID}`, `"TTL":${r.TTL}`, `"Error":${goJsonString(r.error)}`]),
    );
  }
  override revoke(_id: bigint, r: LeaseRevokeResponse): void {
    this.#line(goJsonMessage(LeaseRevokeResponseSchema, r));
  }
  override keepAlive(r: LeaseKeepAliveResponse): void {
    this.#line(embedded(r.header, [`"ID":${r.ID}`, `"TTL":${r.TTL}`]));
  }
  override timeToLive(r: LeaseTimeToLiveResponse, _keys: boolean): void {
    const keys = r.keys.length === 0
      ? "null"
      : "[" + r.keys.map((k) => '"' + base64Std(k) + '"').join(",") + "]";
    this.#line(
      embedded(r.header, [
        `"id":${r.ID}`,
        `"ttl":${r.TTL}`,
        `"granted-ttl":${r.grantedTTL}`,
        `"keys":${keys}`,
      ]),
    );
  }
  override leases(r: LeaseLeasesResponse): void {
    const leases = r.leases.map((l) => `{"id":${l.ID}}`).join(",");
    this.#line(embedded(r.header, [`"leases":[${leases}]`]));
  }
  override alarm(r: AlarmResponse): void {
    this.#line(goJsonMessage(AlarmResponseSchema, r));
  }

  override memberList(r: MemberListResponse): void {
    this.#line(goJsonMessage(MemberListResponseSchema, r));
  }

  override memberAdd(r: MemberAddResponse): void {
    this.#line(goJsonMessage(MemberAddResponseSchema, r));
  }

  override memberRemove(_id: bigint, r: MemberRemoveResponse): void {
    this.#line(goJsonMessage(MemberRemoveResponseSchema, r));
  }

  override memberUpdate(_id: bigint, r: MemberUpdateResponse): void {
    this.#line(goJsonMessage(MemberUpdateResponseSchema, r));
  }

  override moveLeader(_leader: bigint, _target: bigint, r: MoveLeaderResponse): void {
    this.#line(goJsonMessage(MoveLeaderResponseSchema, r));
  }

  override endpointHealth(hs: EpHealth[]): void {
    const items = hs.map((h) => {
      let s = `{"endpoint":${goJsonString(h.ep)},"health":${h.health},"took":${
        goJsonString(h.took)
      }`;
      if (h.error !== "") s += `,"error":${goJsonString(h.error)}`;
      return s + "}";
    });
    this.#line("[" + items.join(",") + "]");
  }

  override endpointStatus(ss: EpStatus[]): void {
    const items = ss.map((s) =>
      `{"Endpoint":${goJsonString(s.ep)},"Status":${goJsonMessage(StatusResponseSchema, s.resp)}}`
    );
    this.#line("[" + items.join(",") + "]");
  }

  override dbStatus(s: DbStatus): void {
    this.#line(
      `{"hash":${s.hash},"revision":${s.revision},"totalKey":${s.totalKey},"totalSize":${s.totalSize}}`,
    );
  }
  override endpointHashKV(hs: EpHashKV[]): void {
    const items = hs.map((h) =>
      `{"Endpoint":${goJsonString(h.ep)},"HashKV":${goJsonMessage(HashKVResponseSchema, h.resp)}}`
    );
    this.#line("[" + items.join(",") + "]");
  }
}

/**
 * A clientv3 lease response struct as encoding/json writes it: the embedded *ResponseHeader's
 * fields promoted to the top level (absent when nil), then the struct's own fields.
 */
function embedded(header: ResponseHeader | undefined, own: string[]): string {
  const h = header ? goJsonMessage(ResponseHeaderSchema, header).slice(1, -1) : "";
  return "{" + [h, ...own].filter((p) => p !== "").join(",") + "}";
}
