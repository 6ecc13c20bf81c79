/**
 * What `deno task bench --tls` / `--mtls` needs besides ebench: certificates made once with openssl
 * (a CA, a server certificate for 127.0.0.1/localhost, a client certificate; ECDSA P-256), the
 * member flags and client flags that use them, and the handshake-rate program
 * (scripts/tls_handshake/main.go, standard library only) built into .bench/.
 */
import { builtGoTool, type EbenchResult, runJsonTool } from "./_ebench.ts";

/** Client TLS only (`--tls`) or client TLS with client-certificate auth (`--mtls`). */
export type TlsMode = "tls" | "mtls";

/** The certificate files of one run, in a temp dir. */
export interface BenchCertificates {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped", stdout: "null" })
    .output();
  if (out.code !== 0) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A CA, a server certificate (SANs IP:127.0.0.1, DNS:localhost) and a client certificate. */
export async function makeBenchCertificates(): Promise<BenchCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "detcd-bench-tls-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl(dir, [
    "req",
    "-x509",
    ...ec,
    ...["-keyout", "ca.key", "-out", "ca.crt", "-days", "7", "-subj", "/CN=bench-ca"],
  ]);
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  await Deno.writeTextFile(`${dir}/client.ext`, "extendedKeyUsage=clientAuth\n");
  for (const [name, ext] of [["server", "server.ext"], ["client", "client.ext"]]) {
    await openssl(dir, [
      "req",
      ...ec,
      ...["-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=bench-${name}`],
    ]);
    await openssl(dir, [
      "x509",
      "-req",
      ...["-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"],
      ...["-out", `${name}.crt`, "-days", "7", "-extfile", ext],
    ]);
  }
  return {
    dir,
    ca: `${dir}/ca.crt`,
    serverCert: `${dir}/server.crt`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.crt`,
    clientKey: `${dir}/client.key`,
  };
}

/** The etcd flags both members get (the same for etcd and detcd). */
export function memberTlsFlags(mode: TlsMode, certs: BenchCertificates): string[] {
  return [
    ...["--cert-file", certs.serverCert, "--key-file", certs.serverKey],
    ...(mode === "mtls" ? ["--trusted-ca-file", certs.ca, "--client-cert-auth"] : []),
  ];
}

/** ebench's (and tls_handshake's) client flags. */
export function clientTlsFlags(mode: TlsMode, certs: BenchCertificates): string[] {
  return [
    ...["-cacert", certs.ca],
    ...(mode === "mtls" ? ["-cert", certs.clientCert, "-key", certs.clientKey] : []),
  ];
}

/** etcdctl's flags for the same set-up. */
export function etcdctlTlsFlags(mode: TlsMode, certs: BenchCertificates): string[] {
  return [
    `--cacert=${certs.ca}`,
    ...(mode === "mtls" ? [`--cert=${certs.clientCert}`, `--key=${certs.clientKey}`] : []),
  ];
}

/**
 * The handshake-rate program: DETCD_TLS_HANDSHAKE (a built binary), else scripts/tls_handshake
 * built into .bench/ (standard library only; see builtGoTool).
 */
export async function handshakePath(): Promise<string> {
  return Deno.env.get("DETCD_TLS_HANDSHAKE") ?? await builtGoTool("tls_handshake");
}

/** Runs tls_handshake against `endpoint` and returns its result line (ebench's shape). */
export function runHandshake(
  program: string,
  endpoint: string,
  args: string[],
  label: string,
): Promise<EbenchResult> {
  return runJsonTool(
    program,
    ["-endpoint", endpoint, ...args],
    `tls_handshake ${args.join(" ")} against ${label}`,
  );
}
