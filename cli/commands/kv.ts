/**
 * The key-value commands: put, get, del, txn and compaction, with etcdctl 3.4's argument
 * checks, flag semantics (ranges, prefixes, sorting, leases), request building (as clientv3's
 * Op options build them) and exit codes.
 */

import { create } from "@bufbuild/protobuf";
import { Command } from "../command.ts";
import { GoNumError, goQuote, goUnquote, parseGoInt } from "../go_format.ts";
import { ExitCode, ExitSignal } from "../io.ts";
import {
  CompactionRequestSchema,
  type Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  CompareSchema,
  type DeleteRangeRequest,
  DeleteRangeRequestSchema,
  type PutRequest,
  PutRequestSchema,
  type RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  RangeRequestSchema,
  type RequestOp,
  RequestOpSchema,
  TxnRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { SimplePrinter } from "../printers/mod.ts";
import { commandDeadline, mustClientFromCmd, orExit, type Session } from "./global.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes of a key or value given on the command line. */
function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

/** clientv3.GetPrefixRangeEnd (core/bytes.ts). */
import { prefixRangeEnd } from "../../core/bytes.ts";
export { prefixRangeEnd };

/** Where ops read a value missing from the command line (put's stdin fallback). */
export type StdinReadAll = () => Promise<Uint8Array>;

/** `put` as etcdctl defines it; `run` receives the request built from flags and args. */
export function newPutCommand(
  run: (cmd: Command, args: string[]) => void | Promise<void>,
): Command {
  const cmd = new Command({
    use: "put [options] <key> <value> (<value> can also be given from stdin)",
    short: "Puts the given key into the store",
    long: `
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
`,
    run,
  });
  const fs = cmd.flags();
  fs.string("lease", "0", "lease ID (in hexadecimal) to attach to the key");
  fs.bool("prev-kv", false, "return the previous key-value pair before modification");
  fs.bool("ignore-value", false, "updates the key using its current value");
  fs.bool("ignore-lease", false, "updates the key using its current lease");
  return cmd;
}

/** getPutOp: the PutRequest for `put` flags and args, exiting like etcdctl on bad input. */
export async function putOp(
  session: Session,
  cmd: Command,
  args: string[],
  readStdin: StdinReadAll,
): Promise<PutRequest> {
  const fs = cmd.flags();
  const needs = "put command needs 1 argument and input from stdin or 2 arguments";
  if (args.length === 0) session.exitWithError(ExitCode.BadArgs, needs);
  const key = args[0];
  const ignoreValue = fs.getBool("ignore-value");
  if (ignoreValue && args.length > 1) {
    session.exitWithError(
      ExitCode.BadArgs,
      "put command needs only 1 argument when 'ignore-value' is set",
    );
  }
  let value: Uint8Array = new Uint8Array(0);
  if (!ignoreValue) {
    if (args.length > 1) {
      value = bytes(args[1]);
    } else {
      value = await readStdin();
      if (value.length === 0) session.exitWithError(ExitCode.BadArgs, needs);
    }
  }
  let lease: bigint;
  try {
    lease = parseGoInt(fs.getString("lease"), 16, 64);
  } catch (e) {
    session.exitWithError(
      ExitCode.BadArgs,
      `bad lease ID (${(e as Error).message}), expecting ID in Hex`,
    );
  }
  return create(PutRequestSchema, {
    key: bytes(key),
    value,
    lease,
    prevKv: fs.getBool("prev-kv"),
    ignoreValue,
    ignoreLease: fs.getBool("ignore-lease"),
  });
}

/** `get` as etcdctl defines it. */
export function newGetCommand(
  run: (cmd: Command, args: string[]) => void | Promise<void>,
): Command {
  const cmd = new Command({
    use: "get [options] <key> [range_end]",
    short: "Gets the key or a range of keys",
    run,
  });
  const fs = cmd.flags();
  fs.string("consistency", "l", "Linearizable(l) or Serializable(s)");
  fs.string("order", "", "Order of results; ASCEND or DESCEND (ASCEND by default)");
  fs.string("sort-by", "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION");
  fs.int64("limit", 0n, "Maximum number of results");
  fs.bool("prefix", false, "Get keys with matching prefix");
  fs.bool(
    "from-key",
    false,
    "Get keys that are greater than or equal to the given key using byte compare",
  );
  fs.int64("rev", 0n, "Specify the kv revision");
  fs.bool("keys-only", false, "Get only the keys");
  fs.bool("print-value-only", false, `Only write values when using the "simple" output format`);
  return cmd;
}

/** --prefix and --from-key, refused together as etcdctl refuses them. */
function prefixOrFromKey(session: Session, cmd: Command): { prefix: boolean; fromKey: boolean } {
  const fs = cmd.flags();
  const prefix = fs.getBool("prefix");
  const fromKey = fs.getBool("from-key");
  if (prefix && fromKey) {
    session.exitWithError(
      ExitCode.BadArgs,
      "`--prefix` and `--from-key` cannot be set at the same time, choose one",
    );
  }
  return { prefix, fromKey };
}

/** The optional range_end argument, refused when --prefix or --from-key decides the range. */
function setRangeEndArg(
  session: Session,
  req: { rangeEnd: Uint8Array },
  args: string[],
  rangeFromFlags: boolean,
): void {
  if (args.length <= 1) return;
  if (rangeFromFlags) {
    session.exitWithError(
      ExitCode.BadArgs,
      "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
    );
  }
  req.rangeEnd = bytes(args[1]);
}

/** clientv3.WithPrefix: every key starting with key (all keys for an empty one). */
function applyPrefix(req: { key: Uint8Array; rangeEnd: Uint8Array }, prefix: boolean): void {
  if (!prefix) return;
  if (req.key.length === 0) {
    req.key = new Uint8Array([0]);
    req.rangeEnd = new Uint8Array([0]);
  } else {
    req.rangeEnd = prefixRangeEnd(req.key);
  }
}

/** clientv3.WithFromKey: every key >= key (all keys for an empty one). */
function applyFromKey(req: { key: Uint8Array; rangeEnd: Uint8Array }, fromKey: boolean): void {
  if (!fromKey) return;
  if (req.key.length === 0) req.key = new Uint8Array([0]);
  req.rangeEnd = new Uint8Array([0]);
}

/** getGetOp: the RangeRequest for `get` flags and args. */
export function getOp(session: Session, cmd: Command, args: string[]): RangeRequest {
  const fs = cmd.flags();
  if (args.length === 0) {
    session.exitWithError(
      ExitCode.BadArgs,
      "get command needs one argument as key and an optional argument as range_end",
    );
  }
  const { prefix, fromKey } = prefixOrFromKey(session, cmd);
  const req = create(RangeRequestSchema, {});
  const consistency = fs.getString("consistency");
  if (consistency === "s") req.serializable = true;
  else if (consistency !== "l") {
    session.exitWithError(ExitCode.BadFeature, `unknown consistency flag ${goQuote(consistency)}`);
  }
  req.key = bytes(args[0]);
  setRangeEndArg(session, req, args, prefix || fromKey);
  req.limit = fs.getInt64("limit");
  const rev = fs.getInt64("rev");
  if (rev > 0n) req.revision = rev;

  const orderFlag = fs.getString("order");
  let order = RangeRequest_SortOrder.NONE;
  switch (orderFlag.toUpperCase()) {
    case "ASCEND":
      order = RangeRequest_SortOrder.ASCEND;
      break;
    case "DESCEND":
      order = RangeRequest_SortOrder.DESCEND;
      break;
    case "":
      break;
    default:
      session.exitWithError(ExitCode.BadFeature, `bad sort order ${orderFlag}`);
  }
  const targetFlag = fs.getString("sort-by");
  let target = RangeRequest_SortTarget.KEY;
  switch (targetFlag.toUpperCase()) {
    case "CREATE":
      target = RangeRequest_SortTarget.CREATE;
      break;
    case "KEY":
      target = RangeRequest_SortTarget.KEY;
      break;
    case "MODIFY":
      target = RangeRequest_SortTarget.MOD;
      break;
    case "VALUE":
      target = RangeRequest_SortTarget.VALUE;
      break;
    case "VERSION":
      target = RangeRequest_SortTarget.VERSION;
      break;
    case "":
      break;
    default:
      session.exitWithError(ExitCode.BadFeature, `bad sort target ${targetFlag}`);
  }
  // clientv3.WithSort: the server already returns keys ascending, so KEY/ASCEND means none.
  if (target === RangeRequest_SortTarget.KEY && order === RangeRequest_SortOrder.ASCEND) {
    order = RangeRequest_SortOrder.NONE;
  }
  req.sortOrder = order;
  req.sortTarget = target;

  applyPrefix(req, prefix);
  applyFromKey(req, fromKey);
  if (fs.getBool("keys-only")) req.keysOnly = true;
  return req;
}

/** `del` as etcdctl defines it. */
export function newDelCommand(
  run: (cmd: Command, args: string[]) => void | Promise<void>,
): Command {
  const cmd = new Command({
    use: "del [options] <key> [range_end]",
    short: "Removes the specified key or range of keys [key, range_end)",
    run,
  });
  const fs = cmd.flags();
  fs.bool("prefix", false, "delete keys with matching prefix");
  fs.bool("prev-kv", false, "return deleted key-value pairs");
  fs.bool(
    "from-key",
    false,
    "delete keys that are greater than or equal to the given key using byte compare",
  );
  return cmd;
}

/** getDelOp: the DeleteRangeRequest for `del` flags and args. */
export function delOp(session: Session, cmd: Command, args: string[]): DeleteRangeRequest {
  const fs = cmd.flags();
  if (args.length === 0 || args.length > 2) {
    session.exitWithError(
      ExitCode.BadArgs,
      "del command needs one argument as key and an optional argument as range_end",
    );
  }
  const { prefix, fromKey } = prefixOrFromKey(session, cmd);
  const req = create(DeleteRangeRequestSchema, { key: bytes(args[0]) });
  setRangeEndArg(session, req, args, prefix || fromKey);
  applyPrefix(req, prefix);
  if (fs.getBool("prev-kv")) req.prevKv = true;
  applyFromKey(req, fromKey);
  return req;
}

/** The KV command group, registered on the root. */
export function kvCommands(session: Session): Command[] {
  const put = newPutCommand(async (cmd, args) => {
    const req = await putOp(session, cmd, args, () => session.io.stdin.readAll());
    const deadlineMs = commandDeadline(cmd);
    const client = await mustClientFromCmd(session, cmd);
    const resp = await orExit(session, client.put(req, { deadlineMs }));
    session.display.put(resp);
  });

  const get = newGetCommand(async (cmd, args) => {
    const req = getOp(session, cmd, args);
    const deadlineMs = commandDeadline(cmd);
    const client = await mustClientFromCmd(session, cmd);
    const resp = await orExit(session, client.range(req, { deadlineMs }));
    if (cmd.flags().getBool("print-value-only")) {
      if (!(session.display instanceof SimplePrinter)) {
        session.exitWithError(
          ExitCode.BadArgs,
          "print-value-only is only for `--write-out=simple`",
        );
      }
      session.display.valueOnly = true;
    }
    session.display.get(resp);
  });

  const del = newDelCommand(async (cmd, args) => {
    const req = delOp(session, cmd, args);
    const deadlineMs = commandDeadline(cmd);
    const client = await mustClientFromCmd(session, cmd);
    const resp = await orExit(session, client.deleteRange(req, { deadlineMs }));
    session.display.del(resp);
  });

  const txn = new Command({
    use: "txn [options]",
    short: "Txn processes all the requests in one transaction",
    run: (cmd, args) => txnCommand(session, cmd, args),
  });
  txn.flags().bool("interactive", false, "Input transaction in interactive mode", "i");

  const compaction = new Command({
    use: "compaction [options] <revision>",
    short: "Compacts the event history in etcd",
    run: async (cmd, args) => {
      if (args.length !== 1) {
        session.exitWithError(ExitCode.BadArgs, "compaction command needs 1 argument");
      }
      let rev: bigint;
      try {
        rev = parseGoInt(args[0], 10, 64);
      } catch (e) {
        session.exitWithError(ExitCode.Error, (e as Error).message);
      }
      const physical = cmd.flags().getBool("physical");
      const client = await mustClientFromCmd(session, cmd);
      const deadlineMs = commandDeadline(cmd);
      await orExit(
        session,
        client.compact(create(CompactionRequestSchema, { revision: rev, physical }), {
          deadlineMs,
        }),
      );
      session.io.stdout.write(`compacted revision ${rev}\n`);
    },
  });
  compaction.flags().bool(
    "physical",
    false,
    "'true' to wait for compaction to physically remove all old revisions",
  );

  return [get, put, del, txn, compaction];
}

// ---------------------------------------------------------------------------------------------
// txn

/** Result of scanning a compare line with Go's fmt.Sscanf("%q) %s %q"). */
export interface ScannedCompare {
  n: number;
  key: Uint8Array;
  op: string;
  val: Uint8Array;
}

const goSpace = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;

/** fmt.Sscanf(input, "%q) %s %q", &key, &op, &val): how many operands were scanned, and them. */
export function scanCompare(input: string): ScannedCompare {
  const runes = [...input];
  let pos = 0;
  const out: ScannedCompare = { n: 0, key: new Uint8Array(0), op: "", val: new Uint8Array(0) };
  class ScanStop extends Error {}
  const isSpace = (r: string | undefined) => r !== undefined && goSpace.test(r);
  const skipSpace = () => {
    while (pos < runes.length && isSpace(runes[pos]) && runes[pos] !== "\n") pos++;
  };
  const mustRead = (): string => {
    if (pos >= runes.length) throw new ScanStop();
    return runes[pos++];
  };
  const quoted = (): Uint8Array => {
    skipSpace();
    if (pos >= runes.length) throw new ScanStop();
    const q = runes[pos++];
    if (q === "`") {
      let s = "";
      for (;;) {
        const r = mustRead();
        if (r === "`") break;
        s += r;
      }
      return bytes(s);
    }
    if (q !== '"') throw new ScanStop();
    let s = '"';
    for (;;) {
      const r = mustRead();
      s += r;
      if (r === "\\") s += mustRead();
      else if (r === '"') break;
    }
    try {
      return goUnquote(s);
    } catch {
      throw new ScanStop();
    }
  };
  // A space in the format needs at least one space in the input (or the end of it).
  const space = () => {
    if (pos < runes.length && !isSpace(runes[pos])) throw new ScanStop();
    while (pos < runes.length && isSpace(runes[pos])) pos++;
  };
  try {
    out.key = quoted();
    out.n = 1;
    if (mustRead() !== ")") throw new ScanStop();
    space();
    skipSpace();
    if (pos >= runes.length) throw new ScanStop();
    let tok = "";
    while (pos < runes.length && !isSpace(runes[pos])) tok += runes[pos++];
    out.op = tok;
    out.n = 2;
    space();
    out.val = quoted();
    out.n = 3;
  } catch (e) {
    if (!(e instanceof ScanStop)) throw e;
  }
  return out;
}

/** A Go panic: etcdctl crashes with exit status 2 on these inputs. */
export class GoPanic extends Error {}

/** parseCompare: one line of the compares section to a Compare, or an error message. */
export function parseCompare(line: string): Compare | string {
  const lp = line.indexOf("(");
  if (lp < 0) return `malformed comparison: ${line}`;
  const target = line.slice(0, lp);
  const sc = scanCompare(line.slice(lp + 1));
  if (sc.n !== 3) {
    return `malformed comparison: ${line}; got ${target}(${goQuote(sc.key)}) ${sc.op} ${
      goQuote(sc.val)
    }`;
  }
  const cmp = create(CompareSchema, {});
  const intValue = (): bigint | undefined => {
    try {
      return parseGoInt(decoder.decode(sc.val), 10, 64);
    } catch (e) {
      if (e instanceof GoNumError) return undefined;
      throw e;
    }
  };
  const setResult = () => {
    switch (sc.op) {
      case "=":
        cmp.result = Compare_CompareResult.EQUAL;
        break;
      case "!=":
        cmp.result = Compare_CompareResult.NOT_EQUAL;
        break;
      case ">":
        cmp.result = Compare_CompareResult.GREATER;
        break;
      case "<":
        cmp.result = Compare_CompareResult.LESS;
        break;
      default:
        throw new GoPanic("Unknown result op");
    }
  };
  switch (target) {
    case "ver":
    case "version":
    case "c":
    case "create":
    case "m":
    case "mod": {
      const v = intValue();
      if (v === undefined) return `invalid txn compare request: ${line}`;
      setResult();
      cmp.key = sc.key;
      if (target.startsWith("v")) {
        cmp.target = Compare_CompareTarget.VERSION;
        cmp.targetUnion = { case: "version", value: v };
      } else if (target.startsWith("c")) {
        cmp.target = Compare_CompareTarget.CREATE;
        cmp.targetUnion = { case: "createRevision", value: v };
      } else {
        cmp.target = Compare_CompareTarget.MOD;
        cmp.targetUnion = { case: "modRevision", value: v };
      }
      return cmp;
    }
    case "val":
    case "value":
      setResult();
      cmp.key = sc.key;
      cmp.target = Compare_CompareTarget.VALUE;
      cmp.targetUnion = { case: "value", value: sc.val };
      return cmp;
    case "lease":
      // etcdctl hands clientv3.Compare a string for a lease target, which panics.
      setResult();
      throw new GoPanic("bad value");
    default:
      return `malformed comparison: ${line} (unknown target ${target})`;
  }
}

/** etcdctl's argify: splits a txn request line into words, honouring quotes (and its quirks). */
export function argify(s: string): string[] {
  const re = /"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\t\n\f\r ][^\t\n\f\r ]*[^'"\t\n\f\r ]?/g;
  const args = s.match(re) ?? [];
  return args.map((a) => {
    if (a.length === 0) return a;
    if (a[0] === "'") {
      // etcdctl slices with the number of words instead of the word's length.
      const hi = args.length - 1;
      if (hi > a.length || hi < 1) {
        throw new GoPanic(
          hi > a.length
            ? `runtime error: slice bounds out of range [:${hi}] with length ${a.length}`
            : `runtime error: slice bounds out of range [1:${hi}]`,
        );
      }
      return a.slice(1, hi);
    }
    if (a[0] === '"') {
      return decoder.decode(goUnquote(a));
    }
    return a;
  });
}

/** Reads lines until an empty one, like readCompares/readOps (EOF before it is an error). */
async function readSection(
  session: Session,
  handle: (line: string) => Promise<void>,
): Promise<void> {
  for (;;) {
    const { line, eof } = await session.io.stdin.readLine();
    if (eof) session.exitWithError(ExitCode.InvalidInput, "EOF");
    const text = decoder.decode(line).trim();
    if (text.length === 0) return;
    await handle(text);
  }
}

/** Ends the run as a Go panic does: the message, then exit status 2. */
export function panic(session: Session, e: GoPanic): never {
  session.io.stderr.write(`panic: ${e.message}\n\ngoroutine 1 [running]:\n`);
  throw new ExitSignal(2);
}

/** parseRequestUnion: runs a request line through put/get/del commands of its own. */
async function parseRequestOp(session: Session, line: string): Promise<RequestOp> {
  let args: string[];
  try {
    args = argify(line);
  } catch (e) {
    if (e instanceof GoPanic) panic(session, e);
    session.exitWithError(ExitCode.InvalidInput, (e as Error).message);
  }
  if (args.length < 2) {
    session.exitWithError(ExitCode.InvalidInput, `invalid txn compare request: ${line}`);
  }
  let op: RequestOp | undefined;
  const put = newPutCommand(async (cmd, a) => {
    const req = await putOp(session, cmd, a, () => session.io.stdin.readAllUnbuffered());
    op = create(RequestOpSchema, { request: { case: "requestPut", value: req } });
  });
  const get = newGetCommand((cmd, a) => {
    op = create(RequestOpSchema, {
      request: { case: "requestRange", value: getOp(session, cmd, a) },
    });
  });
  const del = newDelCommand((cmd, a) => {
    op = create(RequestOpSchema, {
      request: { case: "requestDeleteRange", value: delOp(session, cmd, a) },
    });
  });
  const root = new Command({ use: "", silenceErrors: true });
  root.output = {
    stdout: (d) => session.io.stdout.write(d),
    stderr: (d) => session.io.stderr.write(d),
  };
  root.addCommand(put, get, del);
  const err = await root.executeRoot(args);
  if (err || op === undefined) {
    session.exitWithError(ExitCode.InvalidInput, `invalid txn request: ${line}`);
  }
  return op;
}

async function txnCommand(session: Session, cmd: Command, args: string[]): Promise<void> {
  if (args.length !== 0) {
    session.exitWithError(ExitCode.BadArgs, "txn command does not accept argument");
  }
  const client = await mustClientFromCmd(session, cmd);
  const interactive = cmd.flags().getBool("interactive");
  const prompt = (s: string) => {
    if (interactive) session.io.stdout.write(s + "\n");
  };

  prompt("compares:");
  const compares: Compare[] = [];
  await readSection(session, (line) => {
    let c: Compare | string;
    try {
      c = parseCompare(line);
    } catch (e) {
      if (e instanceof GoPanic) panic(session, e);
      throw e;
    }
    if (typeof c === "string") session.exitWithError(ExitCode.InvalidInput, c);
    compares.push(c);
    return Promise.resolve();
  });
  prompt("success requests (get, put, del):");
  const success: RequestOp[] = [];
  await readSection(session, async (line) => {
    success.push(await parseRequestOp(session, line));
  });
  prompt("failure requests (get, put, del):");
  const failure: RequestOp[] = [];
  await readSection(session, async (line) => {
    failure.push(await parseRequestOp(session, line));
  });

  // etcdctl commits with context.Background(): no command timeout applies to txn.
  const resp = await orExit(
    session,
    client.txn(create(TxnRequestSchema, { compare: compares, success, failure })),
  );
  session.display.txn(resp);
}
