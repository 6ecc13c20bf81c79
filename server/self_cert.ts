/**
 * etcd's auto-TLS (`--auto-tls`, `--peer-auto-tls`; pkg/transport SelfCert): a self-signed
 * certificate for the member's listen hosts, made once and kept in `<data-dir>/fixtures/client`
 * or `.../peer` as `cert.pem` and `key.pem` (reused as they are on the next start). Like etcd's:
 * an ECDSA P-521 key, signed with SHA-512, organization "etcd", valid one year, key usages digital
 * signature and key encipherment, extended usage server auth, not a CA, the listen hosts as IP or
 * DNS subject alternative names. Built with WebCrypto and a small DER writer (no package).
 */

import { concatBytes } from "../core/bytes.ts";

const enc = new TextEncoder();

// ---- DER ----

function length(n: number): Uint8Array {
  if (n < 0x80) return new Uint8Array([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return new Uint8Array([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concat(content);
  return concat([new Uint8Array([tag]), length(body.length), body]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  return concatBytes(...parts);
}

const seq = (...c: Uint8Array[]) => tlv(0x30, ...c);
const set = (...c: Uint8Array[]) => tlv(0x31, ...c);

/** A non-negative INTEGER from big-endian bytes (leading zeros dropped, a 0 added for the sign). */
function integer(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(0x02, v[0] & 0x80 ? concat([new Uint8Array([0]), v]) : v);
}

function oid(dotted: string): Uint8Array {
  const parts = dotted.split(".").map(Number);
  const out = [40 * parts[0] + parts[1]];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) {
      chunk.unshift(0x80 | (v & 0x7f));
    }
    out.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(out));
}

function bitString(bytes: Uint8Array, unused = 0): Uint8Array {
  return tlv(0x03, new Uint8Array([unused]), bytes);
}

/** UTCTime (years before 2050) or GeneralizedTime, as Go's x509 chooses. */
function time(date: Date): Uint8Array {
  const p = (n: number) => String(n).padStart(2, "0");
  const y = date.getUTCFullYear();
  const rest = `${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}` +
    `${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}Z`;
  return y < 2050
    ? tlv(0x17, enc.encode(`${p(y % 100)}${rest}`))
    : tlv(0x18, enc.encode(`${y}${rest}`));
}

/** An IPv4 or IPv6 address's bytes, or null for a host name. */
function ipBytes(host: string): Uint8Array | null {
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
  if (v4) return new Uint8Array(v4.slice(1).map(Number));
  if (!host.includes(":")) return null;
  const [head, tail] = host.split("::");
  const groups = (s: string | undefined) => (s ? s.split(":").filter((g) => g !== "") : []);
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** WebCrypto's raw r||s ECDSA signature as the DER SEQUENCE X.509 wants. */
function derSignature(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return seq(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

function pem(type: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join("\n")}\n-----END ${type}-----\n`;
}

const ECDSA_WITH_SHA512 = seq(oid("1.2.840.10045.4.3.4"));

/** The PEM certificate and PKCS#8 key of a new self-signed certificate for `hosts`. */
export async function makeSelfSignedCert(
  hosts: readonly string[],
  now: Date = new Date(),
): Promise<{ cert: string; key: string }> {
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-521" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  const name = seq(set(seq(oid("2.5.4.10"), tlv(0x13, enc.encode("etcd")))));
  const notAfter = new Date(now.getTime() + 365 * 24 * 3600 * 1000);
  const altNames: Uint8Array[] = [];
  for (const host of hosts) {
    const ip = ipBytes(host);
    altNames.push(ip ? tlv(0x87, ip) : tlv(0x82, enc.encode(host)));
  }
  const critical = tlv(0x01, new Uint8Array([0xff]));
  const extensions = [
    // keyUsage: digitalSignature (bit 0) and keyEncipherment (bit 2).
    seq(oid("2.5.29.15"), critical, tlv(0x04, bitString(new Uint8Array([0xa0]), 5))),
    // extKeyUsage: serverAuth.
    seq(oid("2.5.29.37"), tlv(0x04, seq(oid("1.3.6.1.5.5.7.3.1")))),
    // basicConstraints: not a CA.
    seq(oid("2.5.29.19"), critical, tlv(0x04, seq())),
  ];
  if (altNames.length > 0) extensions.push(seq(oid("2.5.29.17"), tlv(0x04, seq(...altNames))));
  const tbs = seq(
    tlv(0xa0, integer(new Uint8Array([2]))),
    integer(serial),
    ECDSA_WITH_SHA512,
    name,
    seq(time(now), time(notAfter)),
    name,
    spki,
    tlv(0xa3, seq(...extensions)),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-512" },
      keys.privateKey,
      tbs as Uint8Array<ArrayBuffer>,
    ),
  );
  const cert = seq(tbs, ECDSA_WITH_SHA512, bitString(derSignature(raw)));
  return { cert: pem("CERTIFICATE", cert), key: pem("PRIVATE KEY", pkcs8) };
}

/** Where a self-signed certificate lives and how it came to be. */
export interface SelfCert {
  certFile: string;
  keyFile: string;
}

/** Log lines of SelfCert (etcd's "created cert file" / "created key file"). */
export type SelfCertLog = (msg: string, path: string) => void;

/**
 * etcd's SelfCert: reuses `dir/cert.pem` and `dir/key.pem` when both exist, else makes them (the
 * key readable by the owner only). `hosts` are the listen URLs' hosts (ports are dropped).
 */
export async function selfCert(
  dir: string,
  listenUrls: readonly string[],
  log: SelfCertLog,
): Promise<SelfCert> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const certFile = `${dir}/cert.pem`;
  const keyFile = `${dir}/key.pem`;
  const exists = async (p: string) => {
    try {
      await Deno.stat(p);
      return true;
    } catch {
      return false;
    }
  };
  if (await exists(certFile) && await exists(keyFile)) return { certFile, keyFile };
  const hosts = listenUrls.map((u) => new URL(u).hostname.replace(/^\[|\]$/g, ""));
  const { cert, key } = await makeSelfSignedCert(hosts);
  await Deno.writeTextFile(certFile, cert);
  log("created cert file", certFile);
  await Deno.writeTextFile(keyFile, key, { mode: 0o600 });
  log("created key file", keyFile);
  return { certFile, keyFile };
}
