/**
 * The JSON gateway (`POST /v3/...`) against real etcd 3.4.23's, side by side: the same requests
 * sent with HTTP/1.1 to a fresh etcd and a fresh detcd started with the same name and advertised
 * peer URL (so cluster and member IDs, revisions and raft terms agree). Each answer's status, the
 * headers grpc-gateway sets (content type, metadata, trailer declaration, nosniff, CORS) and the
 * body must be identical after normalising ports, tokens, the backend size and a lease's remaining
 * seconds. (An unknown sort order is left out: etcd 3.4 accepts it, detcd refuses it as etcd 3.5
 * does, see core/node/kv/validate.ts.) Streams (watch,
 * lease keep-alive) are compared line by line; the snapshot stream by its shape (its bytes are
 * each server's own backend).
 */

import assert from "node:assert/strict";
import { type Member, requireReference, sideBySide } from "./harness.ts";

const reference = requireReference();
const OPTIONS = { ignore: reference.ignore, sanitizeOps: false, sanitizeResources: false };

/** base64 of a string, as the gateway's bytes fields take it. */
const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));

/** The headers grpc-gateway and etcd's access controller decide (Date and hop-by-hop are not). */
const COMPARED_HEADERS = [
  "content-type",
  "content-length",
  "grpc-metadata-content-type",
  "trailer",
  "x-content-type-options",
  "access-control-allow-headers",
  "access-control-allow-methods",
  "access-control-allow-origin",
];

interface Request {
  path: string;
  body?: string;
  method?: string;
  /** Authorization header: a literal, or `{TOKEN}` for the token the last authenticate issued. */
  auth?: string;
}

interface Answer {
  status: number;
  headers: string;
  body: string;
}

function normalise(text: string, member: Member): string {
  return text
    .replaceAll(`:${member.clientPort}`, ":<CLIENT_PORT>")
    .replace(/"token":"[^"]*"/g, '"token":"<TOKEN>"')
    .replace(/"(dbSize|dbSizeInUse)":"\d+"/g, '"$1":"<SIZE>"')
    // The seconds a lease has left depend on when each side's request ran; the granted TTL stays.
    .replace(/"TTL":"\d+","grantedTTL"/g, '"TTL":"<N>","grantedTTL"');
}

async function send(member: Member, request: Request, token: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (request.auth !== undefined) {
    headers["Authorization"] = request.auth === "{TOKEN}" ? token : request.auth;
  }
  const res = await fetch(`${member.clientUrl}${request.path}`, {
    method: request.method ?? "POST",
    headers,
    body: request.method === "GET" || request.method === "OPTIONS" ? undefined : request.body ?? "",
  });
  const body = await res.text();
  const shown = COMPARED_HEADERS.flatMap((name) => {
    const value = res.headers.get(name);
    return value === null ? [] : [`${name}: ${value}`];
  });
  return { status: res.status, headers: shown.join("\n"), body: normalise(body, member) };
}

/** Runs the requests in order; a `{TOKEN}` request carries the token the last authenticate gave. */
async function runRequests(member: Member, requests: Request[]): Promise<Answer[]> {
  const answers: Answer[] = [];
  let token = "";
  for (const request of requests) {
    const answer = await send(member, request, token);
    if (request.path.endsWith("/auth/authenticate") && answer.status === 200) {
      const raw = await fetch(`${member.clientUrl}${request.path}`, {
        method: "POST",
        body: request.body,
      });
      token = (await raw.json()).token;
    }
    answers.push(answer);
  }
  return answers;
}

function compareAnswers(requests: Request[], etcd: Answer[], detcd: Answer[]): void {
  const problems: string[] = [];
  for (let i = 0; i < requests.length; i++) {
    const [a, b] = [etcd[i], detcd[i]];
    if (a.status === b.status && a.headers === b.headers && a.body === b.body) continue;
    problems.push(
      `step ${i + 1}: ${requests[i].method ?? "POST"} ${requests[i].path} ${
        requests[i].body ?? ""
      }\n  etcd  ${a.status}\n${a.headers}\n  ${a.body}\n  detcd ${b.status}\n${b.headers}\n  ${b.body}`,
    );
  }
  assert.equal(problems.length, 0, `${problems.length} answers differ:\n${problems.join("\n")}`);
}

const FOO = b64("foo");

/** KV, lease, cluster and maintenance calls, /v3beta, 404/405/OPTIONS, and malformed bodies. */
const KV_AND_ERRORS: Request[] = [
  { path: "/v3/kv/put", body: JSON.stringify({ key: FOO, value: b64("bar") }) },
  { path: "/v3/kv/range", body: JSON.stringify({ key: FOO }) },
  { path: "/v3/kv/range", body: JSON.stringify({ key: b64("none") }) },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","range_end":"AA==","keys_only":true}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","rangeEnd":"AA==","countOnly":true}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","bogus":1} trailing` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","sort_order":"DESCEND","limit":"1"}` },
  { path: "/v3beta/kv/range", body: `{"key":"${FOO}","serializable":true}` },
  { path: "/v3/kv/put", body: `{"key":"${b64("a<b>&c")}","value":"${b64("\u2028")}"}` },
  { path: "/v3/kv/range", body: `{"key":"YQ==","range_end":"ZA=="}` },
  {
    path: "/v3/kv/txn",
    body: JSON.stringify({
      compare: [{ target: "VALUE", key: FOO, value: b64("bar") }],
      success: [{ request_range: { key: FOO } }, { request_put: { key: b64("t"), value: "eA==" } }],
      failure: [{ request_delete_range: { key: FOO } }],
    }),
  },
  {
    path: "/v3/kv/txn",
    body: JSON.stringify({
      compare: [{ target: "MOD", key: FOO, result: "GREATER", mod_revision: "100" }],
      failure: [{ requestRange: { key: FOO, count_only: true } }],
    }),
  },
  { path: "/v3/kv/deleterange", body: `{"key":"${b64("t")}","prev_kv":true}` },
  { path: "/v3/kv/compaction", body: `{"revision":"2","physical":true}` },
  { path: "/v3/kv/compaction", body: `{"revision":1000}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","revision":1}` },
  // Leases (explicit IDs: a granted ID is random).
  { path: "/v3/lease/grant", body: `{"TTL":60,"ID":5}` },
  { path: "/v3/lease/grant", body: `{"TTL":"60","ID":"7587899359044395020"}` },
  { path: "/v3/lease/grant", body: `{"TTL":60,"ID":5}` },
  { path: "/v3/kv/put", body: `{"key":"${b64("l")}","value":"eA==","lease":5}` },
  { path: "/v3/lease/timetolive", body: `{"ID":5,"keys":true}` },
  { path: "/v3/kv/lease/timetolive", body: `{"ID":99}` },
  { path: "/v3/lease/leases", body: "{}" },
  { path: "/v3/kv/lease/revoke", body: `{"ID":"7587899359044395020"}` },
  { path: "/v3/lease/revoke", body: `{"ID":99}` },
  { path: "/v3/kv/lease/leases" },
  // Cluster and maintenance.
  { path: "/v3/cluster/member/list", body: "{}" },
  { path: "/v3/cluster/member/remove", body: `{"ID":"1"}` },
  { path: "/v3/maintenance/alarm", body: "{}" },
  { path: "/v3/maintenance/alarm", body: `{"action":"GET"}` },
  { path: "/v3/maintenance/alarm", body: `{"action":"DEACTIVATE","alarm":"NOSPACE"}` },
  // What is not a call.
  { path: "/v3/nope", body: "{}" },
  { path: "/v3/kv", body: "{}" },
  { path: "/v3/kv/range", method: "GET" },
  { path: "/v3/kv/range", method: "OPTIONS" },
  // Bodies grpc-gateway refuses, with Go's words.
  { path: "/v3/kv/range", body: "notjson" },
  { path: "/v3/kv/range", body: "" },
  { path: "/v3/kv/range", body: "   " },
  { path: "/v3/kv/range", body: "null" },
  { path: "/v3/kv/range", body: "[1]" },
  { path: "/v3/kv/range", body: '"text"' },
  { path: "/v3/kv/range", body: `{"key":"${FOO}"` },
  { path: "/v3/kv/range", body: `{"key" "x"}` },
  { path: "/v3/kv/range", body: `{"key":"x",}` },
  { path: "/v3/kv/range", body: `{"key":"x" "y":1}` },
  { path: "/v3/kv/range", body: `{key:1}` },
  { path: "/v3/kv/range", body: `{"key":tru}` },
  { path: "/v3/kv/range", body: `{"key":"\\q"}` },
  { path: "/v3/kv/range", body: `{"limit":-}` },
  { path: "/v3/kv/range", body: `{"limit":1.}` },
  { path: "/v3/kv/range", body: `{"limit":1e}` },
  { path: "/v3/kv/range", body: `{"key":[1,2}` },
  { path: "/v3/kv/range", body: `{"key":123}` },
  { path: "/v3/kv/range", body: `{"key":"!!"}` },
  { path: "/v3/kv/range", body: `{"key":"Zm9"}` },
  { path: "/v3/kv/range", body: `{"key":"Zg="}` },
  { path: "/v3/kv/range", body: `{"key":"Zm9v=="}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","limit":"abc"}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","limit":"1x"}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","limit":1.5}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","limit":true}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","limit":""}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","keys_only":"yes"}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}","sort_order":"NOPE"}` },
  { path: "/v3/kv/txn", body: `{"compare":{}}` },
  { path: "/v3/kv/txn", body: `{"success":[{"request_put":"x"}]}` },
  { path: "/v3/lease/grant", body: `{"TTL":60,"ID":-1}` },
  { path: "/v3/kv/put", body: `{"key":""}` },
  // Past --max-request-bytes (1.5 MiB): the gateway passes it on; past gRPC's limit (+512 KiB):
  // refused by gRPC itself. (These once drew a bare 400 from detcd under load: Deno's HTTP/1.1
  // server read a large body's later bytes before the first chunk, see server/listener.ts.)
  { path: "/v3/kv/put", body: `{"key":"${FOO}","value":"${btoa("x".repeat(1_600_000))}"}` },
  { path: "/v3/kv/put", body: `{"key":"${FOO}","value":"${btoa("x".repeat(2_097_152))}"}` },
  { path: "/v3/kv/put", body: `{"key":"${FOO}","lease":12345}` },
];

Deno.test({
  name: "gateway: KV, lease, cluster and maintenance calls and malformed bodies answer as etcd's",
  ...OPTIONS,
  fn: async () => {
    const [etcd, detcd] = await sideBySide((member) => runRequests(member, KV_AND_ERRORS));
    compareAnswers(KV_AND_ERRORS, etcd, detcd);
  },
});

/** Auth through the gateway: authenticate, then the Authorization header. */
const AUTH: Request[] = [
  { path: "/v3/auth/user/add", body: `{"name":"root","password":"rootpw"}` },
  { path: "/v3/auth/enable", body: "{}" },
  { path: "/v3/auth/role/add", body: `{"name":"root"}` },
  { path: "/v3/auth/user/grant", body: `{"user":"root","role":"root"}` },
  { path: "/v3/auth/user/add", body: `{"name":"u","password":"upw"}` },
  { path: "/v3/auth/role/add", body: `{"name":"r"}` },
  {
    path: "/v3/auth/role/grant",
    body: JSON.stringify({
      name: "r",
      perm: { permType: "READWRITE", key: FOO, range_end: b64("fop") },
    }),
  },
  { path: "/v3/auth/user/grant", body: `{"user":"u","role":"r"}` },
  { path: "/v3/auth/enable", body: "{}" },
  { path: "/v3/kv/range", body: `{"key":"${FOO}"}` },
  { path: "/v3/kv/range", body: `{"key":"${FOO}"}`, auth: "bogus" },
  { path: "/v3/auth/authenticate", body: `{"name":"root","password":"bad"}` },
  { path: "/v3/auth/authenticate", body: `{"name":"nobody","password":"x"}` },
  { path: "/v3/auth/authenticate", body: `{"name":"u","password":"upw"}` },
  { path: "/v3/kv/put", body: `{"key":"${FOO}","value":"eA=="}`, auth: "{TOKEN}" },
  { path: "/v3/kv/put", body: `{"key":"${b64("zzz")}","value":"eA=="}`, auth: "{TOKEN}" },
  { path: "/v3/kv/range", body: `{"key":"${FOO}"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/user/list", body: "{}", auth: "{TOKEN}" },
  { path: "/v3/auth/role/get", body: `{"role":"r"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/authenticate", body: `{"name":"root","password":"rootpw"}` },
  { path: "/v3/auth/user/get", body: `{"name":"u"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/role/get", body: `{"role":"r"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/role/list", body: "{}", auth: "{TOKEN}" },
  {
    path: "/v3/auth/role/revoke",
    body: `{"role":"r","key":"${FOO}","range_end":"${b64("fop")}"}`,
    auth: "{TOKEN}",
  },
  { path: "/v3/auth/user/revoke", body: `{"name":"u","role":"r"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/user/changepw", body: `{"name":"u","password":"new"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/user/delete", body: `{"name":"u"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/role/delete", body: `{"role":"r"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/user/delete", body: `{"name":"u"}`, auth: "{TOKEN}" },
  { path: "/v3/auth/disable", body: "{}", auth: "{TOKEN}" },
  { path: "/v3/kv/range", body: `{"key":"${FOO}"}` },
];

Deno.test({
  name: "gateway: auth calls and the Authorization header answer as etcd's",
  ...OPTIONS,
  fn: async () => {
    const [etcd, detcd] = await sideBySide((member) => runRequests(member, AUTH));
    compareAnswers(AUTH, etcd, detcd);
  },
});

/** A streaming POST: status, compared headers and the lines read until `lines` arrived or it ended. */
async function streamLines(
  member: Member,
  path: string,
  body: string,
  lines: number,
  between?: () => Promise<void>,
): Promise<string[]> {
  const aborted = new AbortController();
  const res = await fetch(`${member.clientUrl}${path}`, {
    method: "POST",
    body,
    signal: aborted.signal,
  });
  const head = COMPARED_HEADERS.flatMap((name) => {
    const value = res.headers.get(name);
    return value === null ? [] : [`${name}: ${value}`];
  });
  const out = [`${res.status}`, ...head];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let got = 0;
  let first = true;
  try {
    while (got < lines) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let nl;
      while (got < lines && (nl = buffered.indexOf("\n")) >= 0) {
        out.push(normalise(buffered.slice(0, nl), member));
        buffered = buffered.slice(nl + 1);
        got++;
        if (first && between !== undefined) {
          first = false;
          await between();
        }
      }
    }
    if (got < lines && buffered !== "") out.push(normalise(buffered, member));
  } finally {
    aborted.abort();
    await reader.cancel().catch(() => {});
  }
  return out;
}

async function post(member: Member, path: string, body: string): Promise<void> {
  const res = await fetch(`${member.clientUrl}${path}`, { method: "POST", body });
  await res.body?.cancel();
  assert.equal(res.status, 200, `${path} ${body}`);
}

Deno.test({
  name: "gateway: watch and lease keep-alive streams answer as etcd's, line by line",
  ...OPTIONS,
  fn: async () => {
    const [etcd, detcd] = await sideBySide(async (member) => {
      const out: string[][] = [];
      await post(member, "/v3/kv/put", `{"key":"${FOO}","value":"${b64("1")}"}`);
      // A watch, then a put seen on it.
      out.push(
        await streamLines(
          member,
          "/v3/watch",
          `{"create_request":{"key":"${FOO}"}}`,
          2,
          () => post(member, "/v3/kv/put", `{"key":"${FOO}","value":"${b64("2")}"}`),
        ),
      );
      // History from revision 1, prev_kv and a filter.
      out.push(
        await streamLines(
          member,
          "/v3/watch",
          `{"create_request":{"key":"${FOO}","start_revision":1,"prev_kv":true}}`,
          2,
        ),
      );
      out.push(
        await streamLines(
          member,
          "/v3/watch",
          `{"create_request":{"key":"${FOO}","filters":["NOPUT"]}} {"cancel_request":{"watch_id":"0"}}`,
          2,
        ),
      );
      // A body that is not JSON; a second message that is not (the first still runs).
      out.push(await streamLines(member, "/v3/watch", "nope", 1));
      out.push(
        await streamLines(
          member,
          "/v3/watch",
          `{"create_request":{"key":"${FOO}","start_revision":3}} {bad`,
          2,
        ),
      );
      // Keep-alive: a live lease, an unknown one, an empty body (the stream ends by itself).
      await post(member, "/v3/lease/grant", `{"TTL":60,"ID":5}`);
      out.push(await streamLines(member, "/v3/lease/keepalive", `{"ID":5}`, 5));
      out.push(await streamLines(member, "/v3/lease/keepalive", `{"ID":99}`, 5));
      out.push(await streamLines(member, "/v3/lease/keepalive", "", 5));
      out.push(await streamLines(member, "/v3/lease/keepalive", `{"ID":"x"}`, 5));
      return out;
    });
    assert.deepEqual(detcd, etcd);
  },
});

Deno.test({
  name: "gateway: snapshot streams base64 chunks; election and lock calls answer as etcd's",
  ...OPTIONS,
  fn: async () => {
    const [etcd, detcd] = await sideBySide(async (member) => {
      const res = await fetch(`${member.clientUrl}/v3/maintenance/snapshot`, {
        method: "POST",
        body: "{}",
      });
      const text = await res.text();
      const chunks = text.trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.ok(chunks.length >= 1);
      for (const chunk of chunks) assert.equal(typeof chunk.result.blob, "string");
      const bytes = chunks.reduce((n, c) => n + atob(c.result.blob).length, 0);
      assert.ok(bytes > 0, "the snapshot is not empty");
      const requests: Request[] = [
        { path: "/v3/lease/grant", body: `{"TTL":60,"ID":7}` },
        { path: "/v3/election/campaign", body: `{"name":"${b64("e")}","lease":7,"value":"dg=="}` },
        { path: "/v3/election/leader", body: `{"name":"${b64("e")}"}` },
        { path: "/v3/election/leader", body: `{"name":"${b64("none")}"}` },
        {
          path: "/v3/election/proclaim",
          body: JSON.stringify({
            leader: { name: b64("e"), key: b64("e/7"), rev: "2", lease: "7" },
            value: "dzI=",
          }),
        },
        { path: "/v3/election/leader", body: `{"name":"${b64("e")}"}` },
        {
          path: "/v3/election/resign",
          body: JSON.stringify({
            leader: { name: b64("e"), key: b64("e/7"), rev: "2", lease: "7" },
          }),
        },
        { path: "/v3/lock/lock", body: `{"name":"${b64("l")}","lease":7}` },
        { path: "/v3/lock/unlock", body: `{"key":"${b64("l/7")}"}` },
        { path: "/v3/lock/lock", body: `{"name":"${b64("l")}","lease":99}` },
      ];
      const answers = await runRequests(member, requests);
      return [
        `${res.status} ${res.headers.get("content-type")} ${
          res.headers.get("grpc-metadata-content-type")
        }`,
        ...answers.map((a) => `${a.status}\n${a.headers}\n${a.body}`),
      ];
    });
    assert.deepEqual(detcd, etcd);
  },
});

Deno.test({
  name: "gateway: large bodies sent at once on many HTTP/1.1 connections are all read whole",
  ...OPTIONS,
  fn: async () => {
    // Regression: Deno's HTTP/1.1 server read a fresh connection's later bytes before the first
    // chunk the port had peeked at, so about one large request in twenty got a bare 400.
    const body = `{"key":"${FOO}","value":"${btoa("x".repeat(2_097_152))}"}`;
    const [etcd, detcd] = await sideBySide(async (member) => {
      const answers: Record<string, number> = {};
      for (let round = 0; round < 3; round++) {
        await Promise.all(Array.from({ length: 20 }, async () => {
          const res = await fetch(`${member.clientUrl}/v3/kv/put`, { method: "POST", body });
          const text = (await res.text()).replace(/\(\d+ vs\. \d+\)/, "(N vs. M)");
          const key = `${res.status} ${text}`;
          answers[key] = (answers[key] ?? 0) + 1;
        }));
      }
      return answers;
    });
    assert.deepEqual(detcd, etcd);
    assert.deepEqual(Object.values(detcd), [60]);
  },
});
