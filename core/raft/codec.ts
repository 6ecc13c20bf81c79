/**
 * Hand-written protobuf wire format for Raft's data (described by proto/detcdpb/raft.proto).
 * Raft messages and log entries cross the network and the WAL on every write, so this avoids a
 * generic reflection-based codec: one size pass, one write pass into a single buffer, no imports.
 * Field numbers follow etcd's raftpb where a field exists there, so dumps look familiar.
 *
 * Decoders reject malformed input (truncation, overlong varints, bad wire types, unknown enum
 * values, out-of-range numbers) with a `RaftDecodeError`; they never loop or throw a TypeError.
 */

import { putUvarint, putUvarint64, uvarint64Size, uvarintSize } from "../varint.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
  type SnapshotMetadata,
} from "./types.ts";

/** Raised for bytes that are not a valid encoding; callers treat the record or message as bad. */
export class RaftDecodeError extends Error {
  constructor(message: string) {
    super(`raft codec: ${message}`);
    this.name = "RaftDecodeError";
  }
}

const EMPTY = new Uint8Array(0);
const MAX_U64 = (1n << 64n) - 1n;

// Wire types.
const VARINT = 0;
const LEN = 2;

// ---------------------------------------------------------------------------------------------
// Sizes

function bigVarintSize(v: bigint): number {
  if (v < 0n || v > MAX_U64) throw new RangeError(`raft codec: id out of uint64 range: ${v}`);
  return uvarint64Size(v);
}

/** Size of a non-default uint field with a one-byte tag, 0 when omitted. */
function uintFieldSize(v: number): number {
  return v === 0 ? 0 : 1 + uvarintSize(v);
}

function idFieldSize(v: bigint): number {
  return v === 0n ? 0 : 1 + bigVarintSize(v);
}

function bytesFieldSize(b: Uint8Array): number {
  return b.length === 0 ? 0 : 1 + uvarintSize(b.length) + b.length;
}

function checkUint(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`raft codec: ${what} must be a non-negative safe integer, got ${v}`);
  }
}

/**
 * Encoded size of an entry. Also the size used to bound append messages and Ready batches
 * (`maxSizePerMsg`), so limits mean the same thing on the wire and in memory.
 */
export function entrySize(e: Entry): number {
  return uintFieldSize(e.type) + uintFieldSize(e.term) + uintFieldSize(e.index) +
    bytesFieldSize(e.data);
}

function confStateSize(cs: ConfState): number {
  return packedIdsFieldSize(cs.voters) + packedIdsFieldSize(cs.learners);
}

function packedIdsFieldSize(ids: NodeId[]): number {
  if (ids.length === 0) return 0;
  let n = 0;
  for (let i = 0; i < ids.length; i++) n += bigVarintSize(ids[i]);
  return 1 + uvarintSize(n) + n;
}

function packedIdsPayloadSize(ids: NodeId[]): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) n += bigVarintSize(ids[i]);
  return n;
}

function metadataSize(md: SnapshotMetadata): number {
  const cs = confStateSize(md.confState);
  return 1 + uvarintSize(cs) + cs + uintFieldSize(md.index) + uintFieldSize(md.term);
}

function snapshotSize(s: Snapshot): number {
  const md = metadataSize(s.metadata);
  return bytesFieldSize(s.data) + 1 + uvarintSize(md) + md;
}

// ---------------------------------------------------------------------------------------------
// Writer

class Writer {
  buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  tag(field: number, wire: number): void {
    this.buf[this.pos++] = (field << 3) | wire;
  }

  varint(v: number): void {
    this.pos = putUvarint(this.buf, this.pos, v);
  }

  bigVarint(v: bigint): void {
    this.pos = putUvarint64(this.buf, this.pos, v);
  }

  uintField(field: number, v: number): void {
    if (v === 0) return;
    this.tag(field, VARINT);
    this.varint(v);
  }

  idField(field: number, v: bigint): void {
    if (v === 0n) return;
    this.tag(field, VARINT);
    this.bigVarint(v);
  }

  bytesField(field: number, b: Uint8Array): void {
    if (b.length === 0) return;
    this.tag(field, LEN);
    this.varint(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  packedIds(field: number, ids: NodeId[]): void {
    if (ids.length === 0) return;
    this.tag(field, LEN);
    this.varint(packedIdsPayloadSize(ids));
    for (let i = 0; i < ids.length; i++) this.bigVarint(ids[i]);
  }

  entry(e: Entry): void {
    checkUint(e.term, "entry term");
    checkUint(e.index, "entry index");
    this.uintField(1, e.type);
    this.uintField(2, e.term);
    this.uintField(3, e.index);
    this.bytesField(4, e.data);
  }

  confState(cs: ConfState): void {
    this.packedIds(1, cs.voters);
    this.packedIds(2, cs.learners);
  }

  metadata(md: SnapshotMetadata): void {
    checkUint(md.index, "snapshot index");
    checkUint(md.term, "snapshot term");
    this.tag(1, LEN);
    this.varint(confStateSize(md.confState));
    this.confState(md.confState);
    this.uintField(2, md.index);
    this.uintField(3, md.term);
  }

  snapshot(s: Snapshot): void {
    this.bytesField(1, s.data);
    this.tag(2, LEN);
    this.varint(metadataSize(s.metadata));
    this.metadata(s.metadata);
  }

  finish(): Uint8Array {
    if (this.pos !== this.buf.length) {
      throw new Error(`raft codec: size mismatch ${this.pos} != ${this.buf.length}`);
    }
    return this.buf;
  }
}

// ---------------------------------------------------------------------------------------------
// Reader

class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, start: number, public end: number) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads a varint as a number; rejects values above 2^53 - 1 (indexes, terms, lengths). */
  varint(): number {
    const buf = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RaftDecodeError("truncated varint");
      const b = buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) throw new RaftDecodeError("integer too large");
        return result;
      }
      mul *= 128;
    }
    throw new RaftDecodeError("varint longer than 10 bytes");
  }

  /** Reads a full 64-bit unsigned varint (member IDs). */
  bigVarint(): bigint {
    const buf = this.buf;
    const start = this.pos;
    // Fast path: up to 7 bytes fit in 49 bits.
    let small = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw new RaftDecodeError("truncated varint");
      const b = buf[this.pos++];
      small += (b & 0x7f) * mul;
      if (b < 0x80) return BigInt(small);
      mul *= 128;
    }
    // Member IDs are random 64-bit numbers: the bits above 49 (at most 15, in three more bytes)
    // gathered in a number too, then one bigint made of the two parts.
    let high = 0;
    mul = 1;
    for (let i = 7; i < 10; i++) {
      if (this.pos >= this.end) throw new RaftDecodeError("truncated varint");
      const b = buf[this.pos++];
      high += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (high >= 0x8000) throw new RaftDecodeError("varint overflows uint64");
        return (BigInt(high) << 49n) | BigInt(small);
      }
      mul *= 128;
    }
    this.pos = start;
    throw new RaftDecodeError("varint longer than 10 bytes");
  }

  /** Reads a tag; returns field number * 8 + wire type. */
  tag(): number {
    const t = this.varint();
    if (t > 0xffffffff) throw new RaftDecodeError("tag out of range");
    if (t < 8) throw new RaftDecodeError("field number 0");
    return t;
  }

  /** Reads a length prefix and returns the end offset of the delimited region. */
  lenEnd(): number {
    const n = this.varint();
    const end = this.pos + n;
    if (end > this.end) throw new RaftDecodeError("length-delimited field overruns buffer");
    return end;
  }

  bytes(): Uint8Array {
    const end = this.lenEnd();
    const out = end === this.pos ? EMPTY : this.buf.slice(this.pos, end);
    this.pos = end;
    return out;
  }

  bool(): boolean {
    const v = this.varint();
    if (v > 1) throw new RaftDecodeError("bad bool");
    return v === 1;
  }

  skip(tag: number): void {
    switch (tag & 7) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.lenEnd();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new RaftDecodeError(`unsupported wire type ${tag & 7}`);
    }
    if (this.pos > this.end) throw new RaftDecodeError("truncated fixed field");
  }

  expectWire(tag: number, wire: number): void {
    if ((tag & 7) !== wire) throw new RaftDecodeError(`field ${tag >>> 3}: wrong wire type`);
  }

  entry(end: number): Entry {
    const e: Entry = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY };
    const outer = this.end;
    this.end = end;
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag >>> 3) {
        case 1:
          this.expectWire(tag, VARINT);
          e.type = entryType(this.varint());
          break;
        case 2:
          this.expectWire(tag, VARINT);
          e.term = this.varint();
          break;
        case 3:
          this.expectWire(tag, VARINT);
          e.index = this.varint();
          break;
        case 4:
          this.expectWire(tag, LEN);
          e.data = this.bytes();
          break;
        default:
          this.skip(tag);
      }
    }
    this.end = outer;
    return e;
  }

  ids(tag: number, out: NodeId[]): void {
    if ((tag & 7) === VARINT) {
      out.push(this.bigVarint());
      return;
    }
    this.expectWire(tag, LEN);
    const end = this.lenEnd();
    const outer = this.end;
    this.end = end;
    while (this.pos < end) out.push(this.bigVarint());
    this.end = outer;
  }

  confState(end: number): ConfState {
    const cs: ConfState = { voters: [], learners: [] };
    const outer = this.end;
    this.end = end;
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag >>> 3) {
        case 1:
          this.ids(tag, cs.voters);
          break;
        case 2:
          this.ids(tag, cs.learners);
          break;
        default:
          this.skip(tag);
      }
    }
    this.end = outer;
    return cs;
  }

  metadata(end: number): SnapshotMetadata {
    const md: SnapshotMetadata = { index: 0, term: 0, confState: { voters: [], learners: [] } };
    const outer = this.end;
    this.end = end;
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag >>> 3) {
        case 1: {
          this.expectWire(tag, LEN);
          const e = this.lenEnd();
          md.confState = this.confState(e);
          break;
        }
        case 2:
          this.expectWire(tag, VARINT);
          md.index = this.varint();
          break;
        case 3:
          this.expectWire(tag, VARINT);
          md.term = this.varint();
          break;
        default:
          this.skip(tag);
      }
    }
    this.end = outer;
    return md;
  }

  snapshot(end: number): Snapshot {
    const s: Snapshot = {
      metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
      data: EMPTY,
    };
    const outer = this.end;
    this.end = end;
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag >>> 3) {
        case 1:
          this.expectWire(tag, LEN);
          s.data = this.bytes();
          break;
        case 2: {
          this.expectWire(tag, LEN);
          const e = this.lenEnd();
          s.metadata = this.metadata(e);
          break;
        }
        default:
          this.skip(tag);
      }
    }
    this.end = outer;
    return s;
  }
}

function entryType(v: number): EntryType {
  if (v === 0) return EntryType.Normal;
  if (v === 1) return EntryType.ConfChange;
  throw new RaftDecodeError(`unknown entry type ${v}`);
}

function confChangeType(v: number): ConfChangeType {
  if (v >= 0 && v <= 3) return v as ConfChangeType;
  throw new RaftDecodeError(`unknown conf change type ${v}`);
}

function messageType(v: number): MessageType {
  if (v >= 0 && v <= 18) return v as MessageType;
  throw new RaftDecodeError(`unknown message type ${v}`);
}

// ---------------------------------------------------------------------------------------------
// Public encoders / decoders

/** Encodes one log entry (RaftEntry), as stored in the WAL. */
export function encodeEntry(e: Entry): Uint8Array {
  const w = new Writer(entrySize(e));
  w.entry(e);
  return w.finish();
}

/** Decodes a RaftEntry. */
export function decodeEntry(b: Uint8Array): Entry {
  const r = new Reader(b, 0, b.length);
  return r.entry(b.length);
}

/** Encodes a membership change (RaftConfChange), the `data` of a ConfChange entry. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const size = uintFieldSize(cc.type) + idFieldSize(cc.nodeId) + bytesFieldSize(cc.context);
  const w = new Writer(size);
  w.uintField(2, cc.type);
  w.idField(3, cc.nodeId);
  w.bytesField(4, cc.context);
  return w.finish();
}

/** Decodes a RaftConfChange. */
export function decodeConfChange(b: Uint8Array): ConfChange {
  const r = new Reader(b, 0, b.length);
  const cc: ConfChange = { type: ConfChangeType.AddNode, nodeId: 0n, context: EMPTY };
  while (!r.done()) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 2:
        r.expectWire(tag, VARINT);
        cc.type = confChangeType(r.varint());
        break;
      case 3:
        r.expectWire(tag, VARINT);
        cc.nodeId = r.bigVarint();
        break;
      case 4:
        r.expectWire(tag, LEN);
        cc.context = r.bytes();
        break;
      default:
        r.skip(tag);
    }
  }
  return cc;
}

/** Encodes a HardState (RaftHardState) for the WAL. */
export function encodeHardState(hs: HardState): Uint8Array {
  checkUint(hs.term, "term");
  checkUint(hs.commit, "commit");
  const w = new Writer(uintFieldSize(hs.term) + idFieldSize(hs.vote) + uintFieldSize(hs.commit));
  w.uintField(1, hs.term);
  w.idField(2, hs.vote);
  w.uintField(3, hs.commit);
  return w.finish();
}

/** Decodes a RaftHardState. */
export function decodeHardState(b: Uint8Array): HardState {
  const r = new Reader(b, 0, b.length);
  const hs: HardState = { term: 0, vote: 0n, commit: 0 };
  while (!r.done()) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        r.expectWire(tag, VARINT);
        hs.term = r.varint();
        break;
      case 2:
        r.expectWire(tag, VARINT);
        hs.vote = r.bigVarint();
        break;
      case 3:
        r.expectWire(tag, VARINT);
        hs.commit = r.varint();
        break;
      default:
        r.skip(tag);
    }
  }
  return hs;
}

/** Encodes a ConfState (RaftConfState). */
export function encodeConfState(cs: ConfState): Uint8Array {
  const w = new Writer(confStateSize(cs));
  w.confState(cs);
  return w.finish();
}

/** Decodes a RaftConfState (accepts packed and unpacked repeated ids). */
export function decodeConfState(b: Uint8Array): ConfState {
  return new Reader(b, 0, b.length).confState(b.length);
}

/** Encodes SnapshotMetadata (RaftSnapshotMetadata), stored beside application snapshots. */
export function encodeSnapshotMetadata(md: SnapshotMetadata): Uint8Array {
  const w = new Writer(metadataSize(md));
  w.metadata(md);
  return w.finish();
}

/** Decodes a RaftSnapshotMetadata. */
export function decodeSnapshotMetadata(b: Uint8Array): SnapshotMetadata {
  return new Reader(b, 0, b.length).metadata(b.length);
}

/** Encodes a Snapshot (RaftSnapshot). */
export function encodeSnapshot(s: Snapshot): Uint8Array {
  const w = new Writer(snapshotSize(s));
  w.snapshot(s);
  return w.finish();
}

/** Decodes a RaftSnapshot. */
export function decodeSnapshot(b: Uint8Array): Snapshot {
  return new Reader(b, 0, b.length).snapshot(b.length);
}

function messageSize(m: Message): number {
  let n = uintFieldSize(m.type) + idFieldSize(m.to) + idFieldSize(m.from) +
    uintFieldSize(m.term) + uintFieldSize(m.logTerm) + uintFieldSize(m.index) +
    uintFieldSize(m.commit) + (m.reject ? 2 : 0) + uintFieldSize(m.rejectHint) +
    bytesFieldSize(m.context);
  const ents = m.entries;
  for (let i = 0; i < ents.length; i++) {
    const s = entrySize(ents[i]);
    n += 1 + uvarintSize(s) + s;
  }
  if (m.snapshot !== null) {
    const s = snapshotSize(m.snapshot);
    n += 1 + uvarintSize(s) + s;
  }
  return n;
}

/** Encodes a Raft message (RaftMessage) for the peer transport. */
export function encodeMessage(m: Message): Uint8Array {
  checkUint(m.term, "term");
  checkUint(m.logTerm, "logTerm");
  checkUint(m.index, "index");
  checkUint(m.commit, "commit");
  checkUint(m.rejectHint, "rejectHint");
  const w = new Writer(messageSize(m));
  w.uintField(1, m.type);
  w.idField(2, m.to);
  w.idField(3, m.from);
  w.uintField(4, m.term);
  w.uintField(5, m.logTerm);
  w.uintField(6, m.index);
  const ents = m.entries;
  for (let i = 0; i < ents.length; i++) {
    const e = ents[i];
    w.tag(7, LEN);
    w.varint(entrySize(e));
    w.entry(e);
  }
  w.uintField(8, m.commit);
  if (m.snapshot !== null) {
    w.tag(9, LEN);
    w.varint(snapshotSize(m.snapshot));
    w.snapshot(m.snapshot);
  }
  if (m.reject) {
    w.tag(10, VARINT);
    w.varint(1);
  }
  w.uintField(11, m.rejectHint);
  w.bytesField(12, m.context);
  return w.finish();
}

/** Decodes a RaftMessage. */
export function decodeMessage(b: Uint8Array): Message {
  const r = new Reader(b, 0, b.length);
  const m: Message = {
    type: MessageType.Hup,
    to: 0n,
    from: 0n,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: EMPTY,
  };
  while (!r.done()) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        r.expectWire(tag, VARINT);
        m.type = messageType(r.varint());
        break;
      case 2:
        r.expectWire(tag, VARINT);
        m.to = r.bigVarint();
        break;
      case 3:
        r.expectWire(tag, VARINT);
        m.from = r.bigVarint();
        break;
      case 4:
        r.expectWire(tag, VARINT);
        m.term = r.varint();
        break;
      case 5:
        r.expectWire(tag, VARINT);
        m.logTerm = r.varint();
        break;
      case 6:
        r.expectWire(tag, VARINT);
        m.index = r.varint();
        break;
      case 7: {
        r.expectWire(tag, LEN);
        const end = r.lenEnd();
        m.entries.push(r.entry(end));
        break;
      }
      case 8:
        r.expectWire(tag, VARINT);
        m.commit = r.varint();
        break;
      case 9: {
        r.expectWire(tag, LEN);
        const end = r.lenEnd();
        m.snapshot = r.snapshot(end);
        break;
      }
      case 10:
        r.expectWire(tag, VARINT);
        m.reject = r.bool();
        break;
      case 11:
        r.expectWire(tag, VARINT);
        m.rejectHint = r.varint();
        break;
      case 12:
        r.expectWire(tag, LEN);
        m.context = r.bytes();
        break;
      default:
        r.skip(tag);
    }
  }
  return m;
}
