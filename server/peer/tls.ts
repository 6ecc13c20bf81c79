/**
 * The peer port over TLS (`https://` peer URLs): etcd's --peer-cert-file, --peer-key-file,
 * --peer-trusted-ca-file, --peer-client-cert-auth and --peer-cert-allowed-cn. A member is both a
 * TLS server (peers dial it) and a TLS client (it dials peers) with the same certificate, as
 * etcd's PeerTLSInfo serves both; every peer connection (Raft streams, /members, promotion and
 * lease forwarding) uses it.
 */
import { Buffer } from "node:buffer";
import * as tls from "node:tls";
import { crlRefusal } from "../crl.ts";

/** The peer TLS flags. */
export interface PeerTlsFlags {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  clientCertAuth: boolean;
  allowedCn: string;
  /** --peer-auto-tls: a self-signed certificate when no certificate is given. */
  autoTls: boolean;
  /** --peer-crl-file: peers presenting a certificate revoked there are disconnected ("" none). */
  crlFile: string;
}

/** What the peer listener and the peer clients use; null when peers talk plain TCP. */
export interface PeerTls {
  /** Options of the TLS server on https:// peer URLs. */
  server: tls.TlsOptions;
  /** Options of every connection to a peer's https:// URL (host name or IP checked). */
  client: tls.ConnectionOptions;
  /** --peer-cert-allowed-cn: the only client certificate CN accepted ("" for any). */
  allowedCn: string;
  /** --peer-crl-file ("" for none). */
  crlFile: string;
}

/** Raised for peer TLS flags etcd refuses; the message is etcd's. */
export class PeerTlsError extends Error {}

/**
 * Loads the certificate files (read once, at start, as etcd does). Returns null without a peer
 * certificate; throws PeerTlsError when an https:// peer URL has none, as etcd's listener does.
 */
export function loadPeerTls(
  flags: PeerTlsFlags,
  peerUrls: readonly string[],
  readFile: (path: string) => Uint8Array,
  selfSigned = false,
): PeerTls | null {
  const secure = peerUrls.filter((u) => u.startsWith("https://"));
  if (flags.certFile === "" || flags.keyFile === "") {
    if (secure.length > 0) {
      const host = new URL(secure[0]).host;
      throw new PeerTlsError(
        `cannot listen on TLS for ${host}: KeyFile and CertFile are not presented`,
      );
    }
    return null;
  }
  const read = (path: string): Buffer => {
    try {
      return Buffer.from(readFile(path));
    } catch (e) {
      throw new PeerTlsError(`open ${path}: ${(e as Error).message}`);
    }
  };
  const cert = read(flags.certFile);
  const key = read(flags.keyFile);
  const ca = flags.trustedCaFile === "" ? undefined : read(flags.trustedCaFile);
  return {
    server: {
      cert,
      key,
      ca,
      requestCert: flags.clientCertAuth,
      rejectUnauthorized: flags.clientCertAuth,
      ALPNProtocols: ["http/1.1"],
      minVersion: "TLSv1.2",
    },
    // A self-signed certificate (auto TLS) proves nothing about a peer: like etcd, members then
    // encrypt without verifying each other.
    client: {
      cert,
      key,
      ca,
      rejectUnauthorized: !selfSigned,
      minVersion: "TLSv1.2",
    },
    allowedCn: flags.allowedCn,
    crlFile: flags.crlFile,
  };
}

/** Whether a host is an IP literal (TLS sends no server name for those). */
function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}

/** Dials a peer over TLS, checking its certificate against the trusted CA and its host. */
export function connectTls(peer: PeerTls, host: string, port: number): tls.TLSSocket {
  const bare = host.replace(/^\[|\]$/g, "");
  return tls.connect({
    ...peer.client,
    host: bare,
    port,
    servername: isIp(bare) ? undefined : bare,
  });
}

/**
 * Why an accepted peer connection may not stay, or null: with --peer-crl-file none of its
 * certificates may be revoked; with --peer-cert-allowed-cn its verified client certificate must
 * carry exactly that CN.
 */
export function peerRefusal(peer: PeerTls, socket: tls.TLSSocket): string | null {
  if (peer.crlFile !== "") {
    const revoked = crlRefusal(peer.crlFile, socket);
    if (revoked !== null) return revoked;
  }
  if (peer.allowedCn === "") return null;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return cn === peer.allowedCn
    ? null
    : `CommonName authentication failed (allowed CN "${peer.allowedCn}")`;
}
