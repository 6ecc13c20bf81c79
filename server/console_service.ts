/**
 * The web console's server side: its calls (detcdpb.Console: a watch as a server stream, a
 * key's history, a key tree's level, a lease's keep-alive, the members' state, the caller's own
 * permissions) and its static files under /ui/. The files are the front end bundled by
 * `deno task build:console` into console/assets.json (committed; see docs/adr/0011-web-console.md).
 */
import { create, type MessageShape } from "@bufbuild/protobuf";
import {
  Console,
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

/** Console.History: the stored revisions of one key (EtcdNode.keyHistory). */
function consoleHistory(node: EtcdNode): [string, AnyMethod] {
  const method = Console.method.history;
  return [`/${Console.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    handle: (req: MessageShape<typeof method.input>, ctx: CallContext) =>
      node.keyHistory(req, () => callerOf(node, ctx)),
  }];
}

/** Console.Level: one page of a key tree's level (EtcdNode.keyLevel). */
function consoleLevel(node: EtcdNode): [string, AnyMethod] {
  const method = Console.method.level;
  return [`/${Console.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    handle: (req: MessageShape<typeof method.input>, ctx: CallContext) =>
      node.keyLevel(req, () => callerOf(node, ctx)),
  }];
}

/**
 * Console.KeepAlive: one renew of a lease, answered as one response of etcd's LeaseKeepAlive
 * (TTL 0 for an unknown or expired lease; any user, checked on every call).
 */
function consoleKeepAlive(node: EtcdNode): [string, AnyMethod] {
  const method = Console.method.keepAlive;
  return [`/${Console.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    async handle(req: MessageShape<typeof method.input>, ctx: CallContext) {
      node.auth.requireUser(await callerOf(node, ctx));
      const header = node.header();
      let ttl = 0n;
      try {
        ttl = await node.leaseRenew(req.ID);
      } catch (e) {
        if (!isEtcdError(e, Errors.leaseNotFound)) throw e;
      }
      return create(LeaseKeepAliveResponseSchema, { header, ID: req.ID, TTL: ttl });
    },
  }];
}

/** Asks a member's peer URL for its version (GET /version); throws when it does not answer. */
export type PeerVersion = (peerUrl: string) => Promise<string>;

/**
 * Console.Members: the member list with the leader this member knows and, for each other member,
 * whether one of its peer URLs answers GET /version (any user, as MemberList).
 */
function consoleMembers(node: EtcdNode, peerVersion: PeerVersion): [string, AnyMethod] {
  const method = Console.method.members;
  return [`/${Console.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    async handle(_req: MessageShape<typeof method.input>, ctx: CallContext) {
      node.auth.requireUser(await callerOf(node, ctx));
      const leader = node.leader;
      const members = await Promise.all(
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
      return create(MembersResponseSchema, { header: node.headerWithoutRevision(), members });
    },
  }];
}

/** Console.Permissions: the caller's own permissions (AuthStore.ownPermissions). */
function consolePermissions(node: EtcdNode): [string, AnyMethod] {
  const method = Console.method.permissions;
  return [`/${Console.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    async handle(_req: MessageShape<typeof method.input>, ctx: CallContext) {
      const own = node.auth.store.ownPermissions(await callerOf(node, ctx));
      return create(PermissionsResponseSchema, {
        header: node.headerWithoutRevision(),
        authEnabled: own.enabled,
        root: own.root,
        perms: own.perms,
      });
    },
  }];
}

/** Adds the console's calls to a member's method table (beside etcd's Watch, which it reuses). */
export function addConsoleServices(
  node: EtcdNode,
  table: MethodTable,
  peerVersion: PeerVersion,
): MethodTable {
  const watch = table.get("/etcdserverpb.Watch/Watch");
  if (watch?.kind === "stream") table.set(...consoleWatch(watch));
  table.set(...consoleHistory(node));
  table.set(...consoleLevel(node));
  table.set(...consoleKeepAlive(node));
  table.set(...consoleMembers(node, peerVersion));
  table.set(...consolePermissions(node));
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
