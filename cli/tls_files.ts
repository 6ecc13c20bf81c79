/**
 * Reading etcdctl's TLS files the way transport.TLSInfo.ClientConfig does (Go's
 * tls.X509KeyPair for --cert/--key, tlsutil.NewCertPool for --cacert), with Go's error texts,
 * which etcdctl prints before it dials anything.
 */

import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";

/** One PEM block: its type and the base64 body re-wrapped as PEM text. */
export interface PemBlock {
  type: string;
  der: Uint8Array;
  pem: string;
}

/** encoding/pem.Decode applied until no block is left (text between blocks is skipped). */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const re = /-----BEGIN ([^\n-]*)-----\r?\n([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const lines = m[2].split(/\r?\n/);
    // Headers ("Proc-Type: ...") end at the first blank line.
    const body = lines.some((l) => l.includes(":"))
      ? lines.slice(lines.findIndex((l) => l.trim() === "") + 1)
      : lines;
    const b64 = body.join("").replace(/\s/g, "");
    let der: Uint8Array;
    try {
      der = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    } catch {
      continue;
    }
    out.push({ type: m[1], der, pem: m[0] + "\n" });
  }
  return out;
}

/** The Go error of x509.ParseCertificate for bytes that are not a certificate, roughly. */
function parseCertificateError(der: Uint8Array): string | undefined {
  // A certificate is SEQUENCE { tbsCertificate SEQUENCE, ... }.
  if (der[0] !== 0x30) return "x509: malformed certificate";
  const lenByte = der[1] ?? 0;
  const inner = lenByte < 0x80 ? 2 : 2 + (lenByte & 0x7f);
  if (der[inner] !== 0x30) return "x509: malformed tbs certificate";
  try {
    new X509Certificate(der);
  } catch {
    return "x509: malformed certificate";
  }
  return undefined;
}

/**
 * tlsutil.NewCertPool for one file: every PEM block, whatever its type, must parse as a
 * certificate. Returns the certificates as PEM, or Go's error text.
 */
export function caBundle(text: string): { certs: string[] } | { error: string } {
  const certs: string[] = [];
  for (const block of pemBlocks(text)) {
    const err = parseCertificateError(block.der);
    if (err !== undefined) return { error: err };
    certs.push(certificatePem(block.der));
  }
  return { certs };
}

/** Go's fmt of a []string: "[a b]". */
function goList(items: string[]): string {
  return `[${items.join(" ")}]`;
}

/**
 * tls.X509KeyPair's checks, in Go 1.19's order and words: a CERTIFICATE block in the first file,
 * a "... PRIVATE KEY" block in the second, and the key matching the certificate's public key.
 * Returns undefined when the pair is good.
 */
export function keyPairError(certText: string, keyText: string): string | undefined {
  const certBlocks = pemBlocks(certText);
  const certs = certBlocks.filter((b) => b.type === "CERTIFICATE");
  if (certs.length === 0) {
    const skipped = certBlocks.map((b) => b.type);
    if (skipped.length === 0) return "tls: failed to find any PEM data in certificate input";
    if (skipped.length === 1 && skipped[0].endsWith("PRIVATE KEY")) {
      return "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched";
    }
    return `tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping PEM blocks of the following types: ${
      goList(skipped)
    }`;
  }
  const keyBlocks = pemBlocks(keyText);
  const key = keyBlocks.find((b) => b.type === "PRIVATE KEY" || b.type.endsWith(" PRIVATE KEY"));
  if (key === undefined) {
    const skipped = keyBlocks.map((b) => b.type);
    if (skipped.length === 0) return "tls: failed to find any PEM data in key input";
    if (skipped.length === 1 && skipped[0] === "CERTIFICATE") {
      return "tls: found a certificate rather than a key in the PEM for the private key";
    }
    return `tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input after skipping PEM blocks of the following types: ${
      goList(skipped)
    }`;
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certs[0].der);
  } catch {
    return parseCertificateError(certs[0].der) ?? "x509: malformed certificate";
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key.pem);
  } catch {
    return "tls: failed to parse private key";
  }
  const want = leaf.publicKey.export({ type: "spki", format: "der" });
  const got = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  if (Buffer.compare(want, got) !== 0) {
    if (leaf.publicKey.asymmetricKeyType !== privateKey.asymmetricKeyType) {
      return "tls: private key type does not match public key type";
    }
    return "tls: private key does not match public key";
  }
  return undefined;
}

/** Go 1.19's certificate bundle files on Linux, the first readable one used. */
const SYSTEM_CERT_FILES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/pki/tls/cacert.pem",
  "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
  "/etc/ssl/cert.pem",
];

/** Go 1.19's certificate directories on Linux, every file of each read. */
const SYSTEM_CERT_DIRS = ["/etc/ssl/certs", "/etc/pki/tls/certs", "/system/etc/security/cacerts"];

let systemRootsCache: string[] | undefined;

/** AppendCertsFromPEM: the CERTIFICATE blocks that parse; others are skipped silently. */
function appendCerts(into: Set<string>, seen: Set<string>, text: string): void {
  for (const block of pemBlocks(text)) {
    if (block.type !== "CERTIFICATE") continue;
    // The bundle and the directory hold the same certificates: parse each one once.
    const pem = certificatePem(block.der);
    if (seen.has(pem)) continue;
    seen.add(pem);
    if (parseCertificateError(block.der) === undefined) into.add(pem);
  }
}

function certificatePem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * Go's system root pool on Linux (crypto/x509 loadSystemRoots), which a TLS client without
 * --cacert trusts: SSL_CERT_FILE or the first bundle file found, plus every file in SSL_CERT_DIR
 * (colon-separated) or the default directories. Read once per process.
 */
export function systemRoots(
  getenv: (key: string) => string | undefined = (key) => Deno.env.get(key),
): string[] {
  if (systemRootsCache !== undefined) return systemRootsCache;
  const certs = new Set<string>();
  const seen = new Set<string>();
  const file = getenv("SSL_CERT_FILE");
  for (const path of file ? [file] : SYSTEM_CERT_FILES) {
    try {
      appendCerts(certs, seen, Deno.readTextFileSync(path));
      break;
    } catch {
      // not there: the next candidate
    }
  }
  const dirs = getenv("SSL_CERT_DIR");
  for (const dir of dirs ? dirs.split(":") : SYSTEM_CERT_DIRS) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const entry of entries) {
      try {
        appendCerts(certs, seen, Deno.readTextFileSync(`${dir}/${entry.name}`));
      } catch {
        // unreadable or a directory: Go skips it too
      }
    }
  }
  systemRootsCache = [...certs];
  return systemRootsCache;
}
