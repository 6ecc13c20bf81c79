/**
 * The Watch service's send path over a transport that can write frames at once (gRPC): events go
 * out from the write's notify itself, in order with the answers the send loop sends (created,
 * canceled), a frame the transport cannot take at once holds every later one until the client
 * has taken it, and a change of permissions sends nothing more before the watchers are checked.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  ResponseHeaderSchema,
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { MvccStore } from "../core/mvcc/store.ts";
import { write } from "../core/mvcc/_testing.ts";
import { WatchableStore } from "../core/mvcc/watch.ts";
import { GRPC_PREFIX_BYTES } from "../core/wire/mod.ts";
import type { CallContext, StreamSend } from "./grpc.ts";
import { type WatchHost, watchMethod } from "./watch_service.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A member with one store, and an auth whose permissions the test changes. */
function fixture() {
  const store = new MvccStore();
  const watchable = new WatchableStore(() => store);
  const auth = {
    revision: 1,
    permitted: true,
    authorizeWatch: () => Promise.resolve({ username: "alice" as string | null }),
    stillPermitted: () => auth.permitted,
    get authRevision() {
      return auth.revision;
    },
  };
  const host: WatchHost = {
    watchable,
    header: (revision) => create(ResponseHeaderSchema, { revision: BigInt(revision) }),
    leader: 1n,
    isLearner: false,
    auth,
  };
  const put = (key: string) => {
    const r = write(store, (tx) => tx.put(enc.encode(key), enc.encode("v"), 0n));
    watchable.notify(r.events, r.prevKvs);
  };
  return { host, auth, put };
}

/** A gRPC-like send: frames written at once are recorded; `room` says whether more may follow. */
function transport() {
  const got: WatchResponse[] = [];
  let room = true;
  let broken = false;
  let release: (() => void) | null = null;
  const decode = (frame: Uint8Array) =>
    fromBinary(WatchResponseSchema, frame.subarray(GRPC_PREFIX_BYTES));
  const send = Object.assign(
    (res: WatchResponse) => {
      got.push(res);
      return Promise.resolve();
    },
    {
      frame: (frame: Uint8Array) => {
        got.push(decode(frame));
        return Promise.resolve();
      },
      frameWith: (size: number, fill: (into: Uint8Array, at: number) => void) => {
        const out = new Uint8Array(size);
        fill(out, 0);
        got.push(decode(out));
        return Promise.resolve();
      },
      frameWithNow: (size: number, fill: (into: Uint8Array, at: number) => void) => {
        if (broken) throw new Error("connection broken");
        const out = new Uint8Array(size);
        fill(out, 0);
        got.push(decode(out));
        return room;
      },
      drained: () => new Promise<void>((resolve) => (release = resolve)),
    },
  ) as StreamSend<typeof WatchResponseSchema>;
  return {
    send,
    got,
    /** The next frame written at once asks the writer to wait. */
    full() {
      room = false;
    },
    /** The next frame written at once fails (a broken connection). */
    fail() {
      room = true;
      broken = true;
    },
    /** The client took everything. */
    drain() {
      room = true;
      const r = release;
      release = null;
      r?.();
    },
    keys: () => got.flatMap((r) => r.events.map((e) => dec.decode(e.kv!.key))),
  };
}

/** The request side of a stream: what the test pushes, until it ends. */
function requests() {
  const queue: WatchRequest[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  async function* iterate(): AsyncGenerator<WatchRequest> {
    while (true) {
      if (queue.length > 0) {
        yield queue.shift()!;
        continue;
      }
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
    }
  }
  return {
    iterable: iterate(),
    push(req: WatchRequest) {
      queue.push(req);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
  };
}

const turn = () => new Promise((r) => setTimeout(r, 0));

async function open(host: WatchHost, t: ReturnType<typeof transport>) {
  const [, method] = watchMethod(host);
  const abort = new AbortController();
  const reqs = requests();
  const ctx: CallContext = { headers: {}, signal: abort.signal };
  const handle = (method as unknown as {
    handle: (
      r: AsyncIterable<WatchRequest>,
      s: StreamSend<typeof WatchResponseSchema>,
      c: CallContext,
    ) => Promise<void>;
  }).handle;
  const done = handle(reqs.iterable, t.send, ctx);
  reqs.push(create(WatchRequestSchema, {
    requestUnion: {
      case: "createRequest",
      value: { key: enc.encode("a/"), rangeEnd: enc.encode("a0") },
    },
  }));
  await turn();
  assert(t.got.length === 1 && t.got[0].created, `created first: ${t.got.length} responses`);
  return Object.assign(async () => {
    abort.abort();
    reqs.end();
    await done;
  }, { done });
}

Deno.test("watch events are written from the write's notify, and wait for a client that must catch up", async () => {
  const { host, put } = fixture();
  const t = transport();
  const close = await open(host, t);
  try {
    put("a/1");
    // Written before anything else ran: no turn of the loop, no promise, per event.
    assertEquals(t.keys(), ["a/1"]);
    t.full();
    put("a/2"); // written, and the transport asks to wait
    put("a/3");
    put("a/4");
    assertEquals(t.keys(), ["a/1", "a/2"], "nothing more until the client took a/2");
    await turn();
    assertEquals(t.keys(), ["a/1", "a/2"], "still waiting");
    t.drain();
    await turn();
    assertEquals(t.keys(), ["a/1", "a/2", "a/3", "a/4"], "the rest, in order");
    put("a/5");
    assertEquals(t.keys(), ["a/1", "a/2", "a/3", "a/4", "a/5"], "at once again");
  } finally {
    await close();
  }
});

Deno.test("watch events after a change of permissions wait for the check, which cancels the watcher", async () => {
  const { host, auth, put } = fixture();
  const t = transport();
  const close = await open(host, t);
  try {
    put("a/1");
    assertEquals(t.keys(), ["a/1"]);
    auth.revision++;
    auth.permitted = false;
    put("a/2");
    await turn();
    assertEquals(t.keys(), ["a/1"], "a/2 is never sent");
    const last = t.got.at(-1)!;
    assert(last.canceled, "the watcher is canceled");
    put("a/3");
    await turn();
    assertEquals(t.keys(), ["a/1"]);
  } finally {
    await close();
  }
});

Deno.test("a watch frame that fails to be written ends the call with its error", async () => {
  const { host, put } = fixture();
  const t = transport();
  const close = await open(host, t);
  t.fail();
  put("a/1");
  let error: unknown = null;
  try {
    await close.done;
  } catch (e) {
    error = e;
  }
  assert(error instanceof Error && error.message === "connection broken", String(error));
});
