import assert from "node:assert/strict";
import { caBundle, keyPairError, pemBlocks } from "./tls_files.ts";

const block = (type: string, body = "MAA=") =>
  `-----BEGIN ${type}-----\n${body}\n-----END ${type}-----\n`;

Deno.test("pemBlocks finds every block and skips text between them", () => {
  const blocks = pemBlocks(`junk\n${block("CERTIFICATE")}more\n${block("RSA PRIVATE KEY")}`);
  assert.deepEqual(blocks.map((b) => b.type), ["CERTIFICATE", "RSA PRIVATE KEY"]);
  assert.deepEqual([...blocks[0].der], [0x30, 0x00]);
});

Deno.test("keyPairError gives tls.X509KeyPair's texts for missing or switched blocks", () => {
  assert.equal(
    keyPairError("nothing", ""),
    "tls: failed to find any PEM data in certificate input",
  );
  assert.equal(
    keyPairError(block("PRIVATE KEY"), ""),
    "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched",
  );
  assert.equal(
    keyPairError(block("FOO") + block("BAR"), ""),
    'tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping PEM blocks of the following types: [FOO BAR]',
  );
  assert.equal(
    keyPairError(block("CERTIFICATE"), ""),
    "tls: failed to find any PEM data in key input",
  );
  assert.equal(
    keyPairError(block("CERTIFICATE"), block("CERTIFICATE")),
    "tls: found a certificate rather than a key in the PEM for the private key",
  );
});

Deno.test("caBundle: no PEM is an empty pool; a block that is no certificate is an x509 error", () => {
  assert.deepEqual(caBundle("not pem"), { certs: [] });
  assert.deepEqual(caBundle(block("X", "AgEA")), { error: "x509: malformed certificate" });
  assert.deepEqual(caBundle(block("PRIVATE KEY", "MAMCAQA=")), {
    error: "x509: malformed tbs certificate",
  });
});
