/**
 * `--cipher-suites` (etcd's tlsutil.GetCipherSuites): Go's cipher suite names, comma-separated,
 * as the TLS 1.2 suites the client and peer ports accept. Go does not let TLS 1.3 suites be
 * chosen (they are always on); neither does detcd. Names are translated to OpenSSL's for
 * `node:tls`; a name Go does not know fails the start with etcd's error.
 */

/** Go's TLS 1.0-1.2 suite names → OpenSSL's. */
const TLS12: Record<string, string> = {
  TLS_RSA_WITH_RC4_128_SHA: "RC4-SHA",
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: "DES-CBC3-SHA",
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
  TLS_RSA_WITH_AES_128_CBC_SHA256: "AES128-SHA256",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_RC4_128_SHA: "ECDHE-ECDSA-RC4-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_RC4_128_SHA: "ECDHE-RSA-RC4-SHA",
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: "ECDHE-RSA-DES-CBC3-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: "ECDHE-ECDSA-AES128-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: "ECDHE-RSA-AES128-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  // etcd's own aliases (tlsutil).
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: "ECDHE-ECDSA-CHACHA20-POLY1305",
};

/** Go's TLS 1.3 names: accepted, and (as in Go) without effect. */
const TLS13 = new Set([
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
]);

/** Raised for a name Go does not know; the message is etcd's. */
export class CipherSuiteError extends Error {}

/**
 * The OpenSSL cipher list for `--cipher-suites` (undefined when the flag is empty: OpenSSL's
 * defaults). Throws CipherSuiteError with etcd's `unexpected TLS cipher suite "X"`.
 */
export function opensslCiphers(flag: string): string | undefined {
  if (flag === "") return undefined;
  const names: string[] = [];
  for (const name of flag.split(",")) {
    const openssl = TLS12[name];
    if (openssl !== undefined) names.push(openssl);
    else if (!TLS13.has(name)) throw new CipherSuiteError(`unexpected TLS cipher suite "${name}"`);
  }
  // TLS 1.3's suites stay as they are: node:tls takes them from its own option.
  return names.length > 0 ? names.join(":") : undefined;
}
