/**
 * Clients that put a URL scheme into HTTP/2's `:authority` (etcdctl 3.4 with
 * `--endpoints=http://…`, and `endpoint status --cluster`, which dials the members' client URLs)
 * against a real detcd member: detcd's HTTP/2 server (server/h2) accepts that authority.
 *
 * The etcdctl tests need etcdctl 3.4.23 on PATH; without it they are ignored, unless
 * DETCD_REQUIRE_REFERENCE is set (1 or true), in which case they fail. The raw HTTP/2 test needs only detcd.
 */

import * as http2 from "node:http2";
import { assert, assertEquals } from "../core/testing.ts";
import {
  type Member,
  referenceRequired,
  requireDetcd,
  runCtl,
  startMember,
  which,
} from "./harness.ts";

const detcd = requireDetcd();
const haveEtcdctl = which("etcdctl") !== undefined;
const requireReference = referenceRequired();
if (!haveEtcdctl && !requireReference) {
  console.warn("ignoring etcdctl tests of scheme authorities: etcdctl not on PATH");
}
const options = { sanitizeResources: false, sanitizeOps: false };

async function withMember(fn: (member: Member) => Promise<void>): Promise<void> {
  const member = await startMember({ kind: "detcd" });
  try {
    await fn(member);
  } finally {
    await member.stop();
  }
}

async function ctl(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const result = await runCtl("etcdctl", ["--dial-timeout=3s", "--command-timeout=5s", ...args], {
    timeoutMs: 20_000,
  });
  return { stdout: result.stdout, stderr: result.stderr, code: result.code };
}

Deno.test({
  name: "etcdctl with http:// endpoints: endpoint status (also --cluster), put and get",
  ignore: detcd.ignore || (!haveEtcdctl && !requireReference),
  ...options,
  fn: () =>
    withMember(async (member) => {
      assert(haveEtcdctl, "etcdctl 3.4.23 not on PATH and DETCD_REQUIRE_REFERENCE is set");
      const url = member.clientUrl;

      const status = await ctl([`--endpoints=${url}`, "endpoint", "status"]);
      assertEquals(status.code, 0, status.stderr);
      const plain = await ctl([`--endpoints=${member.endpoint}`, "endpoint", "status"]);
      assertEquals(plain.code, 0, plain.stderr);
      // The same row, only the endpoint column differs (as with etcd).
      assertEquals(status.stdout, plain.stdout.replace(member.endpoint, url));
      assert(status.stdout.startsWith(`${url}, `), status.stdout);

      const cluster = await ctl([`--endpoints=${url}`, "endpoint", "status", "--cluster"]);
      assertEquals(cluster.code, 0, cluster.stderr);
      assert(cluster.stdout.startsWith(`${url}, `), cluster.stdout);
      // --cluster dials the advertised client URL (with its scheme) whatever --endpoints says.
      const viaPlain = await ctl([
        `--endpoints=${member.endpoint}`,
        "endpoint",
        "status",
        "--cluster",
      ]);
      assertEquals([viaPlain.code, viaPlain.stdout], [0, cluster.stdout], viaPlain.stderr);

      const put = await ctl([`--endpoints=${url}`, "put", "scheme-key", "scheme-value"]);
      assertEquals([put.code, put.stdout], [0, "OK\n"], put.stderr);
      const get = await ctl([`--endpoints=${url}`, "get", "scheme-key"]);
      assertEquals([get.code, get.stdout], [0, "scheme-key\nscheme-value\n"], get.stderr);
      const both = await ctl([`--endpoints=${url},${member.endpoint}`, "endpoint", "status"]);
      assertEquals(both.code, 0, both.stderr);
      assertEquals(both.stdout.split("\n").filter((l) => l !== "").length, 2);
    }),
});

/** One unary gRPC call with an empty request message; resolves to its grpc-status. */
function emptyCall(session: http2.ClientHttp2Session, path: string, authority: string) {
  return new Promise<string>((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      ":authority": authority,
      "content-type": "application/grpc",
      "te": "trailers",
    });
    let status = "no grpc-status";
    // grpc-status comes in the trailers, or in the headers of a trailers-only response.
    const take = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", () => {});
    req.on("error", reject);
    req.on("close", () => resolve(status));
    req.end(new Uint8Array(5));
  });
}

Deno.test({
  name: "many requests on one connection with a scheme authority, next to a normal connection",
  ignore: detcd.ignore,
  ...options,
  fn: () =>
    withMember(async (member) => {
      const withScheme = http2.connect(member.clientUrl);
      const normal = http2.connect(member.clientUrl);
      try {
        for (let i = 0; i < 20; i++) {
          const [a, b] = await Promise.all([
            emptyCall(withScheme, "/etcdserverpb.Maintenance/Status", member.clientUrl),
            emptyCall(normal, "/etcdserverpb.Maintenance/Status", member.endpoint),
          ]);
          assertEquals([a, b], ["0", "0"], `request ${i}`);
        }
        // Unknown methods still answer with gRPC's status on a rewritten connection.
        assertEquals(await emptyCall(withScheme, "/no.Such/Method", member.clientUrl), "12");
      } finally {
        withScheme.close();
        normal.close();
      }
    }),
});
