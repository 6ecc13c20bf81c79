/**
 * The output side of every detcdctl command, shaped like etcdctl's `printer` interface: one
 * method per kind of result, one implementation per `--write-out` format. A format that does
 * not support a result fails the run with "<format> not supported as output format" (exit 4),
 * after the RPC has already happened, exactly like etcdctl.
 *
 * Adding a command's output means adding a method here and to each format's class; formats
 * that do not support it inherit the failing default from UnsupportedPrinter.
 */

import type {
  AlarmResponse,
  DeleteRangeResponse,
  HashKVResponse,
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  MemberAddResponse,
  MemberListResponse,
  MemberPromoteResponse,
  MemberRemoveResponse,
  MemberUpdateResponse,
  MoveLeaderResponse,
  PutResponse,
  RangeResponse,
  StatusResponse,
  TxnResponse,
  WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { goHex, humanizeBytes } from "../go_format.ts";
import { ExitCode, ExitSignal } from "../io.ts";

/** Where printers write, and how they stop the run (etcdctl's ExitWithError). */
export interface PrinterOutput {
  stdout(data: string | Uint8Array): void;
  stderr(data: string | Uint8Array): void;
  /** Prints "Error: <message>" to stderr and ends the run with `code`. */
  fail(code: number, message: string): never;
}

/** One endpoint's health as `endpoint health` reports it. */
export interface EpHealth {
  ep: string;
  health: boolean;
  took: string;
  error: string;
}

/** One endpoint's status as `endpoint status` reports it. */
export interface EpStatus {
  ep: string;
  resp: StatusResponse;
}

/** One endpoint's KV hash as `endpoint hashkv` reports it. */
export interface EpHashKV {
  ep: string;
  resp: HashKVResponse;
}

/** A snapshot file's status as `snapshot status` reports it (clientv3/snapshot's Status). */
export interface DbStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** Formats results of commands for one `--write-out` format. */
export interface Printer {
  del(r: DeleteRangeResponse): void;
  get(r: RangeResponse): void;
  put(r: PutResponse): void;
  txn(r: TxnResponse): void;
  /**
   * One response of a clientv3 watch channel: only header, events, compactRevision, canceled
   * and created count (the struct clientv3 hands etcdctl has no watch ID).
   */
  watch(r: WatchResponse): void;
  grant(r: LeaseGrantResponse): void;
  revoke(id: bigint, r: LeaseRevokeResponse): void;
  keepAlive(r: LeaseKeepAliveResponse): void;
  timeToLive(r: LeaseTimeToLiveResponse, keys: boolean): void;
  leases(r: LeaseLeasesResponse): void;
  memberList(r: MemberListResponse): void;
  memberAdd(r: MemberAddResponse): void;
  memberRemove(id: bigint, r: MemberRemoveResponse): void;
  memberUpdate(id: bigint, r: MemberUpdateResponse): void;
  memberPromote(id: bigint, r: MemberPromoteResponse): void;
  moveLeader(leader: bigint, target: bigint, r: MoveLeaderResponse): void;
  alarm(r: AlarmResponse): void;
  endpointHealth(hs: EpHealth[]): void;
  endpointStatus(ss: EpStatus[]): void;
  endpointHashKV(hs: EpHashKV[]): void;
  dbStatus(s: DbStatus): void;
}

/** A printer whose every method fails as unsupported; formats override what they support. */
export class UnsupportedPrinter implements Printer {
  constructor(protected readonly out: PrinterOutput, private readonly format: string) {}
  protected unsupported(): never {
    this.out.fail(ExitCode.BadFeature, `${this.format} not supported as output format`);
  }
  del(_r: DeleteRangeResponse): void {
    this.unsupported();
  }
  get(_r: RangeResponse): void {
    this.unsupported();
  }
  put(_r: PutResponse): void {
    this.unsupported();
  }
  txn(_r: TxnResponse): void {
    this.unsupported();
  }
  watch(_r: WatchResponse): void {
    this.unsupported();
  }
  grant(_r: LeaseGrantResponse): void {
    this.unsupported();
  }
  revoke(_id: bigint, _r: LeaseRevokeResponse): void {
    this.unsupported();
  }
  keepAlive(_r: LeaseKeepAliveResponse): void {
    this.unsupported();
  }
  timeToLive(_r: LeaseTimeToLiveResponse, _keys: boolean): void {
    this.unsupported();
  }
  leases(_r: LeaseLeasesResponse): void {
    this.unsupported();
  }
  memberList(_r: MemberListResponse): void {
    this.unsupported();
  }
  memberAdd(_r: MemberAddResponse): void {
    this.unsupported();
  }
  memberRemove(_id: bigint, _r: MemberRemoveResponse): void {
    this.unsupported();
  }
  memberUpdate(_id: bigint, _r: MemberUpdateResponse): void {
    this.unsupported();
  }
  /**
   * etcdctl's printers other than simple have no MemberPromote of their own: the call reaches
   * a nil embedded printer and the process panics (exit 2) after the promotion took effect.
   */
  memberPromote(_id: bigint, _r: MemberPromoteResponse): void {
    goNilPanic(this.out);
  }
  moveLeader(_leader: bigint, _target: bigint, _r: MoveLeaderResponse): void {
    this.unsupported();
  }
  alarm(_r: AlarmResponse): void {
    this.unsupported();
  }
  endpointHealth(_hs: EpHealth[]): void {
    this.unsupported();
  }
  endpointStatus(_ss: EpStatus[]): void {
    this.unsupported();
  }
  endpointHashKV(_hs: EpHashKV[]): void {
    this.unsupported();
  }
  dbStatus(_s: DbStatus): void {
    this.unsupported();
  }
}

/**
 * etcdctl's printing of a txn's responses (printer_simple.go, printer_fields.go): each through
 * the printer's own del, put or get, so both formats walk a txn alike; `unknown` gets the case
 * of a response they do not know (undefined when unset), and `beforeEach` runs before every
 * response (simple's blank line).
 */
export function printTxnResponses(
  r: TxnResponse,
  p: Pick<Printer, "del" | "put" | "get">,
  unknown: (kind: string | undefined) => void,
  beforeEach?: () => void,
): void {
  for (const op of r.responses) {
    beforeEach?.();
    switch (op.response.case) {
      case "responseDeleteRange":
        p.del(op.response.value);
        break;
      case "responsePut":
        p.put(op.response.value);
        break;
      case "responseRange":
        p.get(op.response.value);
        break;
      default:
        unknown(op.response.case);
    }
  }
}

/**
 * What a Go program prints when it dereferences a nil pointer (the head of it: the goroutine
 * trace that follows names Go source files and addresses, and is not reproduced), then exit 2.
 */
export function goNilPanic(out: PrinterOutput): never {
  out.stderr(
    "panic: runtime error: invalid memory address or nil pointer dereference\n" +
      "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]\n\ngoroutine 1 [running]:\n",
  );
  throw new ExitSignal(2);
}

/** makeMemberListTable: the rows shared by the simple and table formats. */
export function memberListTable(r: MemberListResponse): { header: string[]; rows: string[][] } {
  const header = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"];
  const rows = r.members.map((m) => [
    goHex(m.ID),
    m.name.length === 0 ? "unstarted" : "started",
    m.name,
    m.peerURLs.join(","),
    m.clientURLs.join(","),
    m.isLearner ? "true" : "false",
  ]);
  return { header, rows };
}

/** makeEndpointHealthTable. */
export function endpointHealthTable(hs: EpHealth[]): { header: string[]; rows: string[][] } {
  return {
    header: ["endpoint", "health", "took", "error"],
    rows: hs.map((h) => [h.ep, String(h.health), h.took, h.error]),
  };
}

/** makeEndpointStatusTable. */
export function endpointStatusTable(ss: EpStatus[]): { header: string[]; rows: string[][] } {
  return {
    header: [
      "endpoint",
      "ID",
      "version",
      "db size",
      "is leader",
      "is learner",
      "raft term",
      "raft index",
      "raft applied index",
      "errors",
    ],
    rows: ss.map(({ ep, resp }) => {
      const memberId = resp.header?.memberId ?? 0n;
      return [
        ep,
        goHex(memberId),
        resp.version,
        humanizeBytes(resp.dbSize),
        String(resp.leader === memberId),
        String(resp.isLearner),
        resp.raftTerm.toString(),
        resp.raftIndex.toString(),
        resp.raftAppliedIndex.toString(),
        resp.errors.join(", "),
      ];
    }),
  };
}

/** makeEndpointHashKVTable. */
export function endpointHashKVTable(hs: EpHashKV[]): { header: string[]; rows: string[][] } {
  return {
    header: ["endpoint", "hash"],
    rows: hs.map((h) => [h.ep, String(h.resp.hash)]),
  };
}

/** fmt's %016x of an int64 (lease IDs are int64 in clientv3): a sign counts towards the width. */
/** makeDBStatusTable: hash in hex, revision, total keys, total size (go-humanize). */
export function dbStatusTable(s: DbStatus): { header: string[]; rows: string[][] } {
  return {
    header: ["hash", "revision", "total keys", "total size"],
    rows: [[
      s.hash.toString(16),
      String(s.revision),
      String(s.totalKey),
      humanizeBytes(s.totalSize),
    ]],
  };
}

export { goHexInt64Zero16 } from "../../core/go_hex.ts";
