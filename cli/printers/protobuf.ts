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
  type MemberListResponse,
  MemberListResponseSchema,
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
}
