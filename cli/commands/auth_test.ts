import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Permission_Type, PermissionSchema } from "../../gen/authpb/auth_pb.ts";
import {
  AuthenticateRequestSchema,
  AuthenticateResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
  WatchResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { EtcdClient, EtcdClientError } from "../etcd_client.ts";
import { FrameDecoder } from "../grpc_client.ts";
import { encodeGrpcFrame } from "../../core/wire/mod.ts";
import { BufferSink, bytesSource, ExitSignal, StdinReader } from "../io.ts";
import { runCli } from "../main.ts";
import { prefixRangeEnd, roleGetText } from "../printers/auth.ts";
import {
  askPassword,
  authCfgFromCmd,
  goTrimSpace,
  readPasswordInteractive,
  scanPassword,
  Session,
} from "./global.ts";
import { permissionTypeFromString, permRange, PermRangeError } from "./role.ts";
import { newRootCommand } from "./root.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);

function session(stdin: string) {
  const stdout = new BufferSink();
  const stderr = new BufferSink();
  const s = new Session({
    stdout,
    stderr,
    stdin: new StdinReader(bytesSource(stdin)),
    env: [],
    now: () => new Date(0),
  });
  return { s, stdout, stderr };
}

async function run(args: string[], stdin = "") {
  const stdout = new BufferSink();
  const stderr = new BufferSink();
  const code = await runCli(args, {
    stdout,
    stderr,
    stdin: new StdinReader(bytesSource(stdin)),
    env: [["ETCDCTL_ENDPOINTS", "127.0.0.1:1"]],
    now: () => new Date(0),
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

const stty = "stty: 'standard input': Inappropriate ioctl for device\n";

Deno.test("permRange: a key, a range, --prefix, --from-key and the empty key as etcdctl sends them", () => {
  const cases: [string[], boolean, boolean, string, string][] = [
    [["k"], false, false, "k", ""],
    [["a", "c"], false, false, "a", "c"],
    [["a", "c", "ignored"], false, false, "a", "c"],
    [["foo"], true, false, "foo", "fop"],
    [["from"], false, true, "from", "\x00"],
    [[""], false, false, "\x00", ""],
    [[""], true, false, "\x00", "\x00"],
    [[""], false, true, "\x00", "\x00"],
  ];
  for (const [args, prefix, fromKey, key, end] of cases) {
    assert.deepEqual(
      permRange(args, prefix, fromKey),
      { key: b(key), rangeEnd: b(end) },
      `${args}`,
    );
  }
  const errors: [string[], boolean, boolean, string][] = [
    [["k"], true, true, "--from-key and --prefix flags are mutually exclusive"],
    [[""], true, true, "--from-key and --prefix flags are mutually exclusive"],
    [["k", "e"], true, false, "unexpected endkey argument with --prefix flag"],
    [["k", "e"], false, true, "unexpected endkey argument with --from-key flag"],
  ];
  for (const [args, prefix, fromKey, message] of errors) {
    assert.throws(() => permRange(args, prefix, fromKey), new PermRangeError(message));
  }
});

Deno.test("permission types are read, write and readwrite in any letter case", () => {
  assert.equal(permissionTypeFromString("read"), Permission_Type.READ);
  assert.equal(permissionTypeFromString("Write"), Permission_Type.WRITE);
  assert.equal(permissionTypeFromString("READWRITE"), Permission_Type.READWRITE);
  assert.throws(
    () => permissionTypeFromString("rw"),
    new PermRangeError("invalid permission type: rw"),
  );
});

Deno.test("prefixRangeEnd is clientv3's GetPrefixRangeEnd, open ended after all 0xff bytes", () => {
  assert.deepEqual(prefixRangeEnd(b("foo")), b("fop"));
  assert.deepEqual(prefixRangeEnd(new Uint8Array([0x61, 0xff])), b("b"));
  assert.deepEqual(prefixRangeEnd(new Uint8Array([0xff, 0xff])), new Uint8Array([0]));
  assert.deepEqual(prefixRangeEnd(new Uint8Array(0)), new Uint8Array([0]));
});

Deno.test("role get lists reads then writes, ranges with their prefix and open ends", () => {
  const perm = (permType: Permission_Type, key: string, rangeEnd: string) =>
    create(PermissionSchema, { permType, key: b(key), rangeEnd: b(rangeEnd) });
  const text = dec.decode(roleGetText("r", [
    perm(Permission_Type.READWRITE, "foo", "fop"),
    perm(Permission_Type.READ, "name", ""),
    perm(Permission_Type.WRITE, "a", "c"),
    perm(Permission_Type.READ, "x", "\x00"),
    perm(Permission_Type.WRITE, "\x00", "\x00"),
  ]));
  assert.equal(
    text,
    "Role r\nKV Read:\n\t[foo, fop) (prefix foo)\n\tname\n\t[x, <open ended>\n" +
      "KV Write:\n\t[foo, fop) (prefix foo)\n\t[a, c)\n\t[\x00, <open ended>\n",
  );
});

Deno.test("goTrimSpace trims what Go's unicode.IsSpace calls space, and nothing else", () => {
  assert.equal(goTrimSpace(" \t\u00a0pw\u0085\r"), "pw");
  assert.equal(goTrimSpace("\ufeffpw"), "\ufeffpw");
  assert.equal(goTrimSpace("a b"), "a b");
});

Deno.test("--interactive=false reads the first word of the line, nothing from an empty line", async () => {
  for (
    const [input, want] of [
      ["  tok rest\n", "tok"],
      ["pw", "pw"],
      ["\n", ""],
      ["\r\nx\n", ""],
      ["", ""],
      [" \t x\n", "x"],
    ]
  ) {
    const { s } = session(input);
    assert.equal(await scanPassword(s), want, JSON.stringify(input));
  }
});

Deno.test("a password prompt writes speakeasy's output and trims the answer", async () => {
  const { s, stdout, stderr } = session("  secret \r\nnext\n");
  assert.equal(await askPassword(s, "Password: "), "secret");
  assert.equal(stdout.text(), "Password: \n");
  assert.equal(stderr.text(), stty + stty);
  assert.equal(await askPassword(s, "Again: "), "next");
});

Deno.test("user add and passwd ask twice; empty or different answers end the run with 128", async () => {
  const ok = session("pw\npw\n");
  assert.equal(await readPasswordInteractive(ok.s, "u"), "pw");
  assert.equal(
    ok.stdout.text(),
    "Password of u: \nType password of u again for confirmation: \n",
  );
  for (
    const [input, message] of [
      ["a\nb\n", "given passwords are different"],
      ["\n", "empty password"],
      ["", "empty password"],
    ]
  ) {
    const { s, stderr } = session(input);
    await assert.rejects(
      () => readPasswordInteractive(s, "u"),
      (e) => e instanceof ExitSignal && e.code === 128,
    );
    assert.ok(stderr.text().endsWith(`Error: ${message}\n`), stderr.text());
  }
});

Deno.test("--user splits at the first colon; --password takes the whole --user as the name", async () => {
  const cases: [string[], string, { username: string; password: string } | undefined][] = [
    [[], "", undefined],
    [["--user=root:a:b"], "", { username: "root", password: "a:b" }],
    [["--user=root:"], "", { username: "root", password: "" }],
    [["--user=ro:ot", "--password=pw"], "", { username: "ro:ot", password: "pw" }],
    [["--user=root"], "typed\n", { username: "root", password: "typed" }],
  ];
  for (const [flags, stdin, want] of cases) {
    const { s } = session(stdin);
    const root = newRootCommand(s);
    root.mergePersistentFlags();
    const fs = root.flags();
    for (const f of flags) {
      const [name, value] = f.slice(2).split(/=(.*)/s);
      fs.set(name, value);
    }
    assert.deepEqual(await authCfgFromCmd(s, root), want, flags.join(" "));
  }
});

Deno.test("usage errors of user, role and auth exit 128 before any connection", async () => {
  const cases: [string[], string, string][] = [
    [["user", "add"], "", "user add command requires user name as its argument"],
    [["user", "add", ":pw"], "", "empty user name is not allowed"],
    [["user", "add", "u"], "a\nb\n", "given passwords are different"],
    [["user", "get", "a", "b"], "", "user get command requires user name as its argument"],
    [["user", "list", "x"], "", "user list command requires no arguments"],
    [
      ["user", "revoke-role", "u"],
      "",
      "user revoke-role requires user name and role name as its argument",
    ],
    [["role", "delete"], "", "role delete command requires role name as its argument"],
    [["role", "grant-permission", "r", "x", "k"], "", "invalid permission type: x"],
    [
      ["role", "revoke-permission", "r", "k", "e", "--from-key"],
      "",
      "unexpected endkey argument with --from-key flag",
    ],
    [["auth", "enable", "x"], "", "auth enable command does not accept any arguments"],
  ];
  for (const [args, stdin, message] of cases) {
    const r = await run(args, stdin);
    assert.equal(r.code, 128, args.join(" "));
    assert.ok(r.stderr.endsWith(`Error: ${message}\n`), r.stderr);
  }
});

// ---------------------------------------------------------------------------------------------
// The token: a scripted gRPC server checks what the client sends.

interface Seen {
  path: string;
  token: string | undefined;
}

/**
 * A gRPC server whose Authenticate hands out "t1", "t2", ... (or refuses as scripted), and whose
 * Range answers with the status `rangeStatus` returns for each call.
 */
async function withAuthServer(
  script: {
    authenticate?: (n: number) => [number, string] | undefined;
    range: (n: number, token: string | undefined) => [number, string] | undefined;
  },
  fn: (port: number, seen: Seen[]) => Promise<void>,
): Promise<void> {
  const seen: Seen[] = [];
  let logins = 0;
  let ranges = 0;
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"]);
    const token = headers["token"] === undefined ? undefined : String(headers["token"]);
    seen.push({ path, token });
    const decoder = new FrameDecoder();
    const msgs: Uint8Array[] = [];
    stream.on("data", (c: Uint8Array) => msgs.push(...decoder.push(new Uint8Array(c))));
    const reply = (status: [number, string] | undefined, body: Uint8Array | undefined) => {
      if (status) {
        stream.respond({
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": String(status[0]),
          "grpc-message": status[1],
        }, { endStream: true });
        return;
      }
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
        waitForTrailers: true,
      });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(body ? encodeGrpcFrame(body) : undefined);
    };
    if (path === "/etcdserverpb.Auth/Authenticate") {
      stream.on("end", () => {
        const req = fromBinary(AuthenticateRequestSchema, msgs[0]);
        logins++;
        const refusal = script.authenticate?.(logins);
        const resp = create(AuthenticateResponseSchema, { token: `t${logins}-${req.name}` });
        reply(refusal, toBinary(AuthenticateResponseSchema, resp));
      });
    } else if (path === "/etcdserverpb.KV/Range") {
      stream.on("end", () => {
        fromBinary(RangeRequestSchema, msgs[0]);
        ranges++;
        const status = script.range(ranges, token);
        reply(status, toBinary(RangeResponseSchema, create(RangeResponseSchema, {})));
      });
    } else if (path === "/etcdserverpb.Watch/Watch") {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(encodeGrpcFrame(toBinary(WatchResponseSchema, create(WatchResponseSchema, {}))));
    } else {
      stream.respond({ ":status": 200, "grpc-status": "12" }, { endStream: true });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    await fn(port, seen);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function client(port: number, username?: string, password?: string) {
  const logs: string[] = [];
  const c = new EtcdClient({
    endpoints: [`127.0.0.1:${port}`],
    dialTimeoutMs: 2000,
    keepaliveTimeMs: 0,
    keepaliveTimeoutMs: 0,
    username,
    password,
    log: (line) => logs.push(line),
    now: () => new Date(0),
  });
  return { c, logs };
}

const INVALID_ARGUMENT = 3;
const FAILED_PRECONDITION = 9;
const UNAUTHENTICATED = 16;
const req = create(RangeRequestSchema, { key: b("k") });
const paths = (seen: Seen[]) => seen.map((s) => `${s.path.split("/")[2]} ${s.token ?? "-"}`);

Deno.test({
  name: "the token rides on every call, and an invalid one means a new login and a retry",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withAuthServer({
      range: (n) => n === 2 ? [UNAUTHENTICATED, "etcdserver: invalid auth token"] : undefined,
    }, async (port, seen) => {
      const { c, logs } = client(port, "root", "pw");
      try {
        await c.authenticate();
        await c.range(req);
        await c.range(req);
        const watch = await c.watchStream(true);
        await watch.receive();
        watch.cancel();
      } finally {
        c.close();
      }
      assert.deepEqual(paths(seen), [
        "Authenticate -",
        "Range t1-root",
        "Range t1-root",
        "Authenticate -",
        "Range t2-root",
        // clientv3's stream interceptor logs in again before it opens any stream.
        "Authenticate -",
        "Watch t3-root",
      ]);
      assert.equal(logs.length, 1);
      assert.match(
        logs[0],
        /"attempt":0,"error":"rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"/,
      );
    });
  },
});

Deno.test({
  name: "'user name is empty' with credentials refreshes the token; without them it is final",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withAuthServer({
      range: (_n, token) =>
        token === undefined || token.startsWith("t1")
          ? [INVALID_ARGUMENT, "etcdserver: user name is empty"]
          : undefined,
    }, async (port, seen) => {
      const withUser = client(port, "root", "pw");
      const anonymous = client(port);
      try {
        await withUser.c.authenticate();
        await withUser.c.range(req);
        await anonymous.c.authenticate();
        await assert.rejects(
          () => anonymous.c.range(req),
          (e) => e instanceof EtcdClientError && e.message === "etcdserver: user name is empty",
        );
      } finally {
        withUser.c.close();
        anonymous.c.close();
      }
      assert.deepEqual(paths(seen), [
        "Authenticate -",
        "Range t1-root",
        "Authenticate -",
        "Range t2-root",
        "Range -",
      ]);
    });
  },
});

Deno.test({
  name: "with auth disabled at login the client never sends a token; a failed refresh is logged",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withAuthServer({
      authenticate: (n) =>
        n === 1
          ? [FAILED_PRECONDITION, "etcdserver: authentication is not enabled"]
          : [INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password"],
      range: (n) => n === 1 ? undefined : [UNAUTHENTICATED, "etcdserver: invalid auth token"],
    }, async (port, seen) => {
      const { c, logs } = client(port, "root", "pw");
      try {
        await c.authenticate();
        await c.range(req);
        await assert.rejects(
          () => c.range(req),
          (e) =>
            e instanceof EtcdClientError &&
            e.message === "etcdserver: authentication failed, invalid user ID or password",
        );
      } finally {
        c.close();
      }
      assert.deepEqual(paths(seen), ["Authenticate -", "Range -", "Range -", "Authenticate -"]);
      assert.equal(logs.length, 4);
      assert.match(logs[3], /"msg":"retrying of unary invoker failed to fetch new auth token"/);
      assert.match(
        logs[3],
        /"error":"etcdserver: authentication failed, invalid user ID or password"}\n$/,
      );
    });
  },
});
