/**
 * Just enough PEM and DER to hand the key files etcd accepts to WebCrypto, which imports only
 * PKCS#8 private keys and SPKI public keys: PKCS#1 RSA keys (`RSA PRIVATE KEY`) and SEC1 EC keys
 * (`EC PRIVATE KEY`) are wrapped into PKCS#8, and a certificate's public key is cut out of it.
 * Private to core/auth.
 */

import { concatBytes } from "../bytes.ts";

/** One PEM block: its label and DER bytes (Go's pem.Decode of the first block). */
export interface PemBlock {
  label: string;
  der: Uint8Array;
}

/** The first PEM block in `text`, or null when there is none (or its base64 is broken). */
export function decodePem(bytes: Uint8Array): PemBlock | null {
  const text = new TextDecoder("latin1").decode(bytes);
  const m = /-----BEGIN ([^\r\n-]*)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (m === null) return null;
  const body = m[2].split(/\r?\n/).filter((l) => !l.includes(":")).join("").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) return null;
  const bin = atob(body);
  const der = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
  return { label: m[1], der };
}

/** A DER element: its tag and where its content lies. */
interface Tlv {
  tag: number;
  /** Where the element's tag is. */
  pos: number;
  start: number;
  end: number;
}

/** Raised for bytes that are not the DER structure expected. */
export class DerError extends Error {}

function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError("truncated");
  const tag = buf[pos];
  let len = buf[pos + 1];
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new DerError("bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i];
    start += n;
  }
  if (start + len > limit) throw new DerError("truncated");
  return { tag, pos, start, end: start + len };
}

/** The elements inside a constructed element (or a whole buffer). */
function children(buf: Uint8Array, outer: { start: number; end: number }): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = outer.start; pos < outer.end;) {
    const t = readTlv(buf, pos, outer.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

function top(der: Uint8Array): Tlv {
  const t = readTlv(der, 0, der.length);
  if (t.tag !== 0x30 || t.end !== der.length) throw new DerError("not one SEQUENCE");
  return t;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function encodeLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

function element(tag: number, content: Uint8Array): Uint8Array {
  const head = [tag, ...encodeLength(content.length)];
  const out = new Uint8Array(head.length + content.length);
  out.set(head);
  out.set(content, head.length);
  return out;
}

const concat = concatBytes;

/** OID contents (without tag and length). */
export const oids = {
  rsaEncryption: new Uint8Array([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
  ecPublicKey: new Uint8Array([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
  p256: new Uint8Array([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
  p384: new Uint8Array([0x2b, 0x81, 0x04, 0x00, 0x22]),
  p521: new Uint8Array([0x2b, 0x81, 0x04, 0x00, 0x23]),
};

/** The WebCrypto curve name for a curve OID, or null. */
export function curveName(oid: Uint8Array): "P-256" | "P-384" | "P-521" | null {
  if (equal(oid, oids.p256)) return "P-256";
  if (equal(oid, oids.p384)) return "P-384";
  if (equal(oid, oids.p521)) return "P-521";
  return null;
}

/** An algorithm identifier: the algorithm OID and, for EC keys, the curve OID. */
export interface KeyAlgorithm {
  oid: Uint8Array;
  curve: Uint8Array | null;
}

function algorithm(buf: Uint8Array, seq: Tlv): KeyAlgorithm {
  const parts = children(buf, seq);
  if (parts.length < 1 || parts[0].tag !== 0x06) throw new DerError("no algorithm OID");
  const curve = parts[1]?.tag === 0x06 ? buf.slice(parts[1].start, parts[1].end) : null;
  return { oid: buf.slice(parts[0].start, parts[0].end), curve };
}

/** PKCS#1 RSAPrivateKey: a SEQUENCE of (at least) nine INTEGERs, version first. */
export function isPkcs1RsaPrivateKey(der: Uint8Array): boolean {
  try {
    const parts = children(der, top(der));
    return parts.length >= 9 && parts.every((p) => p.tag === 0x02);
  } catch {
    return false;
  }
}

/** PKCS#8's algorithm, or null when `der` is not PKCS#8. */
export function pkcs8Algorithm(der: Uint8Array): KeyAlgorithm | null {
  try {
    const parts = children(der, top(der));
    if (parts.length < 3 || parts[0].tag !== 0x02 || parts[1].tag !== 0x30) return null;
    if (parts[2].tag !== 0x04) return null;
    return algorithm(der, parts[1]);
  } catch {
    return null;
  }
}

/** SEC1 ECPrivateKey's curve OID (null when absent), or undefined when `der` is not SEC1. */
export function sec1Curve(der: Uint8Array): Uint8Array | null | undefined {
  try {
    const parts = children(der, top(der));
    if (parts.length < 2 || parts[0].tag !== 0x02 || parts[1].tag !== 0x04) return undefined;
    if (parts[0].end - parts[0].start !== 1 || der[parts[0].start] !== 1) return undefined;
    const params = parts.find((p) => p.tag === 0xa0);
    if (params === undefined) return null;
    const oid = readTlv(der, params.start, params.end);
    return oid.tag === 0x06 ? der.slice(oid.start, oid.end) : null;
  } catch {
    return undefined;
  }
}

/** SubjectPublicKeyInfo's algorithm, or null when `der` is not SPKI. */
export function spkiAlgorithm(der: Uint8Array): KeyAlgorithm | null {
  try {
    const parts = children(der, top(der));
    if (parts.length !== 2 || parts[0].tag !== 0x30 || parts[1].tag !== 0x03) return null;
    return algorithm(der, parts[0]);
  } catch {
    return null;
  }
}

/** An X.509 certificate's SubjectPublicKeyInfo DER, or null when `der` is not a certificate. */
export function certificateSpki(der: Uint8Array): Uint8Array | null {
  try {
    const cert = children(der, top(der));
    if (cert.length !== 3 || cert[0].tag !== 0x30) return null;
    let tbs = children(der, cert[0]);
    if (tbs[0]?.tag === 0xa0) tbs = tbs.slice(1); // explicit version
    const spki = tbs[5];
    if (spki === undefined || spki.tag !== 0x30) return null;
    const out = der.slice(spki.pos, spki.end);
    return spkiAlgorithm(out) === null ? null : out;
  } catch {
    return null;
  }
}

/** Wraps a PKCS#1 RSA private key into PKCS#8. */
export function pkcs1ToPkcs8(der: Uint8Array): Uint8Array {
  return element(
    0x30,
    concat(
      element(0x02, new Uint8Array([0])),
      element(0x30, concat(element(0x06, oids.rsaEncryption), element(0x05, new Uint8Array(0)))),
      element(0x04, der),
    ),
  );
}

/** Wraps a SEC1 EC private key into PKCS#8 for `curve`. */
export function sec1ToPkcs8(der: Uint8Array, curve: Uint8Array): Uint8Array {
  return element(
    0x30,
    concat(
      element(0x02, new Uint8Array([0])),
      element(0x30, concat(element(0x06, oids.ecPublicKey), element(0x06, curve))),
      element(0x04, der),
    ),
  );
}
