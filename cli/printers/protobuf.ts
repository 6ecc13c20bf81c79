/**
 * `-w protobuf`: the response message's wire encoding, written raw with no newline, for the
 * results that are protobuf messages; everything else is unsupported.
 */

import { toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import {
  type AlarmResponse,
  AlarmResponseSchema,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeResponse,
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
  type TxnResponse,
  TxnResponseSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { create } from "@bufbuild/protobuf";
import { ExitCode } from "../io.ts";
import { type PrinterOutput, UnsupportedPrinter } from "./printer.ts";

/** The protobuf format. */
export class ProtobufPrinter extends UnsupportedPrinter {
  constructor(out: PrinterOutput) {
    super(out, "protobuf");
  }

  #write<D extends DescMessage>(schema: D, msg: MessageShape<D>): void {
    this.out.stdout(toBinary(schema, msg, { writeUnknownFields: false }));
  }

  override del(r: DeleteRangeResponse): void {
    this.#write(DeleteRangeResponseSchema, r);
  }

  override get(r: RangeResponse): void {
    this.#write(RangeResponseSchema, r);
  }

  override put(r: PutResponse): void {
    this.#write(PutResponseSchema, r);
  }

  override txn(r: TxnResponse): void {
    this.#write(TxnResponseSchema, r);
  }

  override watch(r: WatchResponse): void {
    // etcdctl rebuilds a pb.WatchResponse from clientv3's struct: no watch ID, reason, fragment.
    this.#write(
      WatchResponseSchema,
      create(WatchResponseSchema, {
        header: r.header ?? create(ResponseHeaderSchema),
        events: r.events,
        compactRevision: r.compactRevision,
        canceled: r.canceled,
        created: r.created,
      }),
    );
  }
  // clientv3's lease responses embed *pb.ResponseHeader, whose Marshal method they inherit:
  // etcdctl writes the header alone.
  override grant(r: LeaseGrantResponse): void {
    this.#header(r.header);
  }
  override revoke(_id: bigint, r: LeaseRevokeResponse): void {
    // clientv3.LeaseRevokeResponse is a defined type with no methods: not marshalable.
    const text = r.header ? headerCompactText(r.header) : "<nil>";
    this.out.fail(
      ExitCode.BadFeature,
      `marshal unsupported for type clientv3.LeaseRevokeResponse ({${text}})`,
    );
  }
  override keepAlive(r: LeaseKeepAliveResponse): void {
    this.#header(r.header);
  }
  override timeToLive(r: LeaseTimeToLiveResponse, _keys: boolean): void {
    this.#header(r.header);
  }
  override leases(r: LeaseLeasesResponse): void {
    this.#header(r.header);
  }
  #header(h: ResponseHeader | undefined): void {
    this.#write(ResponseHeaderSchema, h ?? create(ResponseHeaderSchema));
  }
  override alarm(r: AlarmResponse): void {
    this.#write(AlarmResponseSchema, r);
  }

  override memberList(r: MemberListResponse): void {
    this.#write(MemberListResponseSchema, r);
  }

  override memberAdd(r: MemberAddResponse): void {
    this.#write(MemberAddResponseSchema, r);
  }

  override memberRemove(_id: bigint, r: MemberRemoveResponse): void {
    this.#write(MemberRemoveResponseSchema, r);
  }

  override memberUpdate(_id: bigint, r: MemberUpdateResponse): void {
    this.#write(MemberUpdateResponseSchema, r);
  }

  override moveLeader(_leader: bigint, _target: bigint, r: MoveLeaderResponse): void {
    this.#write(MoveLeaderResponseSchema, r);
  }
}

/** proto.CompactTextString of a ResponseHeader: set fields as "name:value ", in field order. */
function headerCompactText(h: ResponseHeader): string {
  let s = "";
  if (h.clusterId !== 0n) s += `cluster_id:${h.clusterId} `;
  if (h.memberId !== 0n) s += `member_id:${h.memberId} `;
  if (h.revision !== 0n) s += `revision:${h.revision} `;
  if (h.raftTerm !== 0n) s += `raft_term:${h.raftTerm} `;
  return s;
}
