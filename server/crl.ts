/**
 * Certificate revocation lists (--client-crl-file, --peer-crl-file), checked as etcd checks them:
 * after the handshake, every certificate the peer presented is looked up by serial number in the
 * list, read from its file on each new connection (so a new list takes effect at once); a revoked
 * one closes the connection. Like etcd, the list's own signature is not verified: the file is the
 * operator's. Deno's node:tls ignores its `crl` option (measured), hence this small DER reader.
 */
import type * as tls from "node:tls";

interface Tlv {
  tag: number;
  /** Content bytes. */
  body: Uint8Array;
  /** Offset just past this element. */
  end: number;
}

function readTlv(bytes: Uint8Array, at: number): Tlv {
  const tag = bytes[at];
  let length = bytes[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4) throw new Error("unsupported DER length");
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[start + i];
    start += n;
  }
  const end = start + length;
  if (tag === undefined || end > bytes.length) throw new Error("truncated DER");
  return { tag, body: bytes.subarray(start, end), end };
}

function children(body: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < body.length;) {
    const t = readTlv(body, at);
    out.push(t);
    at = t.end;
  }
  return out;
}

/** A serial number as lower-case hex without leading zeros ("0" for zero). */
function serialHex(bytes: Uint8Array): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("").replace(/^0+/, "");
  return hex === "" ? "0" : hex;
}

/** The DER bytes of a CRL file, PEM (`X509 CRL`) or DER. */
function crlDer(file: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(file);
  const m = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text);
  if (m === null) return file;
  return Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

/** The serial numbers a CRL revokes. Throws on a file that is not a CRL. */
export function revokedSerials(file: Uint8Array): Set<string> {
  const list = readTlv(crlDer(file), 0);
  const tbs = children(list.body)[0];
  if (list.tag !== 0x30 || tbs?.tag !== 0x30) throw new Error("not a certificate revocation list");
  const fields = children(tbs.body);
  // version? signature issuer thisUpdate nextUpdate? revokedCertificates? [0] extensions?
  let i = fields[0]?.tag === 0x02 ? 1 : 0;
  i += 3; // signature algorithm, issuer, thisUpdate
  if (fields[i] !== undefined && (fields[i].tag === 0x17 || fields[i].tag === 0x18)) i++;
  const revoked = new Set<string>();
  const entries = fields[i];
  if (entries !== undefined && entries.tag === 0x30) {
    for (const entry of children(entries.body)) {
      const serial = children(entry.body)[0];
      if (serial?.tag === 0x02) revoked.add(serialHex(serial.body));
    }
  }
  return revoked;
}

/** Go's %q of a serial's bytes, as etcd's "is revoked" error shows it. */
function goQuoted(hex: string): string {
  const padded = hex.length % 2 ? `0${hex}` : hex;
  let out = '"';
  for (let i = 0; i < padded.length; i += 2) {
    const b = parseInt(padded.slice(i, i + 2), 16);
    if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${padded.slice(i, i + 2)}`;
  }
  return `${out}"`;
}

/**
 * Why a connection must be closed under the CRL at `path` (etcd's checkCRL error), or null when
 * none of the certificates its peer presented is revoked. An unreadable list closes it too.
 */
export function crlRefusal(path: string, socket: tls.TLSSocket): string | null {
  let revoked: Set<string>;
  try {
    revoked = revokedSerials(Deno.readFileSync(path));
  } catch (e) {
    return `${path}: ${(e as Error).message}`;
  }
  let cert = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  const seen = new Set<string>();
  while (cert !== undefined && cert.serialNumber !== undefined) {
    const serial = cert.serialNumber.toLowerCase().replace(/^0+/, "") || "0";
    if (seen.has(serial)) break;
    seen.add(serial);
    if (revoked.has(serial)) return `${goQuoted(serial)} is revoked`;
    const next = cert.issuerCertificate;
    if (next === undefined || next === cert) break;
    cert = next;
  }
  return null;
}
