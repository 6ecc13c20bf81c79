/**
 * The JSON gateway over WebSocket (etcd 3.4's grpc-websocket-proxy on `/v3/`) against real etcd
 * 3.4.23, side by side: a raw RFC 6455 client written here (so handshakes, frames and close codes
 * are seen as sent) talks to a fresh etcd and a fresh detcd sharing name and peer URL, and each
 * scenario's transcript (handshake status and headers, every frame received, the end of the
 * connection) must be the same on both.
 */

import assert from "node:assert/strict";
import { concatBytes } from "../core/bytes.ts";
import { type Member, requireReference, sideBySide } from "./harness.ts";

const reference = requireReference();
const OPTIONS = { ignore: reference.ignore, sanitizeOps: false, sanitizeResources: false };

const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
/** Handshake headers whose values are compared (the rest are Go's or Node's own: Date). */
const SHOWN = [
  "upgrade",
  "connection",
  "sec-websocket-accept",
  "sec-websocket-protocol",
  "sec-websocket-version",
  "content-type",
  "x-content-type-options",
  "access-control-allow-origin",
];
/** How long a client waits for the next frame before writing "(nothing)". */
const QUIET_MS = 3_000;

/** A raw WebSocket client: the handshake as text, then frames one at a time. */
class RawClient {
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;
  #reading: Promise<void> | null = null;

  private constructor(readonly conn: Deno.TcpConn) {}

  /** Connects and sends an upgrade request; `extra` headers replace the defaults of the same name. */
  static async open(
    member: Member,
    path: string,
    extra: Record<string, string | null> = {},
    method = "GET",
  ): Promise<{ client: RawClient; handshake: string[] }> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: member.clientPort });
    const client = new RawClient(conn);
    const headers: Record<string, string | null> = {
      Host: `127.0.0.1:${member.clientPort}`,
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version": "13",
      ...extra,
    };
    const lines = [`${method} ${path} HTTP/1.1`];
    for (const [name, value] of Object.entries(headers)) {
      if (value !== null) lines.push(`${name}: ${value}`);
    }
    await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
    const head = await client.#readHead();
    return { client, handshake: head };
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(65536);
    const n = await this.conn.read(chunk).catch(() => null);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#buf = concatBytes(this.#buf, chunk.subarray(0, n));
    return true;
  }

  /** The status line and the shown headers (sorted), then the body of a refusal. */
  async #readHead(): Promise<string[]> {
    const text = () => new TextDecoder().decode(this.#buf);
    while (!text().includes("\r\n\r\n")) {
      if (!(await this.#fill())) break;
    }
    const end = text().indexOf("\r\n\r\n");
    const [status, ...fields] = text().slice(0, end).split("\r\n");
    const consumed = new TextEncoder().encode(text().slice(0, end + 4)).length;
    this.#buf = this.#buf.slice(consumed);
    const shown = fields
      .map((f) => [f.slice(0, f.indexOf(":")).toLowerCase(), f.slice(f.indexOf(":") + 1).trim()])
      // Connection is compared on a 101 only (Go leaves it out of other answers, Node adds one).
      .filter(([name]) =>
        SHOWN.includes(name) && (name !== "connection" || status.includes(" 101 "))
      )
      .map(([name, value]) => `${name}: ${value}`)
      .sort();
    const out = [status, ...shown];
    if (!status.includes(" 101 ")) {
      const length = Number(
        fields.find((f) => f.toLowerCase().startsWith("content-length:"))?.split(":")[1] ?? 0,
      );
      while (this.#buf.length < length && await this.#fill());
      out.push(`body ${JSON.stringify(new TextDecoder().decode(this.#buf.subarray(0, length)))}`);
    }
    return out;
  }

  /** Sends one frame, masked unless told otherwise. */
  async frame(
    opcode: number,
    payload: string | Uint8Array,
    options: { fin?: boolean; masked?: boolean } = {},
  ) {
    const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    const masked = options.masked ?? true;
    const head: number[] = [(options.fin ?? true ? 0x80 : 0) | opcode];
    const maskBit = masked ? 0x80 : 0;
    if (data.length < 126) head.push(maskBit | data.length);
    else head.push(maskBit | 126, data.length >> 8, data.length & 0xff);
    const mask = [0x12, 0x34, 0x56, 0x78];
    const body = masked ? data.map((b, i) => b ^ mask[i & 3]) : data;
    const out = new Uint8Array([...head, ...(masked ? mask : []), ...body]);
    await this.conn.write(out);
  }

  send(text: string) {
    return this.frame(0x1, text);
  }

  /** The next frame as text (`text ...`, `close <code> <reason>`, `pong ...`), `EOF`, or `(nothing)`. */
  async next(): Promise<string> {
    const deadline = Date.now() + QUIET_MS;
    while (true) {
      const frame = this.#takeFrame();
      if (frame !== null) return frame;
      if (this.#eof) return "EOF";
      const remaining = deadline - Date.now();
      if (remaining <= 0) return "(nothing)";
      this.#reading ??= this.#fill().then(() => {
        this.#reading = null;
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const quiet = await Promise.race([
        this.#reading.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), remaining))),
      ]);
      clearTimeout(timer);
      if (quiet) return "(nothing)";
    }
  }

  #takeFrame(): string | null {
    const b = this.#buf;
    if (b.length < 2) return null;
    const opcode = b[0] & 0x0f;
    let length = b[1] & 0x7f;
    let at = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = (b[2] << 8) | b[3];
      at = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      length = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
      at = 10;
    }
    if ((b[1] & 0x80) !== 0) return "a masked frame from the server";
    if (b.length < at + length) return null;
    const payload = b.slice(at, at + length);
    this.#buf = b.slice(at + length);
    const text = new TextDecoder().decode(payload);
    const fin = (b[0] & 0x80) !== 0 ? "" : " (not final)";
    if (opcode === 0x8) {
      const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : "none";
      return `close ${code} ${JSON.stringify(text.slice(2))}${fin}`;
    }
    const kind = { 0x1: "text", 0x2: "binary", 0x9: "ping", 0xa: "pong" }[opcode] ?? `op${opcode}`;
    return `${kind} ${text}${fin}`;
  }

  /** Frames until the connection ends (at most `max`, then "(more)"). */
  async rest(max = 10): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < max; i++) {
      const frame = await this.next();
      out.push(frame);
      if (frame === "EOF" || frame === "(nothing)") return out;
    }
    out.push("(more)");
    return out;
  }

  close() {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }
}

function normalise(lines: string[], member: Member): string[] {
  return lines.map((line) =>
    line.replaceAll(`:${member.clientPort}`, ":<CLIENT_PORT>")
      .replace(/"token":"[^"]*"/g, '"token":"<TOKEN>"')
  );
}

async function post(member: Member, path: string, body: string, token?: string): Promise<string> {
  const res = await fetch(`${member.clientUrl}${path}`, {
    method: "POST",
    body,
    headers: token === undefined ? {} : { Authorization: token },
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${member.kind} ${path} ${body}: ${text}`);
  return text;
}

/**
 * Opens a connection to `path`, lets `act` send, and returns the handshake and every frame that
 * follows until the connection ends (or goes quiet).
 */
async function exchange(
  member: Member,
  path: string,
  act: (client: RawClient) => Promise<void>,
  extra: Record<string, string> = {},
): Promise<string[]> {
  const { client, handshake } = await RawClient.open(member, path, extra);
  try {
    await act(client);
    return [...handshake, ...(await client.rest())];
  } finally {
    client.close();
  }
}

/** One scenario's transcript: a title line, the handshake, then what the scenario records. */
type Scenario = [string, (member: Member) => Promise<string[]>];

const KEY = b64("ws/a");

const SCENARIOS: Scenario[] = [
  ["watch: created, an event from a put elsewhere, a ping, then a close frame", async (member) => {
    const { client, handshake } = await RawClient.open(member, "/v3/watch");
    try {
      await client.send(JSON.stringify({ create_request: { key: KEY } }));
      const out = [...handshake, await client.next()];
      await post(member, "/v3/kv/put", JSON.stringify({ key: KEY, value: b64("1") }));
      out.push(await client.next());
      await client.frame(0x9, "are you there");
      out.push(await client.next());
      await client.frame(0x8, new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65])); // 1000 "bye"
      return [...out, ...(await client.rest())];
    } finally {
      client.close();
    }
  }],
  ["watch: two requests in one message, a fragmented one, then a bad one", async (member) => {
    const { client, handshake } = await RawClient.open(member, "/v3beta/watch");
    try {
      await client.send(
        `{"create_request":{"key":"${KEY}","start_revision":1}} {"create_request":{"key":"${
          b64("ws/b")
        }"}}`,
      );
      // The history event and the second creation race (etcd sends history from a loop every
      // 100 ms): compared as a set.
      const first = [await client.next(), await client.next(), await client.next()].sort();
      const out = [...handshake, ...first];
      await client.frame(0x1, `{"create_request":{"key":`, { fin: false });
      await client.frame(0x0, `"${b64("ws/c")}"}}`);
      out.push(await client.next());
      await client.send(`{"cancel_request":{"watch_id":"1"}}`);
      out.push(await client.next());
      await client.send("{bad");
      out.push(await client.next());
      return out;
    } finally {
      client.close();
    }
  }],
  [
    "unary range: one answer, then the connection ends",
    (member) => exchange(member, "/v3/kv/range", (c) => c.send(JSON.stringify({ key: KEY }))),
  ],
  [
    "unary put in two messages (one JSON value over both)",
    (member) =>
      exchange(member, "/v3/kv/put", async (c) => {
        await c.send(`{"key":"${KEY}",`);
        await c.send(`"value":"${b64("2")}"}`);
      }),
  ],
  ["unary range: a body that is not JSON, then an unknown path", async (member) => [
    ...(await exchange(member, "/v3/kv/range", (c) => c.send("nope"))),
    ...(await exchange(member, "/v3/kv/nothing", (c) => c.send("{}"))),
  ]],
  [
    "a Bearer subprotocol is answered in kind (auth off: the token is not looked at)",
    (member) =>
      exchange(
        member,
        "/v3/kv/range",
        (c) => c.send(JSON.stringify({ key: KEY, count_only: true })),
        { "Sec-WebSocket-Protocol": "Bearer, sometoken" },
      ),
  ],
  ["an unmasked frame is a protocol error", (member) =>
    exchange(
      member,
      "/v3/watch",
      (c) => c.frame(0x1, `{"create_request":{"key":"${KEY}"}}`, { masked: false }),
    )],
  [
    "an unknown opcode is a protocol error",
    (member) => exchange(member, "/v3/watch", (c) => c.frame(0x3, "x")),
  ],
  ["reserved bits on an unmasked frame; a close frame with a code no peer may send", async (
    member,
  ) => [
    ...(await exchange(member, "/v3/watch", (c) => c.frame(0x20 | 0x1, "x", { masked: false }))),
    // 1005
    ...(await exchange(member, "/v3/watch", (c) => c.frame(0x8, new Uint8Array([0x03, 0xed])))),
  ]],
  ["handshakes gorilla refuses: POST, no version, no key", async (member) => {
    const out: string[] = [];
    for (
      const [extra, method] of [
        [{}, "POST"],
        [{ "Sec-WebSocket-Version": null }, "GET"],
        [{ "Sec-WebSocket-Version": "8" }, "GET"],
        [{ "Sec-WebSocket-Key": null }, "GET"],
      ] as [Record<string, string | null>, string][]
    ) {
      const { client, handshake } = await RawClient.open(member, "/v3/kv/range", extra, method);
      client.close();
      out.push(...handshake);
    }
    return out;
  }],
];

Deno.test({
  name: "gateway over WebSocket: watch, unary calls, framing and handshakes as etcd's",
  ...OPTIONS,
  fn: async () => {
    const [etcd, detcd] = await sideBySide(async (member) => {
      const out: string[] = [];
      for (const [title, run] of SCENARIOS) {
        out.push(`# ${title}`, ...normalise(await run(member), member));
      }
      return out;
    });
    assert.deepEqual(detcd, etcd);
    // What the comparison holds: the watch saw its event, the unary call answered.
    const text = detcd.join("\n");
    assert.match(text, /"events":\[\{"kv":\{"key":"d3MvYQ==".*"value":"MQ=="/);
    assert.match(text, /HTTP\/1.1 101 Switching Protocols/);
    assert.match(text, /close 1002 "bad MASK"/);
  },
});

Deno.test({
  name:
    "gateway over WebSocket: with auth on, a Bearer token or a token cookie as etcd 3.4 reads them",
  ...OPTIONS,
  fn: async () => {
    const [etcd, detcd] = await sideBySide(async (member) => {
      await post(member, "/v3/auth/user/add", `{"name":"root","password":"pw"}`);
      await post(member, "/v3/auth/user/grant", `{"user":"root","role":"root"}`);
      await post(member, "/v3/auth/enable", "{}");
      const token = JSON.parse(
        await post(member, "/v3/auth/authenticate", `{"name":"root","password":"pw"}`),
      ).token as string;
      await post(member, "/v3/kv/put", JSON.stringify({ key: KEY, value: b64("x") }), token);
      const out: string[] = [];
      for (
        const extra of [
          {},
          { "Sec-WebSocket-Protocol": `Bearer, ${token}` },
          { "Sec-WebSocket-Protocol": "chat" },
          { Cookie: `a=b; token=${token}` },
        ] as Record<string, string>[]
      ) {
        out.push(
          `# ${JSON.stringify(extra).replace(token, "<TOKEN>")}`,
          ...(await exchange(
            member,
            "/v3/kv/range",
            (c) => c.send(JSON.stringify({ key: KEY })),
            extra,
          )),
        );
      }
      return normalise(out, member);
    });
    assert.deepEqual(detcd, etcd);
    // etcd 3.4 hands the call `Bearer <token>`, which is no token it issued.
    assert.match(detcd.join("\n"), /user name is empty[\s\S]*invalid auth token/);
  },
});
