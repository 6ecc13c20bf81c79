/**
 * detcdctl over TLS against the real etcdctl 3.4.23, both talking to real etcd 3.4.23 serving
 * https (`--cert-file/--key-file/--trusted-ca-file/--client-cert-auth`). The certificates are
 * made here with `openssl`: a CA, a server certificate for 127.0.0.1 and localhost, one for
 * another host name, an expired one, a CA that signed none of them, client certificates.
 *
 * The working script (put, get, watch, lease, member list, endpoint status/health, snapshot save,
 * the ETCDCTL_CACERT/CERT/KEY forms) runs once per CLI, each on its own fresh member with the same
 * name and advertised peer URL, so IDs, revisions and terms agree. The refusals (server
 * certificate from an unknown CA, for another host, expired; plain HTTP when TLS is on and TLS
 * when it is off; no or a foreign client certificate; unreadable TLS files) run against shared
 * members. stdout, stderr and exit codes must be identical after normalising timestamps, the
 * client id, ports, lease IDs, temp paths, snapshot sizes and durations, the current time in Go's
 * "certificate has expired" text, and one race of etcdctl's own (below).
 *
 * Without etcd/etcdctl/openssl the tests are ignored unless DETCD_REQUIRE_REFERENCE is set (1 or true).
 */

import assert from "node:assert/strict";
import {
  assertReference,
  type CtlKind,
  freePort,
  type Member,
  normaliseOutput,
  referenceRequired,
  requireReference,
  runCtl,
  settleEtcdAppliedIndex,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  shellQuote,
  startMember,
  which,
} from "./harness.ts";

const reference = requireReference();
const ignore = reference.ignore ||
  (which("openssl") === undefined && !referenceRequired());

/** Runs openssl, failing the test with its stderr when it fails. */
async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A self-signed CA. */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "365",
    "-subj",
    `/CN=${name}`,
  ]);
}

/**
 * A key and a certificate signed by `ca` for `cn` with the given subjectAltName; `expired` makes
 * one valid only on 1-2 January 2020 (through `openssl ca`, which takes explicit dates).
 */
async function makeLeaf(
  dir: string,
  name: string,
  ca: string,
  cn: string,
  san: string,
  expired = false,
): Promise<void> {
  await openssl(dir, [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${cn}`,
  ]);
  await Deno.writeTextFile(
    `${dir}/${name}.ext`,
    `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  if (!expired) {
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "365",
      "-extfile",
      `${name}.ext`,
    ]);
    return;
  }
  await Deno.mkdir(`${dir}/cadb`, { recursive: true });
  await Deno.writeTextFile(`${dir}/cadb/index.txt`, "");
  await Deno.writeTextFile(`${dir}/cadb/serial`, "01\n");
  await Deno.writeTextFile(
    `${dir}/ca.cnf`,
    "[ca]\ndefault_ca = x\n[x]\ndatabase = cadb/index.txt\nnew_certs_dir = cadb\n" +
      "serial = cadb/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n" +
      "[p]\ncommonName = supplied\n",
  );
  await openssl(dir, [
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-cert",
    `${ca}.crt`,
    "-keyfile",
    `${ca}.key`,
    "-in",
    `${name}.csr`,
    "-out",
    `${name}.crt`,
    "-startdate",
    "20200101000000Z",
    "-enddate",
    "20200102000000Z",
    "-extfile",
    `${name}.ext`,
    "-notext",
  ]);
}

/** Every certificate the tests use, in a fresh directory. */
async function makeCertificates(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "detcd-tls-certs-" });
  await makeCa(dir, "ca");
  await makeCa(dir, "otherca");
  const ip = "IP:127.0.0.1,DNS:localhost";
  await makeLeaf(dir, "server", "ca", "server", ip);
  await makeLeaf(dir, "wronghost", "ca", "wronghost", "DNS:example.invalid");
  await makeLeaf(dir, "expired", "ca", "expired", ip, true);
  await makeLeaf(dir, "client", "ca", "root", "DNS:client");
  await makeLeaf(dir, "foreignclient", "otherca", "root", "DNS:client");
  await Deno.writeTextFile(`${dir}/junk.pem`, "not a PEM file\n");
  return dir;
}

/** Starts real etcd serving https with `cert` (and client certificate checks when `clientAuth`). */
function startTlsMember(certs: string, cert: string, clientAuth: boolean): Promise<Member> {
  const clientPort = freePort();
  const url = `https://127.0.0.1:${clientPort}`;
  return startMember({
    kind: "etcd",
    name: SHARED_MEMBER_NAME,
    advertisePeerUrl: SHARED_PEER_URL,
    clientPort,
    // Later flags win: the client URLs become https.
    extraArgs: [
      "--listen-client-urls",
      url,
      "--advertise-client-urls",
      url,
      "--cert-file",
      `${certs}/${cert}.crt`,
      "--key-file",
      `${certs}/${cert}.key`,
      ...(clientAuth ? ["--trusted-ca-file", `${certs}/ca.crt`, "--client-cert-auth"] : []),
    ],
  });
}

/**
 * One CLI invocation. `{EP}` is the side's TLS member ("127.0.0.1:<port>"), `{WRONG}`,
 * `{EXPIRED}`, `{NOAUTH}` and `{PLAIN}` the shared members, `{CERTS}` the certificate directory,
 * `{DIR}` a temp directory, `{NAME}` a capture.
 */
interface Step {
  args: string[];
  env?: Record<string, string>;
  /** The CLI is killed after this long (watch). */
  timeoutMs?: number;
  capture?: { name: string; pattern: RegExp };
}

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

/** Short timeouts: every refusal ends at --command-timeout. */
const FAST = ["--dial-timeout=1s", "--command-timeout=2s"];
/** Full client credentials. */
const TLS = ["--cacert={CERTS}/ca.crt", "--cert={CERTS}/client.crt", "--key={CERTS}/client.key"];

async function runSide(
  ctl: CtlKind,
  members: Record<string, Member>,
  certs: string,
  steps: readonly Step[],
): Promise<Outcome[]> {
  const dir = await Deno.makeTempDir({ prefix: `detcd-tls-${ctl}-` });
  const vars = new Map<string, string>([["DIR", dir], ["CERTS", certs]]);
  for (const [name, m] of Object.entries(members)) {
    vars.set(name, m.endpoint);
    vars.set(`${name}_PORT`, String(m.clientPort));
  }
  const ports: Record<number, string> = {};
  for (const [name, m] of Object.entries(members)) {
    ports[m.clientPort] = `${name}_PORT`;
    ports[m.peerPort] = `${name}_PEER_PORT`;
  }
  const fill = (s: string) =>
    s.replace(/\{(\w+)\}/g, (whole, name: string) => vars.get(name) ?? whole);
  const outcomes: Outcome[] = [];
  try {
    for (const step of steps) {
      const env = step.env
        ? Object.fromEntries(Object.entries(step.env).map(([k, v]) => [k, fill(v)]))
        : undefined;
      const raw = await runCtl(ctl, step.args.map(fill), { env, timeoutMs: step.timeoutMs });
      if (step.capture) {
        const m = step.capture.pattern.exec(raw.stdout);
        if (m) vars.set(step.capture.name, m[1]);
      }
      const etcd = Object.values(members).some((m) => m.kind === "etcd");
      const normalise = (text: string) => {
        let out = normaliseOutput(etcd ? settleEtcdAppliedIndex(text) : text, { ports });
        for (const [name, value] of vars) {
          // Members and ports are normalised by port (normaliseOutput), not as text.
          if (!(name in members) && !name.endsWith("_PORT")) {
            out = out.replaceAll(value, `<${name}>`);
          }
        }
        return out
          .replace(/"size":"[^"]*"/g, '"size":"<SIZE>"')
          .replace(/"took":\d+(?:\.\d+)?(?:e[+-]?\d+)?/g, '"took":<TOOK>')
          .replace(/remaining\(\d+s\)/g, "remaining(<N>s)")
          .replace(/current time \S+ is (after|before)/g, "current time <NOW> is $1")
          // etcdctl's own races when a server drops the connection (a refused client certificate,
          // TLS spoken to a plain port): which of the socket's failures Go meets first is timing,
          // not behaviour, so every "the peer went away" text reads <GONE> on both sides.
          .replace(
            /connection error: desc = \\?"transport: failed to write client preface: [^"\\]*\\?"/g,
            "<GONE>",
          )
          .replace(
            /(?:write|read) tcp [^"\\ ]+->[^"\\ ]+: (?:(?:write|read): )?(?:broken pipe|connection reset by peer|use of closed network connection)/g,
            "<GONE>",
          )
          .replace(
            /(balancer error|handshake failed): (?:use of closed network connection|connection closed|EOF)\b/g,
            "$1: <GONE>",
          );
      };
      outcomes.push({
        stdout: normalise(raw.stdout),
        stderr: normalise(raw.stderr),
        code: raw.code,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return outcomes;
}

/** Runs the steps with both CLIs (each its own `EP` member, the rest shared) and compares. */
async function compare(
  certs: string,
  own: [Member, Member],
  shared: Record<string, Member>,
  steps: readonly Step[],
): Promise<Outcome[]> {
  const [a, b] = await Promise.all([
    runSide("etcdctl", { EP: own[0], ...shared }, certs, steps),
    runSide("detcdctl", { EP: own[1], ...shared }, certs, steps),
  ]);
  const problems: string[] = [];
  for (let i = 0; i < steps.length; i++) {
    const [x, y] = [a[i], b[i]];
    if (x.stdout === y.stdout && x.stderr === y.stderr && x.code === y.code) continue;
    problems.push(
      `step ${i + 1}: ${shellQuote(steps[i].args)}` +
        (steps[i].env ? ` env ${JSON.stringify(steps[i].env)}` : "") +
        `\n  etcdctl  (exit ${x.code}) stdout ${JSON.stringify(x.stdout)}\n` +
        `                    stderr ${JSON.stringify(x.stderr)}\n` +
        `  detcdctl (exit ${y.code}) stdout ${JSON.stringify(y.stdout)}\n` +
        `                    stderr ${JSON.stringify(y.stderr)}`,
    );
  }
  assert.equal(problems.length, 0, `${problems.length} steps differ:\n${problems.join("\n")}`);
  return a;
}

/** What works over TLS with a client certificate, in every endpoint form. */
const WORKING: Step[] = [
  { args: ["--endpoints={EP}", ...TLS, "put", "foo", "bar"] },
  { args: ["--endpoints=https://{EP}", ...TLS, "get", "foo"] },
  { args: ["--endpoints=https://localhost:{EP_PORT}", ...TLS, "get", "foo", "-w", "json"] },
  { args: ["--endpoints=localhost:{EP_PORT}", ...TLS, "put", "foo", "baz"] },
  { args: ["--endpoints={EP}", ...TLS, "watch", "foo", "--rev=1"], timeoutMs: 3000 },
  {
    args: ["--endpoints={EP}", ...TLS, "lease", "grant", "100"],
    capture: { name: "LEASE", pattern: /^lease ([0-9a-f]+) granted/ },
  },
  { args: ["--endpoints={EP}", ...TLS, "put", "leased", "v", "--lease={LEASE}"] },
  { args: ["--endpoints={EP}", ...TLS, "lease", "timetolive", "{LEASE}", "--keys"] },
  { args: ["--endpoints={EP}", ...TLS, "member", "list"] },
  { args: ["--endpoints={EP}", ...TLS, "member", "list", "-w", "table"] },
  { args: ["--endpoints={EP}", ...TLS, "endpoint", "status"] },
  { args: ["--endpoints=https://{EP}", ...TLS, "endpoint", "status", "-w", "table"] },
  { args: ["--endpoints={EP}", ...TLS, "endpoint", "health"] },
  { args: ["--endpoints={EP}", ...TLS, "endpoint", "health", "--cluster"] },
  { args: ["--endpoints={EP}", ...TLS, "snapshot", "save", "{DIR}/snap.db"] },
  // The environment forms of the three file flags.
  {
    args: ["--endpoints={EP}", "get", "foo"],
    env: {
      ETCDCTL_CACERT: "{CERTS}/ca.crt",
      ETCDCTL_CERT: "{CERTS}/client.crt",
      ETCDCTL_KEY: "{CERTS}/client.key",
    },
  },
  {
    args: ["--endpoints={EP}", "--cacert={CERTS}/ca.crt", "get", "foo"],
    env: { ETCDCTL_CERT: "{CERTS}/client.crt", ETCDCTL_KEY: "{CERTS}/client.key" },
  },
  // No CA: skip verification, which counts only once TLS is asked for.
  {
    args: [
      "--endpoints={EP}",
      "--insecure-skip-tls-verify",
      "--cert={CERTS}/client.crt",
      "--key={CERTS}/client.key",
      "get",
      "foo",
    ],
  },
  { args: ["--endpoints={EP}", ...FAST, "--insecure-skip-tls-verify", "get", "foo"] },
  {
    args: [
      "--endpoints={NOAUTH}",
      "--insecure-transport=false",
      "--insecure-skip-tls-verify",
      "get",
      "x",
    ],
  },
  { args: ["--endpoints={NOAUTH}", "--cacert={CERTS}/ca.crt", "endpoint", "status"] },
  // Without --cacert the system's roots, which Go reads from SSL_CERT_FILE and SSL_CERT_DIR.
  {
    args: ["--endpoints=https://{NOAUTH}", ...FAST, "get", "x", "-w", "json"],
    env: { SSL_CERT_FILE: "{CERTS}/ca.crt" },
  },
  {
    args: ["--endpoints={NOAUTH}", ...FAST, "--insecure-transport=false", "endpoint", "status"],
    env: { SSL_CERT_DIR: "{CERTS}" },
  },
];

/** Refused connections: the balancer's summary for most calls, Go's reason for endpoint status. */
const REFUSALS: Step[] = [
  // TLS server, no TLS on the client (plaintext HTTP/2 to a TLS port).
  { args: ["--endpoints={EP}", ...FAST, "get", "foo"] },
  { args: ["--endpoints={EP}", ...FAST, "endpoint", "status"] },
  // https:// with no CA: the default roots do not know this CA.
  { args: ["--endpoints=https://{EP}", ...FAST, "get", "foo"] },
  { args: ["--endpoints=https://{EP}", ...FAST, "endpoint", "status"] },
  // http:// turns TLS off whatever the flags say.
  { args: ["--endpoints=http://{EP}", ...FAST, ...TLS, "endpoint", "status"] },
  // A CA that did not sign the server's certificate.
  {
    args: [
      "--endpoints={EP}",
      ...FAST,
      "--cacert={CERTS}/otherca.crt",
      "--cert={CERTS}/client.crt",
      "--key={CERTS}/client.key",
      "endpoint",
      "status",
    ],
  },
  {
    args: ["--endpoints={EP}", ...FAST, "--cacert={CERTS}/otherca.crt", "put", "a", "b"],
  },
  { args: ["--endpoints={NOAUTH}", ...FAST, "--insecure-transport=false", "endpoint", "status"] },
  // The server requires a client certificate: none, or one from a CA it does not trust.
  { args: ["--endpoints={EP}", ...FAST, "--cacert={CERTS}/ca.crt", "get", "foo"] },
  { args: ["--endpoints={EP}", ...FAST, "--cacert={CERTS}/ca.crt", "endpoint", "status"] },
  { args: ["--endpoints={EP}", ...FAST, "--cacert={CERTS}/ca.crt", "endpoint", "health"] },
  {
    args: [
      "--endpoints={EP}",
      ...FAST,
      "--cacert={CERTS}/ca.crt",
      "--cert={CERTS}/foreignclient.crt",
      "--key={CERTS}/foreignclient.key",
      "endpoint",
      "status",
    ],
  },
  // A certificate for another host name: no IP SANs for 127.0.0.1, wrong DNS name for localhost.
  { args: ["--endpoints={WRONG}", ...FAST, "--cacert={CERTS}/ca.crt", "get", "foo"] },
  { args: ["--endpoints={WRONG}", ...FAST, "--cacert={CERTS}/ca.crt", "endpoint", "status"] },
  {
    args: [
      "--endpoints=localhost:{WRONG_PORT}",
      ...FAST,
      "--cacert={CERTS}/ca.crt",
      "endpoint",
      "status",
    ],
  },
  // An expired server certificate.
  { args: ["--endpoints={EXPIRED}", ...FAST, "--cacert={CERTS}/ca.crt", "endpoint", "status"] },
  { args: ["--endpoints={EXPIRED}", ...FAST, "--cacert={CERTS}/ca.crt", "put", "a", "b"] },
  // A plain HTTP server while TLS is on.
  { args: ["--endpoints={PLAIN}", ...FAST, "--cacert={CERTS}/ca.crt", "get", "foo"] },
  { args: ["--endpoints={PLAIN}", ...FAST, "--cacert={CERTS}/ca.crt", "endpoint", "status"] },
  { args: ["--endpoints=https://{PLAIN}", ...FAST, "endpoint", "status"] },
  {
    args: [
      "--endpoints={EP}",
      ...FAST,
      "--cacert={CERTS}/ca.crt",
      "snapshot",
      "save",
      "{DIR}/s.db",
    ],
  },
  // Unusable files: refused before any dial.
  { args: ["--endpoints={EP}", "--cert={CERTS}/junk.pem", "--key={CERTS}/client.key", "get", "a"] },
  { args: ["--endpoints={EP}", "--cert={CERTS}/client.crt", "--key={CERTS}/junk.pem", "get", "a"] },
  {
    args: ["--endpoints={EP}", "--cert={CERTS}/client.key", "--key={CERTS}/client.key", "get", "a"],
  },
  {
    args: ["--endpoints={EP}", "--cert={CERTS}/client.crt", "--key={CERTS}/client.crt", "get", "a"],
  },
  {
    args: [
      "--endpoints={EP}",
      "--cert={CERTS}/client.crt",
      "--key={CERTS}/foreignclient.key",
      "get",
      "a",
    ],
  },
  { args: ["--endpoints={EP}", "--cacert={CERTS}/client.key", "get", "a"] },
  { args: ["--endpoints={EP}", ...FAST, "--cacert={CERTS}/junk.pem", "get", "a"] },
  { args: ["--endpoints={EP}", "--cacert={CERTS}/missing.crt", "get", "a"] },
  { args: ["--endpoints={EP}", "--cert={CERTS}/client.crt", "get", "a"] },
];

Deno.test({
  name: "detcdctl over TLS matches etcdctl 3.4.23 against real etcd with TLS",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    assertReference();
    const certs = await makeCertificates();
    const started = await Promise.allSettled([
      startTlsMember(certs, "server", true),
      startTlsMember(certs, "server", true),
      startTlsMember(certs, "server", false),
      startTlsMember(certs, "wronghost", false),
      startTlsMember(certs, "expired", false),
      startMember({ kind: "etcd" }),
    ]);
    const members = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    try {
      for (const r of started) if (r.status === "rejected") throw r.reason;
      const [a, b, noauth, wrong, expired, plain] = members;
      const shared = { NOAUTH: noauth, WRONG: wrong, EXPIRED: expired, PLAIN: plain };
      await t.step("working commands", async () => {
        const out = await compare(certs, [a, b], shared, WORKING);
        // The script must really have worked (a refusal on both sides would compare equal).
        assert.equal(out[1].stdout, "foo\nbar\n");
        assert.match(out[14].stdout, /^Snapshot saved at /m);
        assert.equal(out[15].stdout, "foo\nbaz\n");
        assert.match(out[out.length - 2].stdout, /"header"/);
        assert.match(out[out.length - 1].stdout, /^127\.0\.0\.1:/);
      });
      await t.step("refusals", async () => {
        const out = await compare(certs, [a, b], shared, REFUSALS);
        assert.match(out[3].stderr, /x509: certificate signed by unknown authority/);
        assert.match(out[13].stderr, /doesn't contain any IP SANs/);
        assert.match(out[14].stderr, /certificate is valid for example\.invalid, not localhost/);
        assert.match(out[15].stderr, /certificate has expired or is not yet valid/);
      });
    } finally {
      await Promise.all(members.map((m) => m.stop()));
      await Deno.remove(certs, { recursive: true }).catch(() => {});
    }
  },
});
