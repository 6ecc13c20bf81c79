/**
 * --auto-tls and --peer-auto-tls, side by side with etcd 3.4.23: three members on https client
 * and peer URLs with no certificate files form a cluster and serve (etcdctl with
 * --insecure-skip-tls-verify, as auto-TLS certificates verify nothing); each member made its
 * self-signed certificates in <data-dir>/fixtures/{client,peer} as etcd makes them (organization
 * etcd, the listen host as IP SAN, server auth, not a CA, a P-521 key readable by its owner only),
 * and a restart reuses them.
 */
import assert from "node:assert/strict";
import {
  freePort,
  type Member,
  type MemberKind,
  requireReference,
  runCtl,
  startMember,
} from "./harness.ts";

const reference = requireReference();

function hasOpenssl(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** What openssl says of a certificate, without what is random (serial, dates, key bits). */
async function describe(path: string): Promise<string> {
  const out = await new Deno.Command("openssl", {
    args: [
      "x509",
      "-in",
      path,
      "-noout",
      "-subject",
      "-issuer",
      "-ext",
      "subjectAltName,keyUsage,extendedKeyUsage,basicConstraints",
    ],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const algo = await new Deno.Command("openssl", {
    args: ["x509", "-in", path, "-noout", "-text"],
    stdout: "piped",
  }).output();
  const full = new TextDecoder().decode(algo.stdout);
  const sig = /Signature Algorithm: (\S+)/.exec(full)?.[1];
  const curve = /NIST CURVE: (\S+)/.exec(full)?.[1];
  return `${text}signature ${sig}\ncurve ${curve}\n`;
}

async function ctl(member: Member, args: string[]) {
  return await runCtl("etcdctl", [
    "--insecure-skip-tls-verify",
    "--insecure-transport=false",
    `--endpoints=${member.clientUrl}`,
    ...args,
  ]);
}

async function observe(kind: MemberKind): Promise<Record<string, unknown>> {
  const planned = [1, 2, 3].map((i) => ({
    name: `auto${i}`,
    client: freePort(),
    peer: freePort(),
  }));
  const initialCluster = planned.map((p) => `${p.name}=https://127.0.0.1:${p.peer}`).join(",");
  const members = await Promise.all(planned.map((p) =>
    startMember({
      kind,
      name: p.name,
      clientPort: p.client,
      peerPort: p.peer,
      clientScheme: "https",
      peerScheme: "https",
      initialCluster,
      extraArgs: ["--auto-tls", "--peer-auto-tls"],
    })
  ));
  try {
    // The cluster serves once a leader is elected: retry the first write briefly.
    let put = await ctl(members[0], ["put", "k", "auto"]);
    for (let i = 0; i < 20 && put.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 500));
      put = await ctl(members[0], ["put", "k", "auto"]);
    }
    const got = await ctl(members[2], ["get", "k", "--print-value-only"]);
    const files: Record<string, string> = {};
    for (const sub of ["client", "peer"]) {
      const dir = `${members[0].dataDir}/fixtures/${sub}`;
      files[`${sub} cert`] = await describe(`${dir}/cert.pem`);
      files[`${sub} key mode`] = ((await Deno.stat(`${dir}/key.pem`)).mode! & 0o777).toString(8);
    }
    // A restart reuses the certificates it made.
    const before = await Deno.readTextFile(`${members[1].dataDir}/fixtures/client/cert.pem`);
    await members[1].restart();
    const after = await Deno.readTextFile(`${members[1].dataDir}/fixtures/client/cert.pem`);
    const again = await ctl(members[1], ["get", "k", "--print-value-only"]);
    return {
      put: `${put.code} ${put.stdout}`,
      got: `${got.code} ${got.stdout}`,
      ...files,
      reused: before === after,
      afterRestart: `${again.code} ${again.stdout}`,
    };
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}

Deno.test({
  name: "auto TLS: a 3-member cluster with --auto-tls and --peer-auto-tls, as etcd makes it",
  ignore: reference.ignore || !hasOpenssl(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const etcd = await observe("etcd");
    assert.equal(etcd.got, "0 auto\n");
    assert.equal(etcd.reused, true);
    const detcd = await observe("detcd");
    assert.deepEqual(detcd, etcd);
  },
});
