import assert from "node:assert/strict";
import * as net from "node:net";
import { silentLogger } from "../core/log.ts";
import { listenClients } from "./listener.ts";

/** Sends each request on one connection, a pause after each; answers what came back each time. */
function oneConnection(port: number, requests: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const answers: string[] = [];
    let current = "";
    let next = 0;
    const send = () => {
      if (next === requests.length) {
        socket.end();
        return;
      }
      current = "";
      socket.write(requests[next++]);
      setTimeout(() => {
        answers.push(current);
        send();
      }, 150);
    };
    socket.on("connect", send);
    socket.on("data", (chunk: Uint8Array) => (current += new TextDecoder().decode(chunk)));
    socket.on("error", reject);
    socket.on("close", () => resolve(answers));
  });
}

Deno.test("client port, HTTP/1.1: a keep-alive connection serves one request after another", async () => {
  const server = await listenClients({
    host: "127.0.0.1",
    port: 0,
    table: new Map(),
    maxRecvBytes: 1 << 20,
    logger: silentLogger,
    http1Routes: (target) => ({ status: 200, contentType: "text/plain", body: `at ${target}` }),
  });
  try {
    const port = (server.address() as net.AddressInfo).port;
    const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const answers = await oneConnection(port, [get("/one"), get("/two"), get("/three")]);
    assert.equal(answers.length, 3);
    for (const [i, path] of ["/one", "/two", "/three"].entries()) {
      assert.match(answers[i], /^HTTP\/1\.1 200 OK\r\n/, `answer ${i + 1}: ${answers[i]}`);
      assert.match(answers[i], /[Cc]onnection: keep-alive/);
      assert.ok(answers[i].includes(`at ${path}`), answers[i]);
    }
  } finally {
    server.close();
  }
});
