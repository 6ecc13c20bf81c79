/**
 * The web console's server side, without a browser: its pages' headers (same-origin, a CSP,
 * nothing cached), the switch that turns it off (then /ui/ answers as etcd's client port does),
 * and its two calls over Connect as a browser makes them: Console.History (with auth: read
 * permission on the key) and Console.Watch as a server stream.
 */
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Console } from "../gen/detcdpb/console_pb.ts";
import { Event_EventType } from "../gen/mvccpb/kv_pb.ts";
import {
  assertReference,
  type Member,
  requireReference,
  runCtl,
  startMember,
  testTlsFiles,
} from "./harness.ts";

const reference = requireReference();
const enc = new TextEncoder();
const dec = new TextDecoder();

async function get(member: Member, path: string, init: RequestInit = {}) {
  const res = await fetch(`${member.clientUrl}${path}`, { redirect: "manual", ...init });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

async function ctl(member: Member, ...args: string[]): Promise<string> {
  const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args]);
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function consoleClient(member: Member, token = "", options: { json?: boolean; ca?: string } = {}) {
  const client = options.ca ? Deno.createHttpClient({ caCerts: [options.ca] }) : undefined;
  return createClient(
    Console,
    createConnectTransport({
      baseUrl: member.clientUrl,
      useBinaryFormat: !options.json,
      fetch: client ? (input, init) => fetch(input, { ...init, client }) : undefined,
      interceptors: [(next) => (req) => {
        if (token !== "") req.header.set("token", token);
        return next(req);
      }],
    }),
  );
}

Deno.test({
  name:
    "web console: /ui/ is served same-origin with a CSP and no caching; off, /ui/ is etcd's 404",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const detcd = await startMember({ kind: "detcd" });
    const off = await startMember({ kind: "detcd", extraArgs: ["--web-console=false"] });
    const etcd = await startMember({ kind: "etcd" });
    try {
      const page = await get(detcd, "/ui/");
      assert.equal(page.status, 200);
      assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
      assert.match(page.body, /<script type="module" src="app.js"><\/script>/);
      const csp = page.headers.get("content-security-policy") ?? "";
      for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'"]) {
        assert.ok(csp.includes(directive), `${directive} in ${csp}`);
      }
      assert.equal(page.headers.get("cache-control"), "no-store");
      assert.equal(page.headers.get("x-frame-options"), "DENY");
      // etcd's client port sends Access-Control-Allow-Origin: * on its plain endpoints; the
      // console's pages are same-origin only.
      assert.equal(page.headers.get("access-control-allow-origin"), null);
      const app = await get(detcd, "/ui/app.js");
      assert.equal(app.status, 200);
      assert.equal(app.headers.get("content-type"), "text/javascript; charset=utf-8");
      assert.ok(app.body.length > 1000);
      assert.equal((await get(detcd, "/ui")).status, 301);
      assert.equal((await get(detcd, "/ui/")).headers.get("cache-control"), "no-store");
      const missing = await get(detcd, "/ui/nothing-here.js");
      assert.equal(missing.status, 404);
      assert.equal((await get(detcd, "/ui/", { method: "POST", body: "x" })).status, 405);

      // Turned off: /ui/ answers exactly as etcd's client port does.
      for (const path of ["/ui/", "/ui/app.js"]) {
        const [a, b] = [await get(etcd, path), await get(off, path)];
        assert.deepEqual({ status: b.status, body: b.body }, { status: a.status, body: a.body });
      }
      await assert.rejects(
        consoleClient(off).history({ key: enc.encode("k") }),
        /unimplemented|not found|404/i,
      );
    } finally {
      await Promise.all([detcd.stop(), off.stop(), etcd.stop()]);
    }
  },
});

Deno.test({
  name:
    "web console: Console.History and Console.Level page a key's revisions and a tree level; auth asks read permission",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const detcd = await startMember({ kind: "detcd" });
    try {
      for (const v of ["v1", "v2"]) await ctl(detcd, "put", "/app/k", v);
      await ctl(detcd, "put", "/other", "x");
      await ctl(detcd, "del", "/app/k");
      await ctl(detcd, "put", "/app/k", "v3");
      const client = consoleClient(detcd);
      const all = await client.history({ key: enc.encode("/app/k") });
      const show = (events: typeof all.events) =>
        events.map((e) =>
          `${e.kv!.modRevision}:${
            e.type === Event_EventType.DELETE ? "DELETE" : dec.decode(e.kv!.value)
          }`
        );
      assert.deepEqual(show(all.events), ["6:v3", "5:DELETE", "3:v2", "2:v1"]);
      assert.equal(all.more, false);
      assert.equal(all.header!.revision, 6n);
      const first = await client.history({ key: enc.encode("/app/k"), limit: 2n });
      assert.deepEqual(show(first.events), ["6:v3", "5:DELETE"]);
      assert.equal(first.more, true);
      const rest = await client.history({ key: enc.encode("/app/k"), beforeRevision: 5n });
      assert.deepEqual(show(rest.events), ["3:v2", "2:v1"]);
      await assert.rejects(client.history({ key: new Uint8Array(0) }), /key is not provided/);
      await ctl(detcd, "compact", "3");
      const compacted = await client.history({ key: enc.encode("/app/k") });
      assert.deepEqual(show(compacted.events), ["6:v3", "5:DELETE", "3:v2"]);
      assert.equal(compacted.compactRevision, 3n);

      // A tree level: folders once each, keys, paged; deleted keys are not listed.
      await ctl(detcd, "put", "/app/sub/x", "1");
      await ctl(detcd, "put", "/app/sub/y", "2");
      await ctl(detcd, "put", "/app/z", "3");
      const level = (prefix: string, from: Uint8Array = new Uint8Array(0), limit = 0n) =>
        client.level({ prefix: enc.encode(prefix), separator: enc.encode("/"), from, limit });
      const names = (r: Awaited<ReturnType<typeof level>>) =>
        r.entries.map((e) => `${dec.decode(e.path)}${e.folder ? "*" : ""}`);
      assert.deepEqual(names(await level("")), ["/*"]);
      assert.deepEqual(names(await level("/")), ["/app/*", "/other"]);
      const page1 = await level("/app/", undefined, 2n);
      assert.deepEqual(names(page1), ["/app/k", "/app/sub/*"]);
      const page2 = await level("/app/", page1.next, 2n);
      assert.deepEqual(names(page2), ["/app/z"]);
      assert.equal(page2.next.length, 0);
      await assert.rejects(
        client.level({ prefix: enc.encode("/"), separator: enc.encode("//") }),
        /separator is one byte/,
      );

      // Auth off: everything, as root.
      const open = await client.permissions({});
      assert.deepEqual([open.authEnabled, open.root, open.perms.length], [false, true, 0]);

      // Auth: alice may read /app/ only.
      await ctl(detcd, "user", "add", "root:rootpw");
      await ctl(detcd, "user", "add", "alice:alicepw");
      await ctl(detcd, "role", "add", "app");
      await ctl(detcd, "role", "grant-permission", "app", "--prefix=true", "read", "/app/");
      await ctl(detcd, "user", "grant-role", "alice", "app");
      await ctl(detcd, "auth", "enable");
      await assert.rejects(client.history({ key: enc.encode("/app/k") }), /user name is empty/);
      await assert.rejects(client.permissions({}), /user name is empty/);
      const { Auth } = await import("../gen/etcdserverpb/rpc_pb.ts");
      const authClient = createClient(
        Auth,
        createConnectTransport({ baseUrl: detcd.clientUrl, useBinaryFormat: true }),
      );
      const { token } = await authClient.authenticate({ name: "alice", password: "alicepw" });
      const alice = consoleClient(detcd, token);
      assert.deepEqual(show((await alice.history({ key: enc.encode("/app/k") })).events), [
        "6:v3",
        "5:DELETE",
        "3:v2",
      ]);
      await assert.rejects(alice.history({ key: enc.encode("/other") }), /permission denied/);
      const own = await alice.permissions({});
      assert.equal(own.authEnabled, true);
      assert.equal(own.root, false);
      assert.deepEqual(
        own.perms.map((p) => [p.permType, dec.decode(p.key), dec.decode(p.rangeEnd)]),
        [[0, "/app/", "/app0"]],
      );
      const rootToken = (await authClient.authenticate({ name: "root", password: "rootpw" })).token;
      const asRoot = await consoleClient(detcd, rootToken).permissions({});
      assert.equal(asRoot.root, true);
      const aliceLevel = (prefix: string) =>
        alice.level({ prefix: enc.encode(prefix), separator: enc.encode("/") });
      assert.equal((await aliceLevel("/app/")).entries.length, 3);
      // A page cannot start before her prefix (where /other is).
      const early = await alice.level({
        prefix: enc.encode("/app/"),
        separator: enc.encode("/"),
        from: enc.encode("/"),
      });
      assert.ok(early.entries.every((e) => dec.decode(e.path).startsWith("/app/")));
      await assert.rejects(aliceLevel("/"), /permission denied/);
      await assert.rejects(aliceLevel(""), /permission denied/);
    } finally {
      await detcd.stop();
    }
  },
});

Deno.test({
  name: "web console: Console.Watch streams a watch's events to a Connect client until it leaves",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const detcd = await startMember({ kind: "detcd" });
    try {
      const client = consoleClient(detcd);
      const controller = new AbortController();
      const stream = client.watch({
        key: enc.encode("/w/"),
        rangeEnd: enc.encode("/w0"),
        prevKv: true,
      }, { signal: controller.signal });
      const seen: string[] = [];
      let created = false;
      const reading = (async () => {
        try {
          for await (const res of stream) {
            if (res.created) created = true;
            for (const e of res.events) {
              seen.push(
                `${e.type === Event_EventType.DELETE ? "DELETE" : "PUT"} ${dec.decode(e.kv!.key)}` +
                  (e.prevKv ? ` prev=${dec.decode(e.prevKv.value)}` : ""),
              );
            }
            if (seen.length === 3) break;
          }
        } catch (e) {
          if (!controller.signal.aborted) throw e;
        }
      })();
      for (let i = 0; i < 100 && !created; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(created, "the watch was created");
      await ctl(detcd, "put", "/w/a", "1");
      await ctl(detcd, "put", "/x", "not watched");
      await ctl(detcd, "put", "/w/a", "2");
      await ctl(detcd, "del", "/w/a");
      await reading;
      controller.abort();
      assert.deepEqual(seen, ["PUT /w/a", "PUT /w/a prev=1", "DELETE /w/a prev=2"]);
    } finally {
      await detcd.stop();
    }
  },
});

Deno.test({
  name:
    "web console on a TLS port: the page and Connect over HTTP/2 (unary, errors, a server stream; binary and JSON) answer as over HTTP/1.1",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const files = testTlsFiles();
    const ca = await Deno.readTextFile(files.ca);
    const tls = await startMember({
      kind: "detcd",
      clientScheme: "https",
      extraArgs: ["--cert-file", files.cert, "--key-file", files.key],
    });
    const plain = await startMember({ kind: "detcd" });
    try {
      const tlsCtl = (...args: string[]) =>
        runCtl("etcdctl", [`--endpoints=${tls.clientUrl}`, `--cacert=${files.ca}`, ...args]);
      for (const m of [tls, plain]) {
        for (const [k, v] of [["/a/1", "x"], ["/a/2", "y"], ["/b", "z"]]) {
          const r = m === tls
            ? await tlsCtl("put", k, v)
            : await runCtl("etcdctl", [`--endpoints=${m.endpoint}`, "put", k, v]);
          assert.equal(r.code, 0, r.stderr);
        }
      }
      const client = Deno.createHttpClient({ caCerts: [ca] });
      const page = await fetch(`${tls.clientUrl}/ui/`, { client });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>detcd console<\/title>/);
      for (const json of [false, true]) {
        const overTls = consoleClient(tls, "", { json, ca });
        const overH1 = consoleClient(plain, "", { json });
        const level = { prefix: enc.encode("/"), separator: enc.encode("/") };
        const a = await overTls.level(level);
        const b = await overH1.level(level);
        assert.deepEqual(a.entries.map((e) => dec.decode(e.path)), ["/a/", "/b"]);
        assert.deepEqual(a.entries, b.entries);
        const history = await overTls.history({ key: enc.encode("/b") });
        assert.deepEqual(history.events.map((e) => dec.decode(e.kv!.value)), ["z"]);
        // An error: the same code and text either way.
        const failure = async (c: typeof overTls) => {
          try {
            await c.history({ key: new Uint8Array(0) });
          } catch (e) {
            return String(e);
          }
          return "no error";
        };
        assert.equal(await failure(overTls), await failure(overH1));
        assert.match(await failure(overTls), /invalid_argument.*key is not provided/);
        // Larger than --max-request-bytes (1.5 MiB) + gRPC's allowance: refused, as over HTTP/1.1.
        const huge = async (c: typeof overTls) => {
          try {
            await c.history({ key: new Uint8Array(3 * 1024 * 1024).fill(0x61) });
          } catch (e) {
            return String(e);
          }
          return "no error";
        };
        assert.match(await huge(overTls), /resource_exhausted/);
        assert.match(await huge(overH1), /resource_exhausted/);
        // A server stream: a watch sees a put.
        const controller = new AbortController();
        const seen: string[] = [];
        const reading = (async () => {
          try {
            for await (
              const res of overTls.watch({ key: enc.encode(`w-${json}`) }, {
                signal: controller.signal,
              })
            ) {
              if (res.created) {
                const r = await tlsCtl("put", `w-${json}`, json ? "json" : "binary");
                assert.equal(r.code, 0, r.stderr);
              }
              for (const e of res.events) seen.push(dec.decode(e.kv!.value));
              if (seen.length > 0) break;
            }
          } catch (e) {
            if (!controller.signal.aborted) throw e;
          }
        })();
        await reading;
        controller.abort();
        assert.deepEqual(seen, [json ? "json" : "binary"]);
      }
      client.close();
    } finally {
      await Promise.all([tls.stop(), plain.stop()]);
    }
  },
});
