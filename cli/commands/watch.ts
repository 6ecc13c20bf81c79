/**
 * `watch` as etcdctl 3.4.23 runs it (watch_command.go): its raw-argument rules (ETCDCTL_WATCH_KEY
 * and ETCDCTL_WATCH_RANGE_END, `-- command args`), interactive mode (`watch ...` and `progress`
 * lines on stdin), a command run per event with ETCD_WATCH_* variables, and clientv3's watcher
 * (watch.go) underneath: one Watch stream per client carrying every watch, creates sent one at a
 * time, fragments merged, progress notifications broadcast, and the stream reopened (resuming
 * each watch after its last revision) when the connection is lost.
 */

import { create } from "@bufbuild/protobuf";
import { Command } from "../command.ts";
import type { EtcdClient } from "../etcd_client.ts";
import { FlagError, type FlagSet, HelpRequested } from "../flags.ts";
import { goQuote } from "../go_format.ts";
import { type BidiStream, Code, GrpcError } from "../grpc_client.ts";
import { ExitCode, ExitSignal, flushStdout } from "../io.ts";
import {
  ResponseHeaderSchema,
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType } from "../../gen/mvccpb/kv_pb.ts";
import { argify, GoPanic, panic, prefixRangeEnd } from "./kv.ts";
import { mustClientFromCmd, type Session } from "./global.ts";
import { runCommand } from "./exec.ts";

const encoder = new TextEncoder();

const ERR_BAD_ARGS_NUM = "bad number of arguments";
const ERR_BAD_ARGS_NUM_CONFLICT_ENV = "bad number of arguments (found conflicting environment key)";
const ERR_BAD_ARGS_NUM_SEPARATOR = "bad number of arguments (found separator --, but no commands)";
const ERR_BAD_ARGS_INTERACTIVE_WATCH = "args[0] must be 'watch' for interactive calls";

/** The option values a watch is created with (etcdctl keeps them in package variables). */
interface WatchOptions {
  rev: bigint;
  prefix: boolean;
  prevKv: boolean;
}

/** A parse failure of parseWatchArgs; etcdctl exits with ExitBadArgs on it. */
class WatchArgsError extends Error {}

function addWatchFlags(fs: FlagSet): void {
  fs.bool("interactive", false, "Interactive mode", "i");
  fs.bool("prefix", false, "Watch on a prefix if prefix is set");
  fs.int64("rev", 0n, "Revision to start watching");
  fs.bool("prev-kv", false, "get the previous key-value pair before the event happens");
}

/** A fresh `watch` flag set, as NewWatchCommand().Flags() gives etcdctl (no help flag). */
function newWatchFlags(): FlagSet {
  const cmd = new Command({ use: "watch" });
  addWatchFlags(cmd.flags());
  return cmd.flags();
}

function parseFlagsOrThrow(fs: FlagSet, args: string[]): void {
  try {
    fs.parse(args);
  } catch (e) {
    if (e instanceof FlagError || e instanceof HelpRequested) {
      throw new WatchArgsError(e.message);
    }
    throw e;
  }
}

/**
 * parseWatchArgs: splits the command line into the watch arguments and the command to run per
 * event. `opts` is updated in interactive mode from the line's own flags.
 */
export function parseWatchArgs(
  osArgs: string[],
  commandArgs: string[],
  envKey: string,
  envRange: string,
  interactive: boolean,
  opts: WatchOptions,
): { watchArgs: string[]; execArgs: string[] } {
  let rawArgs = [...osArgs];
  let watchArgs = [...commandArgs];
  const reset = () => {
    opts.prefix = false;
    opts.rev = 0n;
    opts.prevKv = false;
  };
  const i = rawArgs.indexOf("watch");
  if (i >= 0) rawArgs = rawArgs.slice(i + 1);

  if (interactive) {
    if (watchArgs[0] !== "watch") {
      reset();
      throw new WatchArgsError(ERR_BAD_ARGS_INTERACTIVE_WATCH);
    }
    watchArgs = watchArgs.slice(1);
  }

  let execIdx = 0;
  let execExist = false;
  if (!interactive) {
    for (execIdx = 0; execIdx < rawArgs.length; execIdx++) {
      if (rawArgs[execIdx] === "--") {
        execExist = true;
        break;
      }
    }
    if (!execExist) execIdx = Math.max(0, rawArgs.length - 1);
    if (execExist && execIdx === rawArgs.length - 1) {
      throw new WatchArgsError(ERR_BAD_ARGS_NUM_SEPARATOR);
    }
    if (!execExist && rawArgs.length < 1 && envKey === "") {
      throw new WatchArgsError(ERR_BAD_ARGS_NUM);
    }
    if (execExist && envKey !== "") {
      let ridx = rawArgs.length - 1;
      for (let widx = watchArgs.length - 1; widx >= 0; widx--) {
        if (ridx >= 0 && watchArgs[widx] === rawArgs[ridx]) {
          ridx--;
          continue;
        }
        if (ridx === execIdx) throw new WatchArgsError(ERR_BAD_ARGS_NUM_CONFLICT_ENV);
      }
    }
    if (!execExist && watchArgs.length > 0 && envKey !== "") {
      throw new WatchArgsError(ERR_BAD_ARGS_NUM_CONFLICT_ENV);
    }
  } else {
    for (execIdx = 0; execIdx < watchArgs.length; execIdx++) {
      if (watchArgs[execIdx] === "--") {
        execExist = true;
        break;
      }
    }
    if (execExist && execIdx === watchArgs.length - 1) {
      reset();
      throw new WatchArgsError(ERR_BAD_ARGS_NUM_SEPARATOR);
    }
    const fs = newWatchFlags();
    try {
      parseFlagsOrThrow(fs, watchArgs);
    } catch (e) {
      reset();
      throw e;
    }
    const pArgs = fs.args;
    if (!execExist && envKey === "" && pArgs.length < 1) {
      reset();
      throw new WatchArgsError(ERR_BAD_ARGS_NUM);
    }
    if (!execExist && pArgs.length > 0 && envKey !== "") {
      reset();
      throw new WatchArgsError(ERR_BAD_ARGS_NUM_CONFLICT_ENV);
    }
  }

  const argsWithSep = interactive ? watchArgs : rawArgs;
  const idx = argsWithSep.indexOf("--");
  const foundSep = idx >= 0;
  const execArgs = foundSep ? argsWithSep.slice(idx + 1) : [];

  if (interactive) {
    const fs = newWatchFlags();
    parseFlagsOrThrow(fs, argsWithSep);
    watchArgs = fs.args;
    opts.prefix = fs.getBool("prefix");
    opts.rev = fs.getInt64("rev");
    opts.prevKv = fs.getBool("prev-kv");
  }

  if (envKey !== "") {
    const ranges = [envKey];
    if (envRange !== "") ranges.push(envRange);
    watchArgs = [...ranges, ...watchArgs];
  }
  if (!foundSep) return { watchArgs, execArgs: [] };

  let endIdx = watchArgs.length - 1;
  for (; endIdx >= 0; endIdx--) {
    if (watchArgs[endIdx] === argsWithSep[idx + 1]) break;
  }
  watchArgs = watchArgs.slice(0, Math.max(0, endIdx));
  return { watchArgs, execArgs };
}

// ---------------------------------------------------------------------------------------------
// clientv3's watcher

/** What a watch channel carries: a WatchResponse, plus why a canceled watch ended. */
interface ChannelResponse {
  resp: WatchResponse;
  /** clientv3's closeErr: the stream's failure or the server's reason for refusing the watch. */
  closeError?: string;
}

/** One watch on the shared stream (clientv3's watcherStream). */
class Substream {
  #items: ChannelResponse[] = [];
  #waiter?: (r: ChannelResponse | undefined) => void;
  closed = false;
  id = -1n;
  /** The revision to resume from (clientv3's initReq.rev). */
  rev: bigint;
  /** Settles once the server answered the create request (or the watch ended before that). */
  readonly created: Promise<void>;
  #markCreated!: () => void;

  constructor(
    readonly key: Uint8Array,
    readonly rangeEnd: Uint8Array,
    startRev: bigint,
    readonly prevKv: boolean,
  ) {
    this.rev = startRev;
    this.created = new Promise((resolve) => this.#markCreated = resolve);
  }

  /** Records that the watch exists on the server (clientv3's Watch returns then). */
  setCreated(): void {
    this.#markCreated();
  }

  push(item: ChannelResponse): void {
    if (this.closed) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w(item);
    } else this.#items.push(item);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#markCreated();
    if (this.#waiter && this.#items.length === 0) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w(undefined);
    }
  }

  /** The next response, or undefined once the channel is closed and drained. */
  next(): Promise<ChannelResponse | undefined> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift());
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiter = resolve);
  }

  createRequest(): WatchRequest {
    return create(WatchRequestSchema, {
      requestUnion: {
        case: "createRequest",
        value: {
          key: this.key,
          rangeEnd: this.rangeEnd,
          startRevision: this.rev,
          prevKv: this.prevKv,
        },
      },
    });
  }
}

/** clientv3.Error: known server messages stand for themselves, others keep grpc's text. */
function v3rpcErrorText(e: GrpcError): string {
  return e.toGoString();
}

/** WatchResponse.Err() as text, or undefined when the response carries no error. */
function responseError(r: ChannelResponse): string | undefined {
  if (r.closeError !== undefined) return r.closeError;
  if (r.resp.compactRevision !== 0n) {
    return "etcdserver: mvcc: required revision has been compacted";
  }
  if (r.resp.canceled) {
    if (r.resp.cancelReason !== "") {
      return knownOr(r.resp.cancelReason, `rpc error: code = FailedPrecondition desc = `);
    }
    return "etcdserver: mvcc: required revision is a future revision";
  }
  return undefined;
}

function knownOr(reason: string, prefix: string): string {
  return reason.startsWith("etcdserver: ") ? reason : prefix + reason;
}

function isProgressNotify(r: WatchResponse): boolean {
  return r.events.length === 0 && !r.canceled && !r.created && r.compactRevision === 0n &&
    (r.header?.revision ?? 0n) !== 0n;
}

/** clientv3's watchGrpcStream: every watch of one client on one bidirectional stream. */
class WatchGrpcStream {
  #stream?: BidiStream<WatchRequest, WatchResponse>;
  #opening?: Promise<void>;
  readonly #substreams = new Map<bigint, Substream>();
  #resuming: Substream[] = [];
  readonly #cancelSet = new Set<bigint>();
  #cur?: WatchResponse;

  readonly #client: EtcdClient;

  constructor(client: EtcdClient) {
    this.#client = client;
  }

  /** Starts a watch; its responses arrive on the returned substream. */
  watch(key: Uint8Array, rangeEnd: Uint8Array, rev: bigint, prevKv: boolean): Substream {
    const ws = new Substream(key, rangeEnd, rev, prevKv);
    this.#resuming.push(ws);
    if (this.#resuming.length === 1 && this.#stream) this.#stream.send(ws.createRequest());
    this.#ensureOpen();
    return ws;
  }

  /** clientv3's RequestProgress. */
  async requestProgress(): Promise<void> {
    this.#ensureOpen();
    await this.#opening;
    this.#stream?.send(
      create(WatchRequestSchema, { requestUnion: { case: "progressRequest", value: {} } }),
    );
  }

  #ensureOpen(): void {
    if (this.#stream || this.#opening) return;
    this.#opening = this.#open().finally(() => this.#opening = undefined);
  }

  async #open(): Promise<void> {
    for (;;) {
      try {
        this.#stream = await this.#client.watchStream(true);
        break;
      } catch (e) {
        const err = this.#client.streamError(e);
        if (err.grpc && err.grpc.code !== Code.Unavailable) {
          this.#closeAll(err.message);
          return;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const stream = this.#stream;
    const head = this.#resuming[0];
    if (head) stream.send(head.createRequest());
    this.#recvLoop(stream);
  }

  async #recvLoop(stream: BidiStream<WatchRequest, WatchResponse>): Promise<void> {
    try {
      for (;;) {
        const resp = await stream.receive();
        if (resp === undefined) throw new GrpcError(Code.Unavailable, "EOF");
        this.#onResponse(resp);
      }
    } catch (e) {
      const ge = e instanceof GrpcError ? e : new GrpcError(Code.Unknown, (e as Error).message);
      const text = this.#client.streamError(ge).message;
      this.#stream = undefined;
      if (
        (ge.code !== Code.Unavailable && ge.code !== Code.Internal) ||
        text === "etcdserver: no leader"
      ) {
        this.#closeAll(text === ge.toGoString() ? v3rpcErrorText(ge) : text);
        return;
      }
      // Resume every watch on a new stream, each after the last revision it saw.
      for (const ws of this.#substreams.values()) {
        ws.id = -1n;
        this.#resuming.push(ws);
      }
      this.#substreams.clear();
      this.#cur = undefined;
      await new Promise((r) => setTimeout(r, 100));
      this.#ensureOpen();
    }
  }

  #closeAll(reason: string): void {
    const all = [...this.#substreams.values(), ...this.#resuming];
    this.#substreams.clear();
    this.#resuming = [];
    for (const ws of all) {
      ws.push({
        resp: create(WatchResponseSchema, { canceled: true }),
        closeError: reason,
      });
      ws.close();
    }
  }

  #onResponse(pbresp: WatchResponse): void {
    if (this.#cur === undefined || pbresp.created || pbresp.canceled) {
      this.#cur = pbresp;
    } else if (this.#cur.watchId === pbresp.watchId) {
      this.#cur.events.push(...pbresp.events);
      this.#cur.fragment = pbresp.fragment;
    }
    const cur = this.#cur;
    if (pbresp.created) {
      const ws = this.#resuming.shift();
      if (ws) {
        if (pbresp.watchId === -1n || (pbresp.canceled && pbresp.cancelReason !== "")) {
          ws.push({
            resp: create(WatchResponseSchema, { canceled: true }),
            closeError: pbresp.cancelReason,
          });
          ws.close();
        } else {
          ws.id = pbresp.watchId;
          this.#substreams.set(ws.id, ws);
          ws.setCreated();
          // A watch from the current revision resumes at the revision it was created at.
          if (ws.rev === 0n) ws.rev = pbresp.header?.revision ?? 0n;
        }
      }
      const next = this.#resuming[0];
      if (next) this.#stream?.send(next.createRequest());
      this.#cur = undefined;
      return;
    }
    if (pbresp.canceled && pbresp.compactRevision === 0n) {
      this.#cancelSet.delete(pbresp.watchId);
      const ws = this.#substreams.get(pbresp.watchId);
      if (ws) {
        this.#substreams.delete(pbresp.watchId);
        ws.close();
      }
      this.#cur = undefined;
      return;
    }
    if (cur.fragment) return;
    this.#cur = undefined;
    if (isProgressNotify(cur) && cur.watchId === -1n) {
      for (const ws of this.#substreams.values()) this.#deliver(ws, cur);
      return;
    }
    const ws = this.#substreams.get(cur.watchId);
    if (ws) {
      this.#deliver(ws, cur);
      return;
    }
    if (this.#cancelSet.has(cur.watchId)) return;
    this.#cancelSet.add(cur.watchId);
    this.#stream?.send(
      create(WatchRequestSchema, {
        requestUnion: { case: "cancelRequest", value: { watchId: cur.watchId } },
      }),
    );
  }

  #deliver(ws: Substream, resp: WatchResponse): void {
    ws.rev = resp.header?.revision ?? 0n;
    if (resp.events.length > 0) {
      ws.rev = (resp.events[resp.events.length - 1].kv?.modRevision ?? 0n) + 1n;
    }
    const item: ChannelResponse = {
      resp: create(WatchResponseSchema, {
        header: resp.header ?? create(ResponseHeaderSchema),
        events: resp.events,
        compactRevision: resp.compactRevision,
        canceled: resp.canceled,
        created: resp.created,
        cancelReason: resp.cancelReason,
      }),
    };
    ws.push(item);
    if (responseError(item) !== undefined) {
      this.#substreams.delete(ws.id);
      ws.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The command

/** Go's %q of a []string: each element quoted, space-separated, in brackets. */
function goQuoteSlice(items: string[]): string {
  return "[" + items.map((s) => goQuote(s)).join(" ") + "]";
}

/** Runs the per-event command like exec.Cmd.Run, exiting 1 on failure as etcdctl does. */
async function runExec(
  session: Session,
  execArgs: string[],
  env: Record<string, string>,
): Promise<void> {
  flushStdout(session.io);
  const err = await runCommand(execArgs, env);
  if (err !== undefined) {
    session.io.stderr.write(`command ${goQuoteSlice(execArgs)} error (${err})\n`);
    throw new ExitSignal(1);
  }
}

/** printWatchCh: prints every response of a watch, running the command per event. */
async function printWatchCh(session: Session, ws: Substream, execArgs: string[]): Promise<void> {
  for (;;) {
    const item = await ws.next();
    if (item === undefined) return;
    const resp = item.resp;
    const err = responseError(item);
    if (resp.canceled) session.io.stderr.write(`watch was canceled (${err ?? "<nil>"})\n`);
    if (isProgressNotify(resp)) {
      session.io.stdout.write(`progress notify: ${resp.header?.revision ?? 0n}\n`);
    }
    session.display.watch(resp);
    if (execArgs.length > 0) {
      for (const ev of resp.events) {
        const env: Record<string, string> = Object.fromEntries(session.io.env);
        env.ETCD_WATCH_REVISION = String(resp.header?.revision ?? 0n);
        env.ETCD_WATCH_EVENT_TYPE = goQuote(Event_EventType[ev.type] ?? String(ev.type));
        env.ETCD_WATCH_KEY = goQuote(ev.kv?.key ?? new Uint8Array(0));
        env.ETCD_WATCH_VALUE = goQuote(ev.kv?.value ?? new Uint8Array(0));
        await runExec(session, execArgs, env);
      }
    }
  }
}

/** getWatchChan: starts the watch the arguments describe. */
function getWatchChan(
  stream: WatchGrpcStream,
  args: string[],
  opts: WatchOptions,
): Substream | string {
  if (args.length < 1) return ERR_BAD_ARGS_NUM;
  let key: Uint8Array = encoder.encode(args[0]);
  let rangeEnd: Uint8Array = new Uint8Array(0);
  if (args.length === 2) {
    if (opts.prefix) return "`range_end` and `--prefix` are mutually exclusive";
    rangeEnd = encoder.encode(args[1]);
  }
  if (opts.prefix) {
    if (key.length === 0) {
      key = new Uint8Array([0]);
      rangeEnd = new Uint8Array([0]);
    } else {
      rangeEnd = prefixRangeEnd(key);
    }
  }
  return stream.watch(key, rangeEnd, opts.rev, opts.prevKv);
}

async function watchInteractive(
  session: Session,
  cmd: Command,
  envKey: string,
  envRange: string,
): Promise<void> {
  const client = await mustClientFromCmd(session, cmd);
  const stream = new WatchGrpcStream(client);
  const opts: WatchOptions = { rev: 0n, prefix: false, prevKv: false };
  let fail!: (e: unknown) => void;
  const fatal = new Promise<never>((_, reject) => fail = reject);
  fatal.catch(() => {});
  const decoder = new TextDecoder();
  for (;;) {
    const { line, eof } = await Promise.race([session.io.stdin.readLine(), fatal]);
    if (eof) {
      session.exitWithError(ExitCode.InvalidInput, "Error reading watch request line: EOF");
    }
    const l = decoder.decode(line).replace(/\n$/, "");
    let args: string[];
    try {
      args = argify(l);
    } catch (e) {
      if (e instanceof GoPanic) panic(session, e);
      throw e;
    }
    if (args.length < 1) {
      session.io.stderr.write(`Invalid command: ${l} (watch and progress supported)\n`);
      continue;
    }
    switch (args[0]) {
      case "watch": {
        if (args.length < 2 && envKey === "") {
          session.io.stderr.write(
            `Invalid command ${l} (command type or key is not provided)\n`,
          );
          continue;
        }
        let parsed;
        try {
          parsed = parseWatchArgs(session.osArgs, args, envKey, envRange, true, opts);
        } catch (e) {
          if (e instanceof WatchArgsError) session.exitWithError(ExitCode.BadArgs, e.message);
          throw e;
        }
        const ws = getWatchChan(stream, parsed.watchArgs, opts);
        if (typeof ws === "string") {
          session.io.stderr.write(`Invalid command ${l} (${ws})\n`);
          continue;
        }
        // clientv3's Watch returns once the server created the watch: the next line waits.
        await Promise.race([ws.created, fatal]);
        printWatchCh(session, ws, parsed.execArgs).catch(fail);
        break;
      }
      case "progress":
        await stream.requestProgress();
        break;
      default:
        session.io.stderr.write(`Invalid command ${l} (only support watch)\n`);
    }
  }
}

/** The `watch` command. */
export function watchCommand(session: Session): Command {
  const cmd = new Command({
    use: "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
    short: "Watches events stream on keys or prefixes",
    run: async (cmd, args) => {
      const envKey = session.getenv("ETCDCTL_WATCH_KEY");
      const envRange = session.getenv("ETCDCTL_WATCH_RANGE_END");
      if (envKey === "" && envRange !== "") {
        session.exitWithError(
          ExitCode.BadArgs,
          `ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=${goQuote(envRange)}`,
        );
      }
      const fs = cmd.flags();
      if (fs.getBool("interactive")) {
        await watchInteractive(session, cmd, envKey, envRange);
        return;
      }
      const opts: WatchOptions = {
        rev: fs.getInt64("rev"),
        prefix: fs.getBool("prefix"),
        prevKv: fs.getBool("prev-kv"),
      };
      let parsed;
      try {
        parsed = parseWatchArgs(session.osArgs, args, envKey, envRange, false, opts);
      } catch (e) {
        if (e instanceof WatchArgsError) session.exitWithError(ExitCode.BadArgs, e.message);
        throw e;
      }
      const client = await mustClientFromCmd(session, cmd);
      const stream = new WatchGrpcStream(client);
      const ws = getWatchChan(stream, parsed.watchArgs, opts);
      if (typeof ws === "string") session.exitWithError(ExitCode.BadArgs, ws);
      await printWatchCh(session, ws, parsed.execArgs);
      client.close();
      session.exitWithError(ExitCode.Interrupted, "watch is canceled by the server");
    },
  });
  addWatchFlags(cmd.flags());
  return cmd;
}
