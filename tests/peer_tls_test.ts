/**
 * The peer port over TLS, side by side with etcd 3.4.23 configured the same way: three members
 * with `https://` peer URLs, --peer-cert-file/--peer-key-file/--peer-trusted-ca-file and
 * --peer-client-cert-auth form a cluster that replicates writes, forwards lease keep-alives to the
 * leader and lists its https peer URLs; the peer port refuses a connection without a client
 * certificate, with one from another CA, and (with --peer-cert-allowed-cn) one with another CN.
 * Certificates are made here with openssl.
 */
import assert from "node:assert/strict";
import * as tls from "node:tls";
import { Buffer } from "node:buffer";
import { type MemberKind, requireReference, runCtl, startMember } from "./harness.ts";
import { type Cluster, startCluster } from "./cluster_harness.ts";

const reference = requireReference();
const ignore = reference.ignore || !which("openssl");

function which(name: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${name}`] }).outputSync().success;
  } catch {
    return false;
  }
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A CA, then a certificate with `cn` signed by it (server and client use, 127.0.0.1 SAN). */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
  ]);
}

async function makeCert(dir: string, ca: string, name: string, cn: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
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
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
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
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
}

async function certs(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "detcd-peer-tls-" });
  await makeCa(dir, "ca");
  await makeCa(dir, "otherca");
  await makeCert(dir, "ca", "peer", "peer");
  await makeCert(dir, "ca", "stranger", "stranger");
  await makeCert(dir, "otherca", "forged", "peer");
  return dir;
}

function peerFlags(dir: string, extra: string[] = []): string[] {
  return [
    "--peer-cert-file",
    `${dir}/peer.crt`,
    "--peer-key-file",
    `${dir}/peer.key`,
    "--peer-trusted-ca-file",
    `${dir}/ca.crt`,
    "--peer-client-cert-auth",
    ...extra,
  ];
}

/** GET /members on a peer port over TLS with the given client certificate (or none). */
function getMembers(dir: string, port: number, cert?: string): Promise<number | string> {
  return new Promise((resolve) => {
    const options: tls.ConnectionOptions = {
      host: "127.0.0.1",
      port,
      ca: Buffer.from(Deno.readFileSync(`${dir}/ca.crt`)),
    };
    if (cert !== undefined) {
      options.cert = Buffer.from(Deno.readFileSync(`${dir}/${cert}.crt`));
      options.key = Buffer.from(Deno.readFileSync(`${dir}/${cert}.key`));
    }
    const socket = tls.connect(options, () => {
      socket.write("GET /members HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    });
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("timeout");
    }, 5000);
    socket.on("data", (d: Buffer) => {
      data += d.toString();
      const m = /^HTTP\/1\.1 (\d+)/.exec(data);
      if (m) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Number(m[1]));
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d+)/.exec(data);
      resolve(m ? Number(m[1]) : "refused");
    });
  });
}

async function ctl(cluster: Cluster, i: number, args: string[]): Promise<string> {
  const r = await runCtl("etcdctl", [`--endpoints=${cluster.members[i].endpoint}`, ...args]);
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** What a cluster does and refuses, in a form comparable between etcd and detcd. */
async function observe(kind: MemberKind, dir: string): Promise<Record<string, unknown>> {
  const cluster = await startCluster({
    kind,
    size: 3,
    peerScheme: "https",
    extraArgs: peerFlags(dir),
  });
  try {
    await ctl(cluster, 1, ["put", "k", "over-tls"]);
    const got = await ctl(cluster, 2, ["get", "k", "--print-value-only"]);
    const granted = await ctl(cluster, 0, ["lease", "grant", "60"]);
    const id = /lease ([0-9a-f]+) granted/.exec(granted)![1];
    // Keep-alives through every member: followers forward them to the leader over peer TLS.
    const kept = [];
    for (let i = 0; i < 3; i++) {
      kept.push((await ctl(cluster, i, ["lease", "keep-alive", "--once", id])).replace(id, "<ID>"));
    }
    const list = await ctl(cluster, 0, ["member", "list"]);
    const schemes = [...list.matchAll(/(https?):\/\/127\.0\.0\.1:(\d+)/g)].map((m) =>
      cluster.members.some((x) => String(x.peerPort) === m[2]) ? `peer:${m[1]}` : `client:${m[1]}`
    ).sort();
    const port = cluster.members[0].peerPort;
    return {
      got,
      kept,
      schemes,
      withPeerCert: await getMembers(dir, port, "peer"),
      withoutCert: await getMembers(dir, port),
      otherCa: await getMembers(dir, port, "forged"),
    };
  } finally {
    await cluster.stop();
  }
}

Deno.test({
  name: "peer TLS: 3 members with https peer URLs and client-cert auth, etcd and detcd alike",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await certs();
    try {
      const etcd = await observe("etcd", dir);
      const detcd = await observe("detcd", dir);
      assert.equal(etcd.got, "over-tls\n");
      assert.equal(etcd.withPeerCert, 200);
      assert.notEqual(etcd.withoutCert, 200);
      assert.deepEqual(detcd, etcd);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "peer TLS: --peer-cert-allowed-cn admits only peers whose certificate has that CN",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await certs();
    try {
      const outcome: Record<string, unknown> = {};
      for (const kind of ["etcd", "detcd"] as const) {
        const cluster = await startCluster({
          kind,
          size: 3,
          peerScheme: "https",
          extraArgs: peerFlags(dir, ["--peer-cert-allowed-cn", "peer"]),
        });
        try {
          await ctl(cluster, 2, ["put", "k", "v"]);
          const port = cluster.members[1].peerPort;
          outcome[kind] = {
            peer: await getMembers(dir, port, "peer"),
            stranger: await getMembers(dir, port, "stranger"),
          };
        } finally {
          await cluster.stop();
        }
      }
      assert.deepEqual(outcome.etcd, { peer: 200, stranger: "refused" });
      assert.deepEqual(outcome.detcd, outcome.etcd);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A CRL signed by `ca` revoking the certificate `revoked` (openssl ca's minimal database). */
async function makeCrl(dir: string, ca: string, revoked: string): Promise<string> {
  await Deno.writeTextFile(
    `${dir}/crl.cnf`,
    `[ ca ]\ndefault_ca = c\n[ c ]\ndatabase = ${dir}/index.txt\n` +
      `crlnumber = ${dir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n`,
  );
  await Deno.writeTextFile(`${dir}/index.txt`, "");
  await Deno.writeTextFile(`${dir}/crlnumber`, "01\n");
  const base = ["-config", `${dir}/crl.cnf`, "-keyfile", `${ca}.key`, "-cert", `${ca}.crt`];
  await openssl(dir, ["ca", ...base, "-revoke", `${revoked}.crt`]);
  await openssl(dir, ["ca", ...base, "-gencrl", "-out", "revoked.crl"]);
  return `${dir}/revoked.crl`;
}

Deno.test({
  name: "CRLs: --peer-crl-file and --client-crl-file refuse revoked certificates, as etcd does",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await certs();
    try {
      const crl = await makeCrl(dir, "ca", "stranger");
      const outcome: Record<string, unknown> = {};
      for (const kind of ["etcd", "detcd"] as const) {
        const cluster = await startCluster({
          kind,
          size: 3,
          peerScheme: "https",
          extraArgs: peerFlags(dir, ["--peer-crl-file", crl]),
        });
        let peer: unknown;
        try {
          await ctl(cluster, 1, ["put", "k", "v"]);
          const port = cluster.members[0].peerPort;
          peer = {
            member: await getMembers(dir, port, "peer"),
            revoked: await getMembers(dir, port, "stranger"),
          };
        } finally {
          await cluster.stop();
        }
        // A client port with the same list: the revoked certificate's client is refused.
        const member = await startMember({
          kind,
          clientScheme: "https",
          extraArgs: [
            "--cert-file",
            `${dir}/peer.crt`,
            "--key-file",
            `${dir}/peer.key`,
            "--trusted-ca-file",
            `${dir}/ca.crt`,
            "--client-cert-auth",
            "--client-crl-file",
            crl,
          ],
        });
        try {
          const client = async (cert: string) => {
            const r = await runCtl("etcdctl", [
              `--endpoints=${member.clientUrl}`,
              "--cacert",
              `${dir}/ca.crt`,
              "--cert",
              `${dir}/${cert}.crt`,
              "--key",
              `${dir}/${cert}.key`,
              "--dial-timeout=2s",
              "--command-timeout=3s",
              "put",
              "k",
              "v",
            ]);
            return `${r.code} ${r.stdout}${
              r.stderr.split("\n").filter((l) => l.startsWith("Error")).join("")
            }`;
          };
          outcome[kind] = { peer, good: await client("peer"), revoked: await client("stranger") };
        } finally {
          await member.stop();
        }
      }
      assert.deepEqual(outcome.etcd, {
        peer: { member: 200, revoked: "refused" },
        good: "0 OK\n",
        revoked: "1 Error: context deadline exceeded",
      });
      assert.deepEqual(outcome.detcd, outcome.etcd);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
