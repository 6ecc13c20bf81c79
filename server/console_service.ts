/**
 * The web console's server side: its calls (detcdpb.Console: a watch as a server stream, a
 * key's history, a key tree's level, a lease's keep-alive, the members' state, the caller's own
 * permissions) and its static files under /ui/. The files are the front end bundled by
 * `deno task build:console` into console/assets.json (committed; see docs/adr/0011-web-console.md).
 */
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { AuthInfo } from "../core/auth/mod.ts";
import {
  Console,
  type MembersResponse,
  MembersResponseSchema,
  PermissionsResponseSchema,
} from "../gen/detcdpb/console_pb.ts";
import {
  LeaseKeepAliveResponseSchema,
  type WatchCreateRequest,
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  type WatchResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { type EtcdNode, SERVER_VERSION } from "../core/node/mod.ts";
import { Errors, isEtcdError } from "../core/errors.ts";
import type { AnyMethod, CallContext, MethodTable, StreamMethod, StreamSend } from "./grpc.ts";
import { callerOf } from "./callers.ts";
import type { PlainResponse } from "./listener.ts";
import assets from "../console/assets.json" with { type: "json" };

/**
 * Console.Watch: etcd's Watch given one create request, its responses streamed until the caller
 * goes away or the watch is canceled (a compaction, a refusal), which ends the stream.
 */
function consoleWatch(
  watch: StreamMethod<typeof WatchRequestSchema, typeof WatchResponseSchema>,
): [string, AnyMethod] {
  const method = Console.method.watch;
  const impl: StreamMethod<typeof method.input, typeof method.output> = {
    kind: "stream",
    input: method.input,
    output: method.output,
    async handle(requests, send, ctx) {
      let createRequest: WatchCreateRequest | undefined;
      for await (const r of requests) {
        createRequest = r;
        break;
      }
      if (createRequest === undefined) return;
      let finish = () => {};
      const finished = new Promise<void>((resolve) => (finish = resolve));
      ctx.signal.addEventListener("abort", () => finish(), { once: true });
      if (ctx.signal.aborted) return;
      const first = create(WatchRequestSchema, {
        requestUnion: { case: "createRequest", value: createRequest },
      });
      async function* one(): AsyncGenerator<WatchRequest> {
        yield first;
        await finished;
      }
      const forward: StreamSend<typeof WatchResponseSchema> = async (res: WatchResponse) => {
        await send(res);
        if (res.canceled) finish();
      };
      await watch.handle(one(), forward, ctx);
    },
  };
  return [`/${Console.typeName}/${method.name}`, impl];
}

/** A unary Console method: its handler gets the request and a way to resolve its caller. */
function unary<I extends DescMessage, O extends DescMessage>(
  method: { name: string; input: I; output: O },
  handle: (
    req: MessageShape<I>,
    caller: () => AuthInfo | null | Promise<AuthInfo | null>,
  ) => MessageShape<O> | Promise<MessageShape<O>>,
  node: EtcdNode,
): [string, AnyMethod] {
  return [`/${Console.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    handle: (req: MessageShape<I>, ctx: CallContext) => handle(req, () => callerOf(node, ctx)),
  }];
}

/** Asks a member's peer URL for its version (GET /version); throws when it does not answer. */
export type PeerVersion = (peerUrl: string) => Promise<string>;

/**
 * Console.Members: the member list with the leader this member knows and, for each other member,
 * whether one of its peer URLs answers GET /version (any user, as MemberList).
 */
async function members(node: EtcdNode, peerVersion: PeerVersion): Promise<MembersResponse> {
  const leader = node.leader;
  const states = await Promise.all(
    node.members().map(async (member) => {
      const state = {
        member,
        leader: member.ID === leader,
        reachable: false,
        version: "",
        error: "",
      };
      if (member.ID === node.memberId) {
        return { ...state, reachable: true, version: SERVER_VERSION };
      }
      let error = "no peer URL";
      for (const url of member.peerURLs) {
        try {
          return { ...state, reachable: true, version: await peerVersion(url) };
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
      }
      return { ...state, error };
    }),
  );
  return create(MembersResponseSchema, { header: node.headerWithoutRevision(), members: states });
}

/** Adds the console's calls to a member's method table (beside etcd's Watch, which it reuses). */
export function addConsoleServices(
  node: EtcdNode,
  table: MethodTable,
  peerVersion: PeerVersion,
): MethodTable {
  const watch = table.get("/etcdserverpb.Watch/Watch");
  if (watch?.kind === "stream") table.set(...consoleWatch(watch));
  const m = Console.method;
  for (
    const entry of [
      // The stored revisions of one key; one page of a key tree's level (read permission).
      unary(m.history, (req, caller) => node.keyHistory(req, caller), node),
      unary(m.level, (req, caller) => node.keyLevel(req, caller), node),
      // One renew of a lease, as one response of etcd's LeaseKeepAlive (TTL 0 for an unknown or
      // expired lease; any user, checked on every call).
      unary(m.keepAlive, async (req, caller) => {
        node.auth.requireUser(await caller());
        const header = node.header();
        let ttl = 0n;
        try {
          ttl = await node.leaseRenew(req.ID);
        } catch (e) {
          if (!isEtcdError(e, Errors.leaseNotFound)) throw e;
        }
        return create(LeaseKeepAliveResponseSchema, { header, ID: req.ID, TTL: ttl });
      }, node),
      unary(m.members, async (_req, caller) => {
        node.auth.requireUser(await caller());
        return await members(node, peerVersion);
      }, node),
      // The caller's own permissions (AuthStore.ownPermissions).
      unary(m.permissions, async (_req, caller) => {
        const own = node.auth.store.ownPermissions(await caller());
        return create(PermissionsResponseSchema, {
          header: node.headerWithoutRevision(),
          authEnabled: own.enabled,
          root: own.root,
          perms: own.perms,
        });
      }, node),
    ]
  ) table.set(...entry);
  return table;
}

/**
 * What the browser may do with the console's pages: only this origin's scripts, styles and calls;
 * no frames, no plugins, no forms posting elsewhere.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const CONSOLE_HEADERS: Record<string, string> = {
  "Content-Security-Policy": CONSOLE_CSP,
  // Pages and calls may show values: nothing is kept by the browser or a proxy.
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
};

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/** The console's files by path under /ui/ ("" is index.html). */
const files = assets as Record<string, string>;

/** Answers GET /ui and /ui/... with the console's files; null for other paths. */
export function consoleRoute(pathname: string, method: string): PlainResponse | null {
  if (pathname !== "/ui" && !pathname.startsWith("/ui/")) return null;
  if (pathname === "/ui") {
    return {
      status: 301,
      contentType: "text/html; charset=utf-8",
      body: '<a href="/ui/">Moved Permanently</a>.\n',
      headers: { ...CONSOLE_HEADERS, Location: "/ui/" },
      noCors: true,
    };
  }
  if (method !== "GET" && method !== "HEAD") {
    return {
      status: 405,
      contentType: "text/plain; charset=utf-8",
      body: "Method Not Allowed\n",
      headers: { ...CONSOLE_HEADERS, Allow: "GET" },
      noCors: true,
    };
  }
  const name = pathname.slice("/ui/".length) || "index.html";
  const body = Object.hasOwn(files, name) ? files[name] : undefined;
  if (body === undefined) {
    return {
      status: 404,
      contentType: "text/plain; charset=utf-8",
      body: "404 page not found\n",
      headers: CONSOLE_HEADERS,
      noCors: true,
    };
  }
  const type = TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "application/octet-stream";
  return { status: 200, contentType: type, body, headers: CONSOLE_HEADERS, noCors: true };
}
