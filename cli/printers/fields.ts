/**
 * `-w fields`: one `"Name" : value` line per field, strings quoted Go-style (%q), as etcdctl's
 * fields printer writes them for scripts that grep single fields.
 */

import {
  type AlarmResponse,
  AlarmType,
  type DeleteRangeResponse,
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveResponse,
  type MemberListResponse,
  type PutResponse,
  type RangeResponse,
  type ResponseHeader,
  type TxnResponse,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType, type KeyValue } from "../../gen/mvccpb/kv_pb.ts";
import { goQuote, goSliceString } from "../go_format.ts";
import { ExitSignal } from "../io.ts";
import {
  type DbStatus,
  type EpHashKV,
  type EpHealth,
  type EpStatus,
  type PrinterOutput,
  printTxnResponses,
  UnsupportedPrinter,
} from "./printer.ts";

/** The fields format. */
export class FieldsPrinter extends UnsupportedPrinter {
  constructor(out: PrinterOutput) {
    super(out, "fields");
  }

  #w(s: string): void {
    this.out.stdout(s + "\n");
  }

  #kv(pfx: string, kv: KeyValue): void {
    this.#w(`"${pfx}Key" : ${goQuote(kv.key)}`);
    this.#w(`"${pfx}CreateRevision" : ${kv.createRevision}`);
    this.#w(`"${pfx}ModRevision" : ${kv.modRevision}`);
    this.#w(`"${pfx}Version" : ${kv.version}`);
    this.#w(`"${pfx}Value" : ${goQuote(kv.value)}`);
    this.#w(`"${pfx}Lease" : ${kv.lease}`);
  }

  #hdr(h: ResponseHeader | undefined): void {
    this.#w(`"ClusterID" : ${h?.clusterId ?? 0n}`);
    this.#w(`"MemberID" : ${h?.memberId ?? 0n}`);
    this.#w(`"Revision" : ${h?.revision ?? 0n}`);
    this.#w(`"RaftTerm" : ${h?.raftTerm ?? 0n}`);
  }

  override del(r: DeleteRangeResponse): void {
    this.#hdr(r.header);
    this.#w(`"Deleted" : ${r.deleted}`);
    for (const kv of r.prevKvs) this.#kv("Prev", kv);
  }

  override get(r: RangeResponse): void {
    this.#hdr(r.header);
    for (const kv of r.kvs) this.#kv("", kv);
    this.#w(`"More" : ${r.more}`);
    this.#w(`"Count" : ${r.count}`);
  }

  override put(r: PutResponse): void {
    this.#hdr(r.header);
    if (r.prevKv) this.#kv("Prev", r.prevKv);
  }

  override txn(r: TxnResponse): void {
    this.#hdr(r.header);
    this.#w(`"Succeeded" : ${r.succeeded}`);
    printTxnResponses(
      r,
      this,
      (kind) => this.#w(`"Unknown" : ${goQuote(String(kind ?? "<nil>"))}`),
    );
  }

  override watch(r: WatchResponse): void {
    this.#hdr(r.header);
    for (const e of r.events) {
      this.#w(`"Type" : ${Event_EventType[e.type] ?? String(e.type)}`);
      if (e.prevKv) this.#kv("Prev", e.prevKv);
      if (e.kv) this.#kv("", e.kv);
    }
  }
  override grant(r: LeaseGrantResponse): void {
    this.#hdr(r.header);
    this.#w(`"ID" : ${r.ID}`);
    this.#w(`"TTL" : ${r.TTL}`);
  }
  override revoke(_id: bigint, r: LeaseRevokeResponse): void {
    this.#hdr(r.header);
  }
  override keepAlive(r: LeaseKeepAliveResponse): void {
    this.#hdr(r.header);
    this.#w(`"ID" : ${r.ID}`);
    this.#w(`"TTL" : ${r.TTL}`);
  }
  override timeToLive(r: LeaseTimeToLiveResponse, _keys: boolean): void {
    this.#hdr(r.header);
    this.#w(`"ID" : ${r.ID}`);
    this.#w(`"TTL" : ${r.TTL}`);
    this.#w(`"GrantedTTL" : ${r.grantedTTL}`);
    for (const k of r.keys) this.#w(`"Key" : ${goQuote(k)}`);
  }
  override leases(r: LeaseLeasesResponse): void {
    this.#hdr(r.header);
    for (const l of r.leases) this.#w(`"ID" : ${l.ID}`);
  }
  override alarm(r: AlarmResponse): void {
    if (r.header === undefined) {
      // etcdctl dereferences the missing header and crashes; so do we, the same way.
      this.out.stderr(
        "panic: runtime error: invalid memory address or nil pointer dereference\n" +
          "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]\n\ngoroutine 1 [running]:\n",
      );
      throw new ExitSignal(2);
    }
    this.#hdr(r.header);
    for (const a of r.alarms) {
      this.#w(`"MemberID" : ${a.memberID}`);
      this.#w(`"AlarmType" : ${AlarmType[a.alarm]}`);
      this.#w("");
    }
  }

  override memberList(r: MemberListResponse): void {
    this.#hdr(r.header);
    for (const m of r.members) {
      this.#w(`"ID" : ${m.ID}`);
      this.#w(`"Name" : ${goQuote(m.name)}`);
      for (const u of m.peerURLs) this.#w(`"PeerURL" : ${goQuote(u)}`);
      for (const u of m.clientURLs) this.#w(`"ClientURL" : ${goQuote(u)}`);
      this.#w(`"IsLearner" : ${m.isLearner}`);
      this.#w("");
    }
  }

  override endpointHealth(hs: EpHealth[]): void {
    for (const h of hs) {
      this.#w(`"Endpoint" : ${goQuote(h.ep)}`);
      this.#w(`"Health" : ${h.health}`);
      this.#w(`"Took" : ${h.took}`);
      this.#w(`"Error" : ${h.error}`);
      this.#w("");
    }
  }

  override endpointStatus(ss: EpStatus[]): void {
    for (const { ep, resp } of ss) {
      this.#hdr(resp.header);
      this.#w(`"Version" : ${goQuote(resp.version)}`);
      this.#w(`"DBSize" : ${resp.dbSize}`);
      this.#w(`"Leader" : ${resp.leader}`);
      this.#w(`"IsLearner" : ${resp.isLearner}`);
      this.#w(`"RaftIndex" : ${resp.raftIndex}`);
      this.#w(`"RaftTerm" : ${resp.raftTerm}`);
      this.#w(`"RaftAppliedIndex" : ${resp.raftAppliedIndex}`);
      this.#w(`"Errors" : ${goSliceString(resp.errors)}`);
      this.#w(`"Endpoint" : ${goQuote(ep)}`);
      this.#w("");
    }
  }

  override dbStatus(s: DbStatus): void {
    this.#w(`"Hash" : ${s.hash}`);
    this.#w(`"Revision" : ${s.revision}`);
    this.#w(`"Keys" : ${s.totalKey}`);
    this.#w(`"Size" : ${s.totalSize}`);
  }
  override endpointHashKV(hs: EpHashKV[]): void {
    for (const { ep, resp } of hs) {
      this.#hdr(resp.header);
      this.#w(`"Endpoint" : ${goQuote(ep)}`);
      this.#w(`"Hash" : ${resp.hash}`);
      this.#w("");
    }
  }
}
