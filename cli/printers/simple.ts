/**
 * `-w simple`, etcdctl's default output: keys and values as raw bytes on their own lines (or
 * \x-escaped hex with --hex), "OK" for puts, counts for deletes, comma-separated rows for
 * member and endpoint listings.
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
  type MemberAddResponse,
  type MemberListResponse,
  type MemberPromoteResponse,
  type MemberRemoveResponse,
  type MemberUpdateResponse,
  type MoveLeaderResponse,
  type PutResponse,
  type RangeResponse,
  type TxnResponse,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType, type KeyValue } from "../../gen/mvccpb/kv_pb.ts";
import { goHex, goHexPadded } from "../go_format.ts";
import {
  type DbStatus,
  dbStatusTable,
  endpointHashKVTable,
  endpointStatusTable,
  type EpHashKV,
  type EpHealth,
  type EpStatus,
  goHexInt64Zero16,
  memberListTable,
  type Printer,
  type PrinterOutput,
  printTxnResponses,
} from "./printer.ts";

const HEX_DIGITS = "0123456789abcdef";

/** etcdctl's hex form of bytes: each byte as \xNN. */
export function hexEscaped(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += "\\x" + HEX_DIGITS[c >> 4] + HEX_DIGITS[c & 0xf];
  return s;
}

/** The simple format. */
export class SimplePrinter implements Printer {
  /** Set by `get --print-value-only`. */
  valueOnly = false;

  readonly #out: PrinterOutput;

  constructor(out: PrinterOutput, readonly isHex: boolean) {
    this.#out = out;
  }

  #kv(kv: KeyValue): void {
    if (this.isHex) {
      if (!this.valueOnly) this.#out.stdout(hexEscaped(kv.key) + "\n");
      this.#out.stdout(hexEscaped(kv.value) + "\n");
      return;
    }
    if (!this.valueOnly) {
      this.#out.stdout(kv.key);
      this.#out.stdout("\n");
    }
    this.#out.stdout(kv.value);
    this.#out.stdout("\n");
  }

  del(r: DeleteRangeResponse): void {
    this.#out.stdout(`${r.deleted}\n`);
    for (const kv of r.prevKvs) this.#kv(kv);
  }

  get(r: RangeResponse): void {
    for (const kv of r.kvs) this.#kv(kv);
  }

  put(r: PutResponse): void {
    this.#out.stdout("OK\n");
    if (r.prevKv) this.#kv(r.prevKv);
  }

  txn(r: TxnResponse): void {
    this.#out.stdout(r.succeeded ? "SUCCESS\n" : "FAILURE\n");
    printTxnResponses(
      r,
      this,
      (kind) => this.#out.stdout(`unexpected response ${JSON.stringify(kind ?? null)}\n`),
      () => this.#out.stdout("\n"),
    );
  }

  watch(r: WatchResponse): void {
    for (const e of r.events) {
      this.#out.stdout((Event_EventType[e.type] ?? String(e.type)) + "\n");
      if (e.prevKv) this.#kv(e.prevKv);
      if (e.kv) this.#kv(e.kv);
    }
  }
  grant(r: LeaseGrantResponse): void {
    this.#out.stdout(`lease ${goHexInt64Zero16(r.ID)} granted with TTL(${r.TTL}s)\n`);
  }
  revoke(id: bigint, _r: LeaseRevokeResponse): void {
    this.#out.stdout(`lease ${goHexInt64Zero16(id)} revoked\n`);
  }
  keepAlive(r: LeaseKeepAliveResponse): void {
    this.#out.stdout(`lease ${goHexInt64Zero16(r.ID)} keepalived with TTL(${r.TTL})\n`);
  }
  timeToLive(r: LeaseTimeToLiveResponse, keys: boolean): void {
    if (r.grantedTTL === 0n && r.TTL === -1n) {
      this.#out.stdout(`lease ${goHexInt64Zero16(r.ID)} already expired\n`);
      return;
    }
    const txt = `lease ${
      goHexInt64Zero16(r.ID)
    } granted with TTL(${r.grantedTTL}s), remaining(${r.TTL}s)`;
    const parts: (string | Uint8Array)[] = [txt];
    if (keys) {
      // %v of a []string: the raw bytes of each key, space-separated.
      parts.push(", attached keys([");
      r.keys.forEach((k, i) => {
        if (i > 0) parts.push(" ");
        parts.push(k);
      });
      parts.push("])");
    }
    parts.push("\n");
    for (const p of parts) this.#out.stdout(p);
  }
  leases(r: LeaseLeasesResponse): void {
    this.#out.stdout(`found ${r.leases.length} leases\n`);
    for (const l of r.leases) this.#out.stdout(`${goHexInt64Zero16(l.ID)}\n`);
  }
  alarm(r: AlarmResponse): void {
    // Go's %+v of an AlarmMember is its compact proto text form: zero fields left out (the
    // corruption check raises CORRUPT for member 0: "alarm:CORRUPT ").
    for (const a of r.alarms) {
      const member = a.memberID === 0n ? "" : `memberID:${a.memberID} `;
      const alarm = a.alarm === AlarmType.NONE ? "" : `alarm:${AlarmType[a.alarm]} `;
      this.#out.stdout(`${member}${alarm}\n`);
    }
  }

  memberList(r: MemberListResponse): void {
    for (const row of memberListTable(r).rows) this.#out.stdout(row.join(", ") + "\n");
  }

  memberAdd(r: MemberAddResponse): void {
    const id = goHexPadded(r.member?.ID ?? 0n, 16);
    this.#out.stdout(
      `Member ${id} added to cluster ${goHexPadded(r.header?.clusterId ?? 0n, 16)}\n`,
    );
  }

  memberRemove(id: bigint, r: MemberRemoveResponse): void {
    const cluster = goHexPadded(r.header?.clusterId ?? 0n, 16);
    this.#out.stdout(`Member ${goHexPadded(id, 16)} removed from cluster ${cluster}\n`);
  }

  memberUpdate(id: bigint, r: MemberUpdateResponse): void {
    const cluster = goHexPadded(r.header?.clusterId ?? 0n, 16);
    this.#out.stdout(`Member ${goHexPadded(id, 16)} updated in cluster ${cluster}\n`);
  }

  memberPromote(id: bigint, r: MemberPromoteResponse): void {
    const cluster = goHexPadded(r.header?.clusterId ?? 0n, 16);
    this.#out.stdout(`Member ${goHexPadded(id, 16)} promoted in cluster ${cluster}\n`);
  }

  moveLeader(leader: bigint, target: bigint, _r: MoveLeaderResponse): void {
    // types.ID's String(): plain lowercase hex.
    this.#out.stdout(`Leadership transferred from ${goHex(leader)} to ${goHex(target)}\n`);
  }

  endpointHealth(hs: EpHealth[]): void {
    for (const h of hs) {
      if (h.error === "") {
        this.#out.stderr(`${h.ep} is healthy: successfully committed proposal: took = ${h.took}\n`);
      } else {
        this.#out.stderr(`${h.ep} is unhealthy: failed to commit proposal: ${h.error}\n`);
      }
    }
  }

  endpointStatus(ss: EpStatus[]): void {
    for (const row of endpointStatusTable(ss).rows) this.#out.stdout(row.join(", ") + "\n");
  }

  endpointHashKV(hs: EpHashKV[]): void {
    for (const row of endpointHashKVTable(hs).rows) this.#out.stdout(row.join(", ") + "\n");
  }
  dbStatus(s: DbStatus): void {
    for (const row of dbStatusTable(s).rows) this.#out.stdout(row.join(", ") + "\n");
  }
}
