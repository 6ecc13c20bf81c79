/**
 * The URL checks clientv3 runs on peer URLs before `member add` and `member update` send them
 * (pkg/types.NewURLs over Go's net/url.Parse and net.SplitHostPort), so a bad URL fails with the
 * same text etcdctl prints, e.g. `parse "127.0.0.1:1": first path segment in URL cannot contain
 * colon` or `URL address does not have the form "host:port": http://127.0.0.1`.
 */

import { goQuote } from "./go_format.ts";

/** The parts of a parsed URL the checks look at. */
interface GoUrl {
  scheme: string;
  host: string;
  path: string;
}

class UrlError extends Error {}

const hex = (c: string) => /^[0-9a-fA-F]$/.test(c);

/** net/url's shouldEscape for hosts: false for the characters a host may hold as they are. */
function hostCharNeedsEscape(c: string): boolean {
  if (/^[A-Za-z0-9]$/.test(c)) return false;
  return !"-_.~!$&'()*+,;=:[]<>\"".includes(c);
}

/** net/url's unescape, for the error it raises (the unescaped value is not needed). */
function checkEscapes(s: string, mode: "host" | "path" | "fragment"): void {
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "%") {
      if (i + 2 >= s.length || !hex(s[i + 1]) || !hex(s[i + 2])) {
        const bad = s.slice(i);
        throw new UrlError(`invalid URL escape ${goQuote(bad.length > 3 ? bad.slice(0, 3) : bad)}`);
      }
      if (mode === "host" && parseInt(s[i + 1], 16) < 8 && s.slice(i, i + 3) !== "%25") {
        throw new UrlError(`invalid URL escape ${goQuote(s.slice(i, i + 3))}`);
      }
      i += 2;
    } else if (mode === "host" && c.charCodeAt(0) < 0x80 && hostCharNeedsEscape(c)) {
      throw new UrlError(`invalid character ${goQuote(c)} in host name`);
    }
  }
}

function validOptionalPort(port: string): boolean {
  if (port === "") return true;
  return /^:[0-9]*$/.test(port);
}

function parseHost(host: string): string {
  if (host.startsWith("[")) {
    const i = host.lastIndexOf("]");
    if (i < 0) throw new UrlError("missing ']' in host");
    const colonPort = host.slice(i + 1);
    if (!validOptionalPort(colonPort)) {
      throw new UrlError(`invalid port ${goQuote(colonPort)} after host`);
    }
  } else {
    const i = host.lastIndexOf(":");
    if (i >= 0) {
      const colonPort = host.slice(i);
      if (!validOptionalPort(colonPort)) {
        throw new UrlError(`invalid port ${goQuote(colonPort)} after host`);
      }
    }
  }
  checkEscapes(host, "host");
  return host;
}

function validUserinfo(s: string): boolean {
  for (const c of s) {
    if (/^[A-Za-z0-9]$/.test(c)) continue;
    if ("-._:~!$&'()*+,;=%@".includes(c)) continue;
    return false;
  }
  return true;
}

function parseAuthority(authority: string): string {
  const i = authority.lastIndexOf("@");
  const host = parseHost(i < 0 ? authority : authority.slice(i + 1));
  if (i >= 0) {
    const userinfo = authority.slice(0, i);
    if (!validUserinfo(userinfo)) throw new UrlError("net/url: invalid userinfo");
    checkEscapes(userinfo, "path");
  }
  return host;
}

function getScheme(raw: string): [string, string] {
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (/^[A-Za-z]$/.test(c)) continue;
    if (/^[0-9+\-.]$/.test(c)) {
      if (i === 0) return ["", raw];
      continue;
    }
    if (c === ":") {
      if (i === 0) throw new UrlError("missing protocol scheme");
      return [raw.slice(0, i), raw.slice(i + 1)];
    }
    return ["", raw];
  }
  return ["", raw];
}

/** url.Parse, reduced to scheme, host and path; throws with the error's text. */
function parseGoUrl(raw: string): GoUrl {
  const hash = raw.indexOf("#");
  const u = hash < 0 ? raw : raw.slice(0, hash);
  const frag = hash < 0 ? "" : raw.slice(hash + 1);
  let url: GoUrl;
  try {
    url = parseWithoutFragment(u);
  } catch (e) {
    if (e instanceof UrlError) throw new UrlError(`parse ${goQuote(u)}: ${e.message}`);
    throw e;
  }
  try {
    checkEscapes(frag, "fragment");
  } catch (e) {
    if (e instanceof UrlError) throw new UrlError(`parse ${goQuote(raw)}: ${e.message}`);
    throw e;
  }
  return url;
}

function parseWithoutFragment(raw: string): GoUrl {
  for (const ch of raw) {
    const c = ch.charCodeAt(0);
    if (c < 0x20 || c === 0x7f) throw new UrlError("net/url: invalid control character in URL");
  }
  if (raw === "*") return { scheme: "", host: "", path: "*" };
  let [scheme, rest] = getScheme(raw);
  scheme = scheme.toLowerCase();
  if (rest.endsWith("?") && rest.split("?").length === 2) {
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf("?");
    if (q >= 0) rest = rest.slice(0, q);
  }
  if (!rest.startsWith("/")) {
    if (scheme !== "") return { scheme, host: "", path: "" };
    const slash = rest.indexOf("/");
    const segment = slash < 0 ? rest : rest.slice(0, slash);
    if (segment.includes(":")) {
      throw new UrlError("first path segment in URL cannot contain colon");
    }
  }
  let host = "";
  if ((scheme !== "" || !rest.startsWith("///")) && rest.startsWith("//")) {
    let authority = rest.slice(2);
    rest = "";
    const i = authority.indexOf("/");
    if (i >= 0) {
      rest = authority.slice(i);
      authority = authority.slice(0, i);
    }
    host = parseAuthority(authority);
  }
  checkEscapes(rest, "path");
  return { scheme, host, path: rest };
}

/** net.SplitHostPort, as a yes/no. */
function splitsHostPort(hostport: string): boolean {
  const i = hostport.lastIndexOf(":");
  if (i < 0) return false;
  let j = 0;
  let k = 0;
  if (hostport[0] === "[") {
    const end = hostport.indexOf("]");
    if (end < 0) return false;
    if (end + 1 === hostport.length) return false;
    if (end + 1 !== i) return false;
    j = 1;
    k = end + 1;
  } else if (hostport.slice(0, i).includes(":")) {
    return false;
  }
  if (hostport.slice(j).includes("[")) return false;
  if (hostport.slice(k).includes("]")) return false;
  return true;
}

/**
 * types.NewURLs as a check: undefined when every URL is acceptable to clientv3, else the error
 * text etcdctl prints for the first bad one.
 */
export function peerURLsError(urls: readonly string[]): string | undefined {
  if (urls.length === 0) return "no valid URLs given";
  for (const original of urls) {
    const trimmed = original.trim();
    let u: GoUrl;
    try {
      u = parseGoUrl(trimmed);
    } catch (e) {
      if (e instanceof UrlError) return e.message;
      throw e;
    }
    if (!["http", "https", "unix", "unixs"].includes(u.scheme)) {
      return `URL scheme must be http, https, unix, or unixs: ${trimmed}`;
    }
    if (!splitsHostPort(u.host)) {
      return `URL address does not have the form "host:port": ${trimmed}`;
    }
    if (u.path !== "") return `URL must not contain a path: ${trimmed}`;
  }
  return undefined;
}
