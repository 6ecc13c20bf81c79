/**
 * The Watch stream at the gRPC level, side by side with etcd 3.4.23: the same requests on one
 * bidirectional stream against a real etcd member and a detcd member, and the responses compared
 * field by field (header revision, watch_id, created, canceled, cancel_reason, compact_revision,
 * fragment, events). Covers server- and client-chosen IDs, etcd's errors for a duplicate ID and an
 * empty range, cancel (and cancel of an unknown ID: no answer), progress requests, start_revision
 * replay with prev_kv, a compacted start revision, NOPUT, fragment by --max-request-bytes, and
 * progress_notify on --experimental-watch-progress-notify-interval.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  CompactionResponseSchema,
  LeaseGrantRequestSchema,
  LeaseGrantResponseSchema,
  LeaseRevokeRequestSchema,
  LeaseRevokeResponseSchema,
  PutRequestSchema,
  PutResponseSchema,
  WatchCreateRequest_FilterType,
  type WatchRequestSchema,
  WatchRequestSchema as WatchRequestDesc,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { encodeGrpcFrame, GrpcFrameDecoder } from "../core/wire/mod.ts";
import {
  assertReference,
  KvClient,
  type Member,
  type MemberKind,
  requireDetcd,
  requireReference,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  startMember,
} from "./harness.ts";

const ignore = requireReference().ignore || requireDetcd().ignore;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** One bidirectional Watch call over node:http2. */
class WatchCall {
  #session: http2.ClientHttp2Session;
  #stream: http2.ClientHttp2Stream;
  #frames = new GrpcFrameDecoder();
  #responses: WatchResponse[] = [];
  #waiter: (() => void) | null = null;

  constructor(endpoint: string) {
    this.#session = http2.connect(`http://${endpoint}`);
    this.#session.on("error", () => {});
    this.#stream = this.#session.request({
      ":method": "POST",
      ":path": "/etcdserverpb.Watch/Watch",
      "content-type": "application/grpc",
      "te": "trailers",
    });
    this.#stream.on("error", () => {});
    this.#stream.on("data", (chunk: Uint8Array) => {
      this.#frames.push(chunk);
      for (let m = this.#frames.next(); m !== null; m = this.#frames.next()) {
        this.#responses.push(fromBinary(WatchResponseSchema, m));
      }
      const w = this.#waiter;
      this.#waiter = null;
      w?.();
    });
  }

  send(init: MessageInitShape<typeof WatchRequestSchema>): void {
    this.#stream.write(encodeGrpcFrame(toBinary(WatchRequestDesc, create(WatchRequestDesc, init))));
  }

  /** The next response, or undefined after timeoutMs. */
  async next(timeoutMs = 3000): Promise<WatchResponse | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#responses.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#responses.shift();
  }

  /** Stops reading from the socket (HTTP/2 flow control then stops the server's sends). */
  pause(): void {
    this.#stream.pause();
  }

  resume(): void {
    this.#stream.resume();
  }

  close(): void {
    this.#session.destroy();
  }
}

function show(r: WatchResponse | undefined): string {
  if (!r) return "<none>";
  const events = r.events.map((e) => {
    const kv = e.kv!;
    const prev = e.prevKv ? ` prev=${dec.decode(e.prevKv.value)}` : "";
    return `${e.type === 0 ? "PUT" : "DELETE"} ${dec.decode(kv.key)}=${
      kv.value.length > 20 ? `<${kv.value.length} bytes>` : dec.decode(kv.value)
    }@${kv.modRevision}${prev}`;
  });
  return `rev=${r.header?.revision} id=${r.watchId} created=${r.created} canceled=${r.canceled} ` +
    `compact=${r.compactRevision} reason=${JSON.stringify(r.cancelReason)} frag=${r.fragment} ` +
    `[${events.join(", ")}]`;
}

async function put(kv: KvClient, key: string, value: string | Uint8Array): Promise<void> {
  await kv.call("/etcdserverpb.KV/Put", PutRequestSchema, PutResponseSchema, {
    key: enc.encode(key),
    value: typeof value === "string" ? enc.encode(value) : value,
  });
}

async function transcript(kind: MemberKind): Promise<string[]> {
  const member: Member = await startMember({
    kind,
    name: SHARED_MEMBER_NAME,
    advertisePeerUrl: SHARED_PEER_URL,
    extraArgs: ["--max-request-bytes=200000"],
  });
  const kv = new KvClient(member.endpoint);
  const w = new WatchCall(member.endpoint);
  const out: string[] = [];
  const step = async (label: string, count = 1, unordered = false) => {
    const lines: string[] = [];
    for (let i = 0; i < count; i++) lines.push(`${label}: ${show(await w.next())}`);
    // etcd notifies the watchers of one revision in Go map order, so responses for different
    // watch IDs of the same revision arrive in either order; compare them as a set.
    if (unordered) lines.sort();
    out.push(...lines);
  };
  const a = enc.encode("a");
  try {
    await put(kv, "a", "1"); // 2
    w.send({ requestUnion: { case: "createRequest", value: { key: a } } });
    await step("create auto id");
    w.send({
      requestUnion: { case: "createRequest", value: { key: enc.encode("b"), watchId: 5n } },
    });
    await step("create id 5");
    w.send({
      requestUnion: { case: "createRequest", value: { key: enc.encode("c"), watchId: 5n } },
    });
    await step("create duplicate id 5");
    w.send({
      requestUnion: {
        case: "createRequest",
        value: { key: enc.encode("b"), rangeEnd: enc.encode("a") },
      },
    });
    await step("create empty range");
    await put(kv, "a", "2"); // 3
    await step("event");
    w.send({ requestUnion: { case: "progressRequest", value: {} } });
    await step("progress request");
    w.send({ requestUnion: { case: "cancelRequest", value: { watchId: 5n } } });
    await step("cancel 5");
    w.send({ requestUnion: { case: "cancelRequest", value: { watchId: 99n } } });
    w.send({ requestUnion: { case: "progressRequest", value: {} } });
    await step("cancel unknown id, then progress");
    w.send({
      requestUnion: {
        case: "createRequest",
        value: { key: a, startRevision: 1n, prevKv: true, watchId: 7n },
      },
    });
    await step("replay from 1 with prev_kv", 2);
    w.send({
      requestUnion: {
        case: "createRequest",
        value: { key: a, filters: [WatchCreateRequest_FilterType.NOPUT], watchId: 8n },
      },
    });
    await step("create NOPUT");
    await put(kv, "a", "3"); // 4: ids 0 and 7 see it, 8 does not
    await step("put seen by two watchers", 2, true);
    await kv.call("/etcdserverpb.KV/Compact", CompactionRequestSchema, CompactionResponseSchema, {
      revision: 3n,
    });
    w.send({ requestUnion: { case: "createRequest", value: { key: a, startRevision: 2n } } });
    await step("create from a compacted revision", 2);
    const big = new Uint8Array(150_000).fill(120);
    for (let i = 0; i < 6; i++) await put(kv, `f${i}`, big); // 5..10
    await step("ignored: nobody watches f*", 0);
    w.send({
      requestUnion: {
        case: "createRequest",
        value: {
          key: enc.encode("f"),
          rangeEnd: enc.encode("g"),
          startRevision: 5n,
          fragment: true,
          watchId: 20n,
        },
      },
    });
    await step("fragmented replay", 3);
    // Nothing more may come: a progress request is answered after anything already sent, so the
    // next response must be that answer (not a fixed wait that a slow stream could outlast).
    w.send({ requestUnion: { case: "progressRequest", value: {} } });
    await step("then only the progress answer");
    return out;
  } finally {
    w.close();
    kv.close();
    await member.stop();
  }
}

Deno.test({
  name: "Watch stream, etcd vs detcd: IDs, errors, cancel, progress, replay, compaction, fragment",
  ignore,
  async fn() {
    assertReference();
    const [etcd, ours] = await Promise.all([transcript("etcd"), transcript("detcd")]);
    if (Deno.env.get("SHOW")) console.log(etcd.join("\n"));
    // The closing sentinel was answered (so the stream was read to a known end).
    assert.doesNotMatch(etcd.at(-1)!, /<none>/);
    assert.deepEqual(ours, etcd);
  },
});

async function progressNotify(kind: MemberKind): Promise<string[]> {
  const member = await startMember({
    kind,
    extraArgs: ["--experimental-watch-progress-notify-interval=1s"],
  });
  const kv = new KvClient(member.endpoint);
  const w = new WatchCall(member.endpoint);
  try {
    await put(kv, "x", "1");
    w.send({
      requestUnion: {
        case: "createRequest",
        value: { key: enc.encode("x"), progressNotify: true },
      },
    });
    const out = [show(await w.next())];
    out.push(show(await w.next(3000)));
    await put(kv, "x", "2");
    out.push(show(await w.next(3000)));
    return out.map((s) => s.replace(/^rev=\d+/, "rev=N"));
  } finally {
    w.close();
    kv.close();
    await member.stop();
  }
}

Deno.test({
  name: "#15220 progress_notify on --experimental-watch-progress-notify-interval, etcd vs detcd",
  ignore,
  async fn() {
    assertReference();
    const [etcd, ours] = await Promise.all([progressNotify("etcd"), progressNotify("detcd")]);
    assert.deepEqual(ours, etcd);
  },
});

Deno.test({
  name: "#17529, #16839: a watcher that stops reading gets every event later, in order, once; " +
    "a watcher on another connection is not stalled meanwhile (detcd)",
  ignore: requireDetcd().ignore,
  async fn() {
    const member = await startMember({ kind: "detcd" });
    const kv = new KvClient(member.endpoint);
    const slow = new WatchCall(member.endpoint);
    const fast = new WatchCall(member.endpoint);
    try {
      const create = {
        requestUnion: {
          case: "createRequest" as const,
          value: { key: enc.encode("s/"), rangeEnd: enc.encode("s0") },
        },
      };
      slow.send(create);
      fast.send(create);
      assert.ok((await slow.next())?.created);
      assert.ok((await fast.next())?.created);
      slow.pause();
      const value = new Uint8Array(20_000).fill(97);
      const total = 400; // 8 MB: far beyond HTTP/2 windows and the 128-response queue
      const revs = (rs: (WatchResponse | undefined)[]) =>
        rs.flatMap((r) => r?.events.map((e) => Number(e.kv!.modRevision)) ?? []);
      const fastRevs: number[] = [];
      for (let i = 0; i < total; i++) {
        await put(kv, `s/${i % 10}`, value);
        while (fastRevs.length < i + 1) {
          const r = await fast.next(5000);
          assert.ok(r, `fast watcher stalled at event ${fastRevs.length}`);
          fastRevs.push(...revs([r]));
        }
      }
      slow.resume();
      const slowRevs: number[] = [];
      while (slowRevs.length < total) {
        const r = await slow.next(10_000);
        assert.ok(r, `slow watcher got ${slowRevs.length} of ${total} events`);
        assert.ok(!r.canceled, `slow watcher canceled: ${r.cancelReason}`);
        slowRevs.push(...revs([r]));
      }
      assert.deepEqual(slowRevs, fastRevs);
      // Nothing repeated after that: a sentinel put is the very next event the slow watcher gets.
      const sentinel = await kv.put("s/sentinel", "end");
      const after = await slow.next(10_000);
      assert.deepEqual(
        revs([after]),
        [Number(sentinel.header?.revision)],
        `after all ${total} events: ${show(after)}`,
      );
    } finally {
      slow.close();
      fast.close();
      kv.close();
      await member.stop();
    }
  },
});

async function revokeTranscript(kind: MemberKind): Promise<string[]> {
  const member = await startMember({
    kind,
    name: SHARED_MEMBER_NAME,
    advertisePeerUrl: SHARED_PEER_URL,
  });
  const kv = new KvClient(member.endpoint);
  const w = new WatchCall(member.endpoint);
  try {
    const grant = await kv.call(
      "/etcdserverpb.Lease/LeaseGrant",
      LeaseGrantRequestSchema,
      LeaseGrantResponseSchema,
      { TTL: 600n, ID: 0x1234n },
    );
    for (const key of ["l/a", "l/b", "l/c"]) {
      await kv.call("/etcdserverpb.KV/Put", PutRequestSchema, PutResponseSchema, {
        key: enc.encode(key),
        value: enc.encode("v"),
        lease: grant.ID,
      });
    }
    w.send({
      requestUnion: {
        case: "createRequest",
        value: { key: enc.encode("l/"), rangeEnd: enc.encode("l0"), prevKv: true },
      },
    });
    const out = [show(await w.next())];
    await kv.call(
      "/etcdserverpb.Lease/LeaseRevoke",
      LeaseRevokeRequestSchema,
      LeaseRevokeResponseSchema,
      { ID: grant.ID },
    );
    out.push(show(await w.next()));
    // No further DELETE may follow in another response: the next one is a sentinel put's event.
    await put(kv, "l/sentinel", "end");
    out.push(show(await w.next()));
    return out;
  } finally {
    w.close();
    kv.close();
    await member.stop();
  }
}

Deno.test({
  name: "a lease revoke reaches watchers as the DELETEs of one revision, in one response",
  ignore,
  async fn() {
    assertReference();
    const [etcd, ours] = await Promise.all([revokeTranscript("etcd"), revokeTranscript("detcd")]);
    assert.match(
      etcd[1],
      /\[DELETE l\/a=@5 prev=v, DELETE l\/b=@5 prev=v, DELETE l\/c=@5 prev=v\]/,
    );
    assert.match(etcd[2], /\[PUT l\/sentinel=end@6\]/);
    assert.deepEqual(ours, etcd);
  },
});
