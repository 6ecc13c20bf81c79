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
  type TxnResponse,
  TxnResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { type PrinterOutput, UnsupportedPrinter } from "./printer.ts";

/** The protobuf format. */
export class ProtobufPrinter extends UnsupportedPrinter {
  constructor(out: PrinterOutput) {
    super(out, "protobuf");
  }

  private write<D extends DescMessage>(schema: D, msg: MessageShape<D>): void {
    this.out.stdout(toBinary(schema, msg, { writeUnknownFields: false }));
  }

  override del(r: DeleteRangeResponse): void {
    this.write(DeleteRangeResponseSchema, r);
  }

  override get(r: RangeResponse): void {
    this.write(RangeResponseSchema, r);
  }

  override put(r: PutResponse): void {
    this.write(PutResponseSchema, r);
  }

  override txn(r: TxnResponse): void {
    this.write(TxnResponseSchema, r);
  }

  override alarm(r: AlarmResponse): void {
    this.write(AlarmResponseSchema, r);
  }

  override memberList(r: MemberListResponse): void {
    this.write(MemberListResponseSchema, r);
  }

  override memberAdd(r: MemberAddResponse): void {
    this.write(MemberAddResponseSchema, r);
  }

  override memberRemove(_id: bigint, r: MemberRemoveResponse): void {
    this.write(MemberRemoveResponseSchema, r);
  }

  override memberUpdate(_id: bigint, r: MemberUpdateResponse): void {
    this.write(MemberUpdateResponseSchema, r);
  }

  override moveLeader(_leader: bigint, _target: bigint, r: MoveLeaderResponse): void {
    this.write(MoveLeaderResponseSchema, r);
  }
}
