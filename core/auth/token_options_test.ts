import { assertEquals } from "../testing.ts";
import { parseGoDurationMs } from "./go_duration.ts";
import { AuthOptionsError, loadJwtConfig, parseAuthTokenFlag } from "./token_options.ts";

const enc = new TextEncoder();

function outcome(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AuthOptionsError) return { fatal: e.message, logged: e.detail };
    throw e;
  }
}

/** A reader that knows one file and fails like Go's os.ReadFile for the others. */
function reader(path: string): Uint8Array {
  if (path === "/keys/pub.pem") return enc.encode("PUB");
  throw new Error(`open ${path}: no such file or directory`);
}

Deno.test("--auth-token values and the errors etcd 3.4.23 exits with", () => {
  // Every row compared with real etcd 3.4.23 started with that --auth-token: the `E |` line it
  // logs and the `C |` line it exits with.
  const cases: Array<[string, unknown]> = [
    ["simple", { type: "simple" }],
    ["simple,ignored=1", { type: "simple" }],
    ["", { type: "none" }],
    ["foo", { fatal: "auth: invalid auth options", logged: "unknown token type: foo" }],
    ["jwt,x", {
      fatal: "auth: invalid auth options",
      logged: "invalid token specific option: jwt,x",
    }],
    ["jwt,a=b=c", {
      fatal: "auth: invalid auth options",
      logged: "invalid token specific option: jwt,a=b=c",
    }],
    ["jwt,a=b,a=c", {
      fatal: "auth: invalid auth options",
      logged: "invalid token specific option, duplicated parameters (a): jwt,a=b,a=c",
    }],
  ];
  for (const [flag, want] of cases) {
    const got = outcome(() => {
      const c = parseAuthTokenFlag(flag);
      return c.type === "jwt" ? { type: "jwt", options: Object.fromEntries(c.options) } : c;
    });
    assertEquals(got, want, flag);
  }
});

Deno.test("JWT options: ttl, key files and sign method, checked in etcd's order", () => {
  const load = (flag: string) =>
    outcome(() => {
      const c = parseAuthTokenFlag(flag);
      if (c.type !== "jwt") throw new Error("not jwt");
      const j = loadJwtConfig(c.options, reader);
      return {
        method: j.signMethod,
        pub: j.publicKey && new TextDecoder().decode(j.publicKey),
        priv: j.privateKey,
        ttlMs: j.ttlMs,
        unknown: j.unknownOptions,
      };
    });
  const invalid = "auth: invalid auth options";
  assertEquals(load("jwt,pub-key=/keys/pub.pem,sign-method=RS256"), {
    method: "RS256",
    pub: "PUB",
    priv: null,
    ttlMs: 300_000,
    unknown: [],
  });
  assertEquals(load("jwt,pub-key=/keys/pub.pem,sign-method=ES384,ttl=1h30m,color=red"), {
    method: "ES384",
    pub: "PUB",
    priv: null,
    ttlMs: 5_400_000,
    unknown: ["color"],
  });
  assertEquals(load("jwt"), {
    fatal: invalid,
    logged: "problem loading JWT options: auth: invalid auth signature method",
  });
  assertEquals(load("jwt,sign-method=foo"), {
    fatal: invalid,
    logged: "problem loading JWT options: auth: invalid auth signature method",
  });
  assertEquals(load("jwt,sign-method=RS256,priv-key=/nonexistent"), {
    fatal: invalid,
    logged: "problem loading JWT options: open /nonexistent: no such file or directory",
  });
  assertEquals(load("jwt,sign-method=RS256,ttl=abc"), {
    fatal: invalid,
    logged: 'problem loading JWT options: time: invalid duration "abc"',
  });
  // The ttl is parsed before the sign method is looked at.
  assertEquals(load("jwt,ttl=5"), {
    fatal: invalid,
    logged: 'problem loading JWT options: time: missing unit in duration "5"',
  });
});

Deno.test("Go durations as the ttl option takes them", () => {
  const cases: Array<[string, number | string]> = [
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["1.5s", 1_500],
    ["300ms", 300],
    ["0", 0],
    ["-2s", -2_000],
    ["10us", 0.01],
    ["", 'time: invalid duration ""'],
    ["s", 'time: invalid duration "s"'],
    ["3", 'time: missing unit in duration "3"'],
    ["3d", 'time: unknown unit "d" in duration "3d"'],
    [".s", 'time: invalid duration ".s"'],
  ];
  for (const [s, want] of cases) {
    let got: number | string;
    try {
      got = parseGoDurationMs(s);
    } catch (e) {
      got = (e as Error).message;
    }
    assertEquals(got, want, s);
  }
});
