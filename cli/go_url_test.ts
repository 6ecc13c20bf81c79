import assert from "node:assert/strict";
import { peerURLsError } from "./go_url.ts";

// Every expected text below is what etcdctl 3.4.23 printed after "Error: " for
// `member add x --peer-urls=<url>`.
const cases: [string, string | undefined][] = [
  ["http://127.0.0.1:2380", undefined],
  ["https://[::1]:2380", undefined],
  ["HTTP://example.com:1?x=1", undefined],
  ["127.0.0.1:1", 'parse "127.0.0.1:1": first path segment in URL cannot contain colon'],
  ["localhost:1", "URL scheme must be http, https, unix, or unixs: localhost:1"],
  ["http://127.0.0.1", 'URL address does not have the form "host:port": http://127.0.0.1'],
  ["http://127.0.0.1:1/p", "URL must not contain a path: http://127.0.0.1:1/p"],
  ["http://[::1", `parse "http://[::1": missing ']' in host`],
  ["", "URL scheme must be http, https, unix, or unixs: "],
  ["http://a%zz:1", 'parse "http://a%zz:1": invalid URL escape "%zz"'],
  ["http://[::1]:x", 'parse "http://[::1]:x": invalid port ":x" after host'],
  ["http://u@[::1]:1/", "URL must not contain a path: http://u@[::1]:1/"],
  ["http://a:1:2", `URL address does not have the form "host:port": http://a:1:2`],
];

Deno.test("peerURLsError gives types.NewURLs' error text for each bad peer URL", () => {
  for (const [url, want] of cases) assert.equal(peerURLsError([url]), want, url);
});

Deno.test("peerURLsError reports the first bad URL of a list", () => {
  assert.equal(
    peerURLsError(["http://127.0.0.1:1", "localhost:1", "x"]),
    "URL scheme must be http, https, unix, or unixs: localhost:1",
  );
});
