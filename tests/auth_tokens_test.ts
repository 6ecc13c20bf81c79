/**
 * Auth tokens end to end, detcd against real etcd 3.4.23 as the reference:
 *
 * 1. `--auth-token jwt,…` on one member (RS256 and ES256 keys made by openssl): the same etcdctl
 *    script (root, auth enable, a user with a prefix role inside and outside its prefix) prints the
 *    same on both; the JWT each server issues has the same header and claims (`exp` ≈ now + ttl),
 *    and, since both members share the key, each server accepts the other's token.
 * 2. Bad `--auth-token` values (unknown type, a missing key file, an unknown sign method, EdDSA,
 *    a key of the wrong type): both refuse to start, exit 1, and log the same key error lines
 *    (compared in etcd's `--logger=zap` form, the one detcd writes).
 * 3. Simple tokens on a 3-member cluster of each kind: a token issued through member 1 works at
 *    once on members 2 and 3, deleting its user through member 2 kills it on member 3, and
 *    `auth disable` kills every token (also after re-enabling).
 * 4. `--auth-token-ttl 2`: a token unused for longer than its TTL (plus the 1 s sweep) is refused
 *    with `etcdserver: invalid auth token` (Unauthenticated); one used every second lives on.
 *
 * Raw calls go over gRPC with the token in the `token` metadata, as clientv3 sends it.
 */

import assert from "node:assert/strict";
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  AuthDisableRequestSchema,
  AuthDisableResponseSchema,
  AuthEnableRequestSchema,
  AuthEnableResponseSchema,
  AuthenticateRequestSchema,
  AuthenticateResponseSchema,
  AuthUserDeleteRequestSchema,
  AuthUserDeleteResponseSchema,
  PutRequestSchema,
  PutResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { encodeGrpcFrame, GRPC_PREFIX_BYTES, grpcFrameLength } from "../core/wire/mod.ts";
import {
  assertReference,
  compareRuns,
  freePort,
  type Member,
  type MemberKind,
  REPO_ROOT,
  requireDetcd,
  requireReference,
  runCtl,
  runScript,
  type ScriptStep,
  SERVER_V8_FLAGS,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  startMember,
  type StepOutcome,
  which,
} from "./harness.ts";
import { startCluster } from "./cluster_harness.ts";

const reference = requireReference();
const detcdPresent = requireDetcd();
const openssl = which("openssl");
if (openssl === undefined) console.warn("ignoring the JWT tests: openssl not on PATH");

const OPTIONS = {
  ignore: reference.ignore || detcdPresent.ignore,
  sanitizeResources: false,
  sanitizeOps: false,
};

const KINDS: [MemberKind, MemberKind] = ["etcd", "detcd"];
const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Raw gRPC with a token

/** A gRPC status, as `code N: message`, or "OK". */
class StatusError extends Error {
  constructor(readonly code: number, readonly grpcMessage: string) {
    super(`code ${code}: ${grpcMessage}`);
  }
}

/** Unary etcd calls over one HTTP/2 connection, each with an optional `token` metadata. */
class RawClient {
  private session: http2.ClientHttp2Session;

  constructor(readonly endpoint: string) {
    this.session = http2.connect(`http://${endpoint}`);
    this.session.on("error", () => {
      // surfaced per call
    });
  }

  close(): void {
    this.session.destroy();
  }

  call<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    init: MessageInitShape<I>,
    token?: string,
  ): Promise<MessageShape<O>> {
    const frame = encodeGrpcFrame(toBinary(input, create(input, init)));
    return new Promise((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = {
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        "te": "trailers",
      };
      if (token !== undefined) headers.token = token;
      const request = this.session.request(headers);
      const timer = setTimeout(() => request.close(http2.constants.NGHTTP2_CANCEL), 10_000);
      const chunks: Uint8Array[] = [];
      let status: number | undefined;
      let message = "";
      const takeStatus = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] === undefined) return;
        status = Number(h["grpc-status"]);
        message = decodeURIComponent(String(h["grpc-message"] ?? ""));
      };
      request.on("response", takeStatus);
      request.on("trailers", takeStatus);
      request.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      request.on("error", reject);
      request.on("close", () => {
        clearTimeout(timer);
        if (status === undefined) return reject(new Error(`${path}: closed without a status`));
        if (status !== 0) return reject(new StatusError(status, message));
        const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let offset = 0;
        for (const c of chunks) {
          all.set(c, offset);
          offset += c.length;
        }
        if (all.length < GRPC_PREFIX_BYTES) return reject(new Error(`${path}: no message`));
        const length = grpcFrameLength(all);
        resolve(fromBinary(output, all.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + length)));
      });
      request.end(frame);
    });
  }

  async authenticate(name: string, password: string): Promise<string> {
    const r = await this.call(
      "/etcdserverpb.Auth/Authenticate",
      AuthenticateRequestSchema,
      AuthenticateResponseSchema,
      { name, password },
    );
    return r.token;
  }

  range(key: string, token?: string, serializable = false) {
    return this.call("/etcdserverpb.KV/Range", RangeRequestSchema, RangeResponseSchema, {
      key: enc.encode(key),
      serializable,
    }, token);
  }

  put(key: string, value: string, token?: string) {
    return this.call("/etcdserverpb.KV/Put", PutRequestSchema, PutResponseSchema, {
      key: enc.encode(key),
      value: enc.encode(value),
    }, token);
  }

  userDelete(name: string, token?: string) {
    return this.call(
      "/etcdserverpb.Auth/UserDelete",
      AuthUserDeleteRequestSchema,
      AuthUserDeleteResponseSchema,
      { name },
      token,
    );
  }

  authDisable(token?: string) {
    return this.call(
      "/etcdserverpb.Auth/AuthDisable",
      AuthDisableRequestSchema,
      AuthDisableResponseSchema,
      {},
      token,
    );
  }

  authEnable(token?: string) {
    return this.call(
      "/etcdserverpb.Auth/AuthEnable",
      AuthEnableRequestSchema,
      AuthEnableResponseSchema,
      {},
      token,
    );
  }
}

/** "OK" or "code N: message": what a call came back with, comparable across servers. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (e) {
    if (e instanceof StatusError) return e.message;
    throw e;
  }
}

const INVALID_TOKEN = "code 16: etcdserver: invalid auth token";
const PERMISSION_DENIED = "code 7: etcdserver: permission denied";

/** Runs etcdctl commands that must succeed (setup). */
async function setup(endpoints: string, commands: string[][]): Promise<void> {
  for (const args of commands) {
    const r = await runCtl("etcdctl", [`--endpoints=${endpoints}`, ...args]);
    assert.equal(r.code, 0, `etcdctl ${args.join(" ")} on ${endpoints}: ${r.stderr}`);
  }
}

const ROOT = "--user=root:rootpw";

/** Root, auth on, and user u with role r that may read and write the prefix foo. */
const AUTH_SETUP: string[][] = [
  ["user", "add", "root:rootpw"],
  ["auth", "enable"],
  ["role", "add", "r", ROOT],
  ["role", "grant-permission", "r", "readwrite", "foo", "--prefix", ROOT],
  ["user", "add", "u:upw", ROOT],
  ["user", "grant-role", "u", "r", ROOT],
];

// ---------------------------------------------------------------------------------------------
// 1. JWT on one member

/** Makes the key pair of a sign method with openssl; returns [public, private] file paths. */
async function makeKeys(dir: string, method: string): Promise<[string, string]> {
  const priv = `${dir}/${method}.key`;
  const pub = `${dir}/${method}.pub`;
  const run = async (args: string[]) => {
    const out = await new Deno.Command(openssl!, { args, stdout: "piped", stderr: "piped" })
      .output();
    assert.equal(out.code, 0, `openssl ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  };
  if (method.startsWith("RS") || method.startsWith("PS")) {
    await run(["genrsa", "-out", priv, "2048"]);
    await run(["rsa", "-in", priv, "-pubout", "-out", pub]);
  } else if (method === "ES256") {
    await run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", priv]);
    await run(["ec", "-in", priv, "-pubout", "-out", pub]);
  } else {
    throw new Error(`no key recipe for ${method}`);
  }
  return [pub, priv];
}

function fromBase64Url(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

interface DecodedJwt {
  header: string;
  claims: string;
  payload: { exp: number; revision: number; username: string };
  signatureBytes: number;
}

function decodeJwt(token: string): DecodedJwt {
  const parts = token.split(".");
  assert.equal(parts.length, 3, `not a JWS compact token: ${token}`);
  const claims = dec.decode(fromBase64Url(parts[1]));
  return {
    header: dec.decode(fromBase64Url(parts[0])),
    claims,
    payload: JSON.parse(claims),
    signatureBytes: fromBase64Url(parts[2]).length,
  };
}

/** The etcdctl script both JWT members run. */
const JWT_SCRIPT: ScriptStep[] = [
  { args: ["user", "add", "root:rootpw"] },
  { args: ["auth", "enable"] },
  { args: ["put", "k", "v"] },
  { args: ["put", "k", "v", ROOT] },
  { args: ["get", "k", ROOT] },
  { args: ["get", "k", "--user=root:wrong"] },
  { args: ["role", "add", "r", ROOT] },
  { args: ["role", "grant-permission", "r", "readwrite", "foo", "--prefix", ROOT] },
  { args: ["user", "add", "u:upw", ROOT] },
  { args: ["user", "grant-role", "u", "r", ROOT] },
  { args: ["put", "foo1", "x", "--user=u:upw"] },
  { args: ["get", "foo", "--prefix", "--user=u:upw"] },
  { args: ["put", "bar", "x", "--user=u:upw"] },
  { args: ["get", "k", "--user=u:upw"] },
  { args: ["del", "foo1", "--user=u:upw"] },
  { args: ["user", "list", "--user=u:upw"] },
  { args: ["user", "get", "u", "--detail", ROOT] },
  { args: ["endpoint", "status", ROOT] },
];

for (const method of ["RS256", "ES256"]) {
  Deno.test({
    name: `jwt ${method} on one member: etcdctl script and issued tokens as etcd's`,
    ...OPTIONS,
    ignore: OPTIONS.ignore || openssl === undefined,
    fn: async () => {
      assertReference();
      const dir = await Deno.makeTempDir({ prefix: "detcd-jwt-keys-" });
      let members: Member[] = [];
      try {
        const [pub, priv] = await makeKeys(dir, method);
        const flag = `jwt,pub-key=${pub},priv-key=${priv},sign-method=${method},ttl=5m`;
        const started = await Promise.allSettled(KINDS.map((kind) =>
          startMember({
            kind,
            name: SHARED_MEMBER_NAME,
            advertisePeerUrl: SHARED_PEER_URL,
            extraArgs: ["--auth-token", flag],
          })
        ));
        members = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
        for (const r of started) if (r.status === "rejected") throw r.reason;
        const [etcd, detcd] = members;

        const runs: [StepOutcome[], StepOutcome[]] = [[], []];
        for (const step of JWT_SCRIPT) {
          const [a, b] = await Promise.all([
            runScript("etcdctl", etcd, [step]),
            runScript("etcdctl", detcd, [step]),
          ]);
          runs[0].push(...a);
          runs[1].push(...b);
        }
        // etcd answers a request from its apply loop before it records that entry's index as
        // applied, so a status read right after the login's entry may show applied = index - 1.
        for (const run of runs) {
          const last = run[run.length - 1];
          last.stdout = last.stdout.replace(
            /, (\d+), (\d+), \n/,
            (line, index, applied) =>
              Number(applied) === Number(index) || Number(applied) === Number(index) - 1
                ? `, ${index}, <APPLIED>, \n`
                : line,
          );
        }
        const report = compareRuns(["etcd", "detcd"], runs[0], runs[1]);
        assert.equal(report, undefined, report);
        // The script did what it is for: root and u in their prefix pass, u outside is refused.
        assert.equal(runs[0][4].stdout, "k\nv\n");
        assert.equal(runs[0][11].stdout, "foo1\nx\n");
        assert.match(runs[0][12].stderr, /permission denied/);

        // The tokens themselves, fetched raw.
        const clients = members.map((m) => new RawClient(m.endpoint));
        try {
          const before = Math.floor(Date.now() / 1000);
          const tokens = await Promise.all(clients.map((c) => c.authenticate("u", "upw")));
          const after = Math.ceil(Date.now() / 1000);
          const [te, td] = tokens.map(decodeJwt);
          assert.equal(td.header, te.header, "JWT header");
          assert.deepEqual(JSON.parse(te.header), { alg: method, typ: "JWT" });
          const mask = (claims: string) => claims.replace(/"exp":\d+/, '"exp":<EXP>');
          assert.equal(mask(td.claims), mask(te.claims), "JWT claims (exp aside)");
          assert.deepEqual(Object.keys(td.payload).sort(), ["exp", "revision", "username"]);
          assert.equal(td.payload.username, "u");
          assert.equal(td.payload.revision, te.payload.revision);
          for (const t of [te, td]) {
            assert.ok(
              t.payload.exp >= before + 300 && t.payload.exp <= after + 300,
              `exp ${t.payload.exp} not now+5m (${before + 300}..${after + 300})`,
            );
          }
          assert.equal(td.signatureBytes, te.signatureBytes, "signature length");
          // Same key, same auth revision: each server takes the other's token.
          const cross = await Promise.all([
            outcome(clients[0].range("foo1", tokens[0])),
            outcome(clients[0].range("foo1", tokens[1])),
            outcome(clients[1].range("foo1", tokens[0])),
            outcome(clients[1].range("foo1", tokens[1])),
            outcome(clients[1].range("k", tokens[0])),
            outcome(clients[1].range("foo1", tokens[1].slice(0, -2) + "xx")),
            outcome(clients[0].range("foo1", tokens[0].slice(0, -2) + "xx")),
          ]);
          assert.deepEqual(cross, [
            "OK",
            "OK",
            "OK",
            "OK",
            PERMISSION_DENIED,
            INVALID_TOKEN,
            INVALID_TOKEN,
          ]);
        } finally {
          for (const c of clients) c.close();
        }
      } finally {
        await Promise.all(members.map((m) => m.stop()));
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  });
}

// ---------------------------------------------------------------------------------------------
// 2. Bad --auth-token values

interface Refusal {
  code: number;
  /** The warn/error/fatal lines about the token provider: msg plus error (and type). */
  lines: string[];
  log: string;
}

/** Messages of the lines that say why the provider could not be made. */
const TOKEN_MESSAGES = new Set([
  "unknown token type",
  "problem loading JWT options",
  "failed to create token provider",
]);

/** Starts a member that must refuse to start; returns its exit code and token log lines. */
async function startRefused(kind: MemberKind, authToken: string): Promise<Refusal> {
  const dir = await Deno.makeTempDir({ prefix: `detcd-badtoken-${kind}-` });
  try {
    const client = `http://127.0.0.1:${freePort()}`;
    const peer = `http://127.0.0.1:${freePort()}`;
    const flags = [
      "--logger=zap",
      "--data-dir",
      `${dir}/data`,
      "--listen-client-urls",
      client,
      "--advertise-client-urls",
      client,
      "--listen-peer-urls",
      peer,
      "--initial-advertise-peer-urls",
      peer,
      "--initial-cluster",
      `default=${peer}`,
      "--auth-token",
      authToken,
    ];
    const [program, args] = kind === "etcd" ? ["etcd", flags] : [Deno.execPath(), [
      "run",
      "-A",
      ...SERVER_V8_FLAGS,
      `${REPO_ROOT}/server/main.ts`,
      ...flags,
    ]];
    const child = new Deno.Command(program, {
      args,
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const out = await child.output();
    clearTimeout(timer);
    const log = dec.decode(out.stdout) + dec.decode(out.stderr);
    const lines: string[] = [];
    for (const line of log.split("\n")) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      if (!TOKEN_MESSAGES.has(String(entry.msg))) continue;
      const type = entry.type === undefined ? "" : ` type=${entry.type}`;
      lines.push(`${entry.msg}:${type} error=${entry.error}`);
    }
    return { code: out.code, lines, log };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name: "bad --auth-token values: detcd refuses to start with etcd's exit code and errors",
  ...OPTIONS,
  ignore: OPTIONS.ignore || openssl === undefined,
  fn: async () => {
    assertReference();
    const dir = await Deno.makeTempDir({ prefix: "detcd-badtoken-keys-" });
    try {
      const [rsPub, rsPriv] = await makeKeys(dir, "RS256");
      const [esPub, esPriv] = await makeKeys(dir, "ES256");
      const cases: Record<string, string> = {
        "unknown type": "bogus",
        "missing key file": `jwt,pub-key=${dir}/nosuch.pub,priv-key=${rsPriv},sign-method=RS256`,
        "bad sign-method": `jwt,pub-key=${rsPub},priv-key=${rsPriv},sign-method=XX256`,
        "no sign-method": `jwt,pub-key=${rsPub},priv-key=${rsPriv}`,
        "malformed option": `jwt,pub-key=${rsPub},priv-key`,
        "EdDSA (etcd 3.4.23 has no Ed25519 key parsing)":
          `jwt,pub-key=${esPub},priv-key=${esPriv},sign-method=EdDSA`,
        "EC key for RS256": `jwt,pub-key=${esPub},priv-key=${esPriv},sign-method=RS256`,
      };
      const problems: string[] = [];
      for (const [label, flag] of Object.entries(cases)) {
        const [e, d] = await Promise.all(KINDS.map((kind) => startRefused(kind, flag)));
        // The reference refused as expected, and said why.
        assert.notEqual(e.code, 0, `etcd started with ${flag}`);
        assert.ok(e.lines.length > 0, `etcd logged no token error for ${flag}:\n${e.log}`);
        if (d.code !== e.code || JSON.stringify(d.lines) !== JSON.stringify(e.lines)) {
          problems.push(
            `${label} (--auth-token ${flag.replaceAll(dir, "<DIR>")}):\n` +
              `  etcd  exit ${e.code}: ${JSON.stringify(e.lines).replaceAll(dir, "<DIR>")}\n` +
              `  detcd exit ${d.code}: ${JSON.stringify(d.lines).replaceAll(dir, "<DIR>")}`,
          );
        }
      }
      // Both the cause line ("unknown token type", "problem loading JWT options") and the fatal
      // one must match.
      assert.equal(problems.length, 0, `${problems.length} cases differ:\n${problems.join("\n")}`);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

// ---------------------------------------------------------------------------------------------
// 3. Simple tokens on a 3-member cluster

/** The scenario on one cluster; returns each step's label and outcome. */
async function simpleTokensOnCluster(kind: MemberKind): Promise<string[]> {
  const cluster = await startCluster({ kind, size: 3 });
  const clients = cluster.members.map((m) => new RawClient(m.endpoint));
  const [m1, m2, m3] = clients;
  const log: string[] = [];
  const step = async (label: string, call: Promise<unknown>) => {
    log.push(`${label}: ${await outcome(call)}`);
  };
  try {
    await setup(cluster.endpoints(), AUTH_SETUP);
    const root = await m1.authenticate("root", "rootpw");
    const u = await m1.authenticate("u", "upw");
    assert.match(u, /^[a-zA-Z]{16}\.\d+$/, "a simple token");
    // Serializable reads do not wait for a read index: only the token's own index is waited for.
    await step("u token from m1, serializable read on m2", m2.range("foo", u, true));
    await step("u token from m1, serializable read on m3", m3.range("foo", u, true));
    for (let i = 0; i < 5; i++) {
      const t = await m1.authenticate("u", "upw");
      const rs = await Promise.all([
        outcome(m2.range("foo", t, true)),
        outcome(m3.range("foo", t, true)),
        outcome(m3.put(`foo${i}`, "x", t)),
      ]);
      log.push(`fresh u token #${i} from m1, at once on m2/m3: ${rs.join(" | ")}`);
    }
    await step("u token outside its prefix on m2", m2.range("bar", u));
    await step("root deletes u through m2", m2.userDelete("u", root));
    // Fired at once, while m1 and m3 may not have applied the deletion yet: a linearizable read
    // waits for the read index before etcd resolves the token, so the token is dead there too.
    const afterDelete = await Promise.all([
      outcome(m3.range("foo", u)),
      outcome(m1.range("foo", u)),
      outcome(m2.range("foo", u, true)),
    ]);
    log.push(`u token after its deletion (m3, m1 linearizable; m2): ${afterDelete.join(" | ")}`);
    await step("root token still valid on m3", m3.range("foo", root));
    // Several disable/enable rounds, each read fired at once after the disable: etcd resolves the
    // token only after a linearizable read's barrier, so members that had not applied the disable
    // yet refuse the token too; detcd does the same (it once resolved the token before the
    // barrier, and a lagging member served the read with the dead token).
    for (let round = 1; round <= 3; round++) {
      const t = await m1.authenticate("root", "rootpw");
      await step(`round ${round}: root token from m1 on m3`, m3.range("foo", t));
      await step(`round ${round}: root disables auth through m3`, m3.authDisable(t));
      const afterDisable = await Promise.all([
        outcome(m1.range("foo", t)),
        outcome(m2.range("foo", t)),
        outcome(m3.range("foo", t, true)),
      ]);
      log.push(
        `round ${round}: token after disable (m1, m2 linearizable; m3): ${
          afterDisable.join(" | ")
        }`,
      );
      await step(`round ${round}: no token after disable on m2`, m2.range("foo"));
      await step(`round ${round}: auth enable through m1`, m1.authEnable());
      await step(`round ${round}: token after re-enable on m2`, m2.range("foo", t));
    }
    await step("first root token after re-enable on m3", m3.range("foo", root, true));
    const fresh = await m2.authenticate("root", "rootpw");
    await step("new root token from m2, serializable on m1", m1.range("foo", fresh, true));
    await step("new root token from m2, on m3", m3.range("foo", fresh));

    return log;
  } finally {
    for (const c of clients) c.close();
    await cluster.stop();
  }
}

Deno.test({
  name: "simple tokens on a 3-member cluster: valid everywhere at once, die with user and auth",
  ...OPTIONS,
  fn: async () => {
    assertReference();
    const [etcd, detcd] = await Promise.all(KINDS.map((kind) => simpleTokensOnCluster(kind)));
    const expected = [
      "u token from m1, serializable read on m2: OK",
      "u token from m1, serializable read on m3: OK",
      ...[0, 1, 2, 3, 4].map((i) => `fresh u token #${i} from m1, at once on m2/m3: OK | OK | OK`),
      `u token outside its prefix on m2: ${PERMISSION_DENIED}`,
      "root deletes u through m2: OK",
      `u token after its deletion (m3, m1 linearizable; m2): ${
        [INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN].join(" | ")
      }`,
      "root token still valid on m3: OK",
      ...[1, 2, 3].flatMap((round) => [
        `round ${round}: root token from m1 on m3: OK`,
        `round ${round}: root disables auth through m3: OK`,
        `round ${round}: token after disable (m1, m2 linearizable; m3): ${
          [INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN].join(" | ")
        }`,
        `round ${round}: no token after disable on m2: OK`,
        `round ${round}: auth enable through m1: OK`,
        `round ${round}: token after re-enable on m2: ${INVALID_TOKEN}`,
      ]),
      `first root token after re-enable on m3: ${INVALID_TOKEN}`,
      "new root token from m2, serializable on m1: OK",
      "new root token from m2, on m3: OK",
    ];
    // The reference does what the expectation says, and detcd does what the reference does.
    assert.deepEqual(etcd, expected, "etcd 3.4.23 (the reference)");
    assert.deepEqual(detcd, etcd, "detcd vs etcd");
  },
});

// ---------------------------------------------------------------------------------------------
// 4. Simple token TTL

async function tokenTtl(kind: MemberKind): Promise<string[]> {
  const member = await startMember({ kind, extraArgs: ["--auth-token-ttl", "2"] });
  const client = new RawClient(member.endpoint);
  const log: string[] = [];
  try {
    await setup(member.endpoint, AUTH_SETUP.slice(0, 2));
    const idle = await client.authenticate("root", "rootpw");
    const busy = await client.authenticate("root", "rootpw");
    for (let i = 1; i <= 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      log.push(`busy token after ${i} s: ${await outcome(client.range("k", busy))}`);
    }
    log.push(`idle token after 5 s: ${await outcome(client.range("k", idle))}`);
    log.push(`busy token still: ${await outcome(client.range("k", busy))}`);
    log.push(`idle token again: ${await outcome(client.put("k", "v", idle))}`);
    const fresh = await client.authenticate("root", "rootpw");
    log.push(`new token: ${await outcome(client.put("k", "v", fresh))}`);
    return log;
  } finally {
    client.close();
    await member.stop();
  }
}

Deno.test({
  name: "--auth-token-ttl 2: an idle simple token expires, a used one lives, as on etcd",
  ...OPTIONS,
  fn: async () => {
    assertReference();
    const [etcd, detcd] = await Promise.all(KINDS.map((kind) => tokenTtl(kind)));
    const expected = [
      ...[1, 2, 3, 4, 5].map((i) => `busy token after ${i} s: OK`),
      `idle token after 5 s: ${INVALID_TOKEN}`,
      "busy token still: OK",
      `idle token again: ${INVALID_TOKEN}`,
      "new token: OK",
    ];
    assert.deepEqual(etcd, expected, "etcd 3.4.23 (the reference)");
    assert.deepEqual(detcd, etcd, "detcd vs etcd");
  },
});
