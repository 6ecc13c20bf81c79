/// <reference no-default-lib="true" />
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
/**
 * detcd's web console: the browser side. It speaks Connect (binary) to the member that served
 * the page, through the same API every client uses, so it sees and may change exactly what its
 * user may. The token of a login is kept in memory only.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Auth, KV, Lease, Maintenance } from "../gen/etcdserverpb/rpc_pb.ts";
import { Console } from "../gen/detcdpb/console_pb.ts";
import { Event_EventType, type KeyValue } from "../gen/mvccpb/kv_pb.ts";
import { type Permission, Permission_Type } from "../gen/authpb/auth_pb.ts";
import { keyLabel, leaseHex, lineDiff, showValue } from "./format.ts";
import { prefixRangeEnd as prefixEnd } from "../core/bytes.ts";
import {
  intervalsPermit,
  mergeIntervals,
  permissionInterval,
} from "../core/auth/range_permissions.ts";

const enc = new TextEncoder();
let token = "";
const withToken: Interceptor = (next) => (req) => {
  if (token !== "") req.header.set("token", token);
  return next(req);
};
const transport = createConnectTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [withToken],
});
const kv = createClient(KV, transport);
const lease = createClient(Lease, transport);
const maintenance = createClient(Maintenance, transport);
const auth = createClient(Auth, transport);
const consoleApi = createClient(Console, transport);

// ---------------------------------------------------------------------------------------------
// DOM helpers

type Child = Node | string | null | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(name, value);
    else el.setAttribute(name, value);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const $ = (id: string) => document.getElementById(id)!;

function message(e: unknown): string {
  if (e instanceof ConnectError) return e.rawMessage;
  return e instanceof Error ? e.message : String(e);
}

/** Shows an error in the status line; a call refused for want of a login opens the login. */
function fail(e: unknown): void {
  const text = message(e);
  $("status").textContent = text;
  $("status").className = "error";
  if (e instanceof ConnectError && /user name is empty|invalid auth token/.test(text)) {
    showLogin();
  }
  if (e instanceof ConnectError && e.code === Code.Unauthenticated && token === "") showLogin();
}

function ok(text: string): void {
  $("status").textContent = text;
  $("status").className = "";
}

// ---------------------------------------------------------------------------------------------
// Keys: a tree level by level, a key's value, history and edits

const PAGE = 100;

/** What the logged-in user may do (Console.Permissions); everything while auth is off. */
let mine: { enabled: boolean; root: boolean; perms: Permission[] } = {
  enabled: false,
  root: true,
  perms: [],
};

/** Whether the user may write `key` (the server decides; this only hides what it would refuse). */
function canWrite(key: Uint8Array): boolean {
  if (mine.root) return true;
  // The auth store's own interval logic (core/auth/range_permissions.ts), over the WRITE grants.
  const writable = mine.perms.flatMap((p) => {
    if (p.permType === Permission_Type.READ) return [];
    const interval = permissionInterval(p.key, p.rangeEnd);
    return interval === null ? [] : [interval];
  });
  return intervalsPermit(mergeIntervals(writable), key, new Uint8Array(0));
}

async function loadPermissions(): Promise<void> {
  try {
    const r = await consoleApi.permissions({});
    mine = { enabled: r.authEnabled, root: r.root, perms: r.perms };
  } catch (e) {
    mine = { enabled: true, root: false, perms: [] };
    fail(e);
  }
  // The ranges a limited user may read, as starting points for the tree.
  const list = $("my-ranges");
  list.replaceChildren();
  if (!mine.root) {
    for (const p of mine.perms) {
      if (p.permType === Permission_Type.WRITE) continue;
      list.append(h(
        "li",
        {},
        h("a", {
          href: "#",
          "data-range": keyLabel(p.key),
          click: (e) => {
            e.preventDefault();
            ($("search") as HTMLInputElement).value = new TextDecoder().decode(p.key);
            reloadTree();
          },
        }, permRange(p.key, p.rangeEnd)),
      ));
    }
  }
  $("my-ranges-box").hidden = mine.root;
  for (const tab of document.querySelectorAll<HTMLElement>('nav button[data-view="access"]')) {
    tab.hidden = !mine.root;
  }
}
let separator = "/".charCodeAt(0);

/** A tree level's entry: a key, or a folder (a prefix ending in the separator). */
interface LevelEntry {
  folder: boolean;
  path: Uint8Array;
  label: string;
}

/** Fills `list` with a level's entries under `prefix`, a bounded page at a time. */
async function loadLevel(list: HTMLElement, prefix: Uint8Array, from: Uint8Array) {
  try {
    const r = await consoleApi.level({
      prefix,
      separator: separator < 0 ? new Uint8Array(0) : new Uint8Array([separator]),
      from,
      limit: BigInt(PAGE),
    });
    for (const e of r.entries) {
      list.append(treeItem({
        folder: e.folder,
        path: e.path,
        label: keyLabel(e.path.subarray(prefix.length)),
      }));
    }
    if (r.next.length > 0) {
      const more: HTMLButtonElement = h("button", {
        class: "more",
        click: () => {
          more.remove();
          loadLevel(list, prefix, r.next);
        },
      }, "more…");
      list.append(h("li", {}, more));
    }
    if (r.entries.length === 0 && from.length === 0) {
      list.append(h("li", { class: "empty" }, "(no keys)"));
    }
  } catch (e) {
    fail(e);
  }
}

function treeItem(entry: LevelEntry): HTMLElement {
  if (!entry.folder) {
    return h(
      "li",
      { class: "key" },
      h("a", {
        href: "#",
        "data-key": keyLabel(entry.path),
        click: (e) => {
          e.preventDefault();
          openKey(entry.path);
        },
      }, entry.label),
    );
  }
  const children = h("ul", {});
  let open = false;
  const item = h(
    "li",
    { class: "folder" },
    h("a", {
      href: "#",
      "data-folder": keyLabel(entry.path),
      click: (e) => {
        e.preventDefault();
        open = !open;
        item.classList.toggle("open", open);
        children.replaceChildren();
        if (open) loadLevel(children, entry.path, new Uint8Array(0));
      },
    }, entry.label),
    children,
  );
  return item;
}

/** The tree's latest load (the page is ready once the first one is done). */
let treeLoad: Promise<void> = Promise.resolve();

function reloadTree(): void {
  const root = $("tree");
  root.replaceChildren();
  const search = ($("search") as HTMLInputElement).value;
  treeLoad = loadLevel(root, enc.encode(search), new Uint8Array(0));
}

function describe(k: KeyValue): string {
  return `revision ${k.modRevision} (created ${k.createRevision}, version ${k.version}` +
    (k.lease !== 0n ? `, lease ${leaseHex(k.lease)})` : ")");
}

async function openKey(key: Uint8Array): Promise<void> {
  const pane = $("detail");
  try {
    const r = await kv.range({ key });
    const k = r.kvs[0];
    if (k === undefined) {
      pane.replaceChildren(h("h2", {}, keyLabel(key)), h("p", {}, "(deleted)"), historyBox(key));
      return;
    }
    const shown = showValue(k.value);
    const editor = h("textarea", { id: "editor", rows: "8" });
    editor.value = new TextDecoder().decode(k.value);
    pane.replaceChildren(
      h("h2", { id: "key-name" }, keyLabel(key)),
      h("p", { class: "meta" }, describe(k), " · ", h("span", { id: "value-kind" }, shown.kind)),
      shown.note ? h("p", { class: "note" }, shown.note) : "",
      h("pre", { id: "value" }, shown.text),
      shown.kind === "yaml" ? h("span", { id: "yaml-pending", hidden: "" }) : "",
      ...(canWrite(key) ? editControls(key, k, editor) : [
        h("p", { id: "read-only", class: "note" }, "read only for you"),
      ]),
      historyBox(key),
    );
    if (shown.kind === "yaml") prettyYamlInto($("value"), shown.text);
  } catch (e) {
    fail(e);
  }
}

/** Edit (save) and delete, for a key the user may write. */
function editControls(key: Uint8Array, k: KeyValue, editor: HTMLTextAreaElement): HTMLElement[] {
  return [
    h(
      "details",
      {},
      h("summary", {}, "Edit"),
      editor,
      h("button", {
        id: "save",
        click: () => putValue(key, editor.value, k.lease),
      }, "Save"),
    ),
    h("button", {
      id: "delete",
      class: "danger",
      click: async () => {
        if (!confirm(`Delete ${keyLabel(key)}?`)) return;
        try {
          await kv.deleteRange({ key });
          ok(`deleted ${keyLabel(key)}`);
          reloadTree();
          openKey(key);
        } catch (e) {
          fail(e);
        }
      },
    }, "Delete"),
  ];
}

/** YAML's pretty-printer, loaded on first use (yaml.js: the `yaml` package). */
let yamlModule: Promise<{ prettyYaml(text: string): string | null }> | null = null;

async function prettyYamlInto(target: HTMLElement, text: string): Promise<void> {
  try {
    // A computed specifier: the bundler leaves it to the browser, which fetches /ui/yaml.js.
    const url = new URL("yaml.js", import.meta.url).href;
    yamlModule ??= import(url);
    const pretty = (await yamlModule).prettyYaml(text);
    if (pretty !== null && target.isConnected) target.textContent = pretty;
  } catch {
    // left as it was stored
  }
  document.getElementById("yaml-pending")?.remove();
}

async function putValue(key: Uint8Array, value: string, leaseId = 0n): Promise<void> {
  try {
    const r = await kv.put({ key, value: enc.encode(value), lease: leaseId });
    ok(`put ${keyLabel(key)} at revision ${r.header?.revision}`);
    openKey(key);
  } catch (e) {
    fail(e);
  }
}

/** The key's stored revisions, with "restore" and a diff between two of them. */
function historyBox(key: Uint8Array): HTMLElement {
  const list = h("ol", { id: "history" });
  const diff = h("pre", { id: "diff" });
  const picked: { rev: bigint; text: string }[] = [];
  const load = async (before: bigint) => {
    try {
      const r = await consoleApi.history({ key, beforeRevision: before, limit: 50n });
      for (const e of r.events) {
        const rev = e.kv!.modRevision;
        if (e.type === Event_EventType.DELETE) {
          list.append(h("li", { "data-rev": String(rev) }, `${rev}: deleted`));
          continue;
        }
        const text = new TextDecoder().decode(e.kv!.value);
        const pick = h("input", {
          type: "checkbox",
          change: (ev) => {
            if ((ev.target as HTMLInputElement).checked) picked.push({ rev, text });
            else picked.splice(picked.findIndex((p) => p.rev === rev), 1);
            if (picked.length === 2) {
              const [a, b] = [...picked].sort((x, y) => Number(x.rev - y.rev));
              diff.textContent = `--- ${a.rev}\n+++ ${b.rev}\n` +
                lineDiff(a.text, b.text).join("\n");
            }
          },
        });
        list.append(h(
          "li",
          { "data-rev": String(rev) },
          pick,
          ` ${rev}: `,
          h("code", {}, showValue(e.kv!.value).text.slice(0, 200)),
          " ",
          h("button", {
            class: "restore",
            click: () => putValue(key, text),
          }, "restore"),
        ));
      }
      if (r.more) {
        const oldest = r.events[r.events.length - 1].kv!.modRevision;
        const more: HTMLButtonElement = h("button", {
          click: () => {
            more.remove();
            load(oldest);
          },
        }, "older…");
        list.append(h("li", {}, more));
      } else if (r.compactRevision > 0n) {
        list.append(h("li", { class: "note" }, `compacted at ${r.compactRevision}`));
      }
    } catch (e) {
      fail(e);
    }
  };
  load(0n);
  return h("section", {}, h("h3", {}, "History"), list, diff);
}

function newKeyForm(): HTMLElement {
  const key = h("input", { id: "new-key", placeholder: "key" });
  const value = h("textarea", { id: "new-value", placeholder: "value", rows: "3" });
  const leaseId = h("input", { id: "new-lease", placeholder: "lease ID (hex, optional)" });
  return h(
    "details",
    { class: "new" },
    h("summary", {}, "New key"),
    key,
    value,
    leaseId,
    h(
      "button",
      {
        id: "create",
        click: async () => {
          await putValue(enc.encode(key.value), value.value, BigInt(`0x${leaseId.value || "0"}`));
          reloadTree();
        },
      },
      "Put",
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Watch: a live panel of events

const WATCH_BUFFER = 500;
let watching: AbortController | null = null;
let paused = false;

async function startWatch(): Promise<void> {
  watching?.abort();
  const controller = new AbortController();
  watching = controller;
  const target = ($("watch-key") as HTMLInputElement).value;
  const prefix = ($("watch-prefix") as HTMLInputElement).checked;
  const key = enc.encode(target);
  const events = $("events");
  events.replaceChildren();
  $("watch-state").textContent = "watching";
  try {
    const stream = consoleApi.watch({
      key: key.length === 0 ? new Uint8Array([0]) : key,
      rangeEnd: prefix || key.length === 0 ? prefixEnd(key) : new Uint8Array(0),
      prevKv: true,
    }, { signal: controller.signal });
    for await (const res of stream) {
      if (res.canceled) {
        $("watch-state").textContent = `canceled: ${res.cancelReason || "compacted"}`;
        break;
      }
      if (paused) continue;
      for (const e of res.events) {
        const kind = e.type === Event_EventType.DELETE ? "DELETE" : "PUT";
        const line = `${e.kv!.modRevision} ${kind} ${keyLabel(e.kv!.key)}` +
          (kind === "PUT" ? ` = ${showValue(e.kv!.value).text.slice(0, 200)}` : "");
        events.prepend(h("li", { class: kind.toLowerCase() }, line));
        while (events.childElementCount > WATCH_BUFFER) events.lastElementChild!.remove();
      }
    }
  } catch (e) {
    if (!controller.signal.aborted) fail(e);
  }
  if (watching === controller) $("watch-state").textContent = "stopped";
}

// ---------------------------------------------------------------------------------------------
// Leases, cluster

let leaseTimer: ReturnType<typeof setInterval> | undefined;

async function loadLeases(): Promise<void> {
  const table = $("leases");
  try {
    const r = await lease.leaseLeases({});
    const rows = await Promise.all(r.leases.map(async (l) => {
      const t = await lease.leaseTimeToLive({ ID: l.ID, keys: true });
      return { id: l.ID, ttl: Number(t.TTL), granted: t.grantedTTL, keys: t.keys };
    }));
    const loadedAt = Date.now();
    table.replaceChildren(h(
      "tr",
      {},
      h("th", {}, "ID"),
      h("th", {}, "TTL left"),
      h("th", {}, "granted"),
      h("th", {}, "keys"),
      h("th", {}, ""),
    ));
    for (const row of rows) {
      const left = h("td", { class: "ttl", "data-ttl": String(row.ttl) }, `${row.ttl}s`);
      table.append(h(
        "tr",
        { "data-lease": leaseHex(row.id) },
        h("td", {}, leaseHex(row.id)),
        left,
        h("td", {}, `${row.granted}s`),
        h("td", {}, row.keys.map((k) => keyLabel(k)).join(", ")),
        h(
          "td",
          {},
          h("button", {
            class: "keep-alive",
            click: async () => {
              try {
                const r = await consoleApi.keepAlive({ ID: row.id });
                await loadLeases();
                ok(
                  r.TTL > 0n ? `lease ${leaseHex(row.id)} kept alive: TTL ${r.TTL}s` : "expired",
                );
              } catch (e) {
                fail(e);
              }
            },
          }, "keep alive"),
          " ",
          h("button", {
            class: "danger",
            click: async () => {
              try {
                await lease.leaseRevoke({ ID: row.id });
                loadLeases();
              } catch (e) {
                fail(e);
              }
            },
          }, "revoke"),
        ),
      ));
    }
    clearInterval(leaseTimer);
    leaseTimer = setInterval(() => {
      for (const cell of table.querySelectorAll<HTMLElement>("td.ttl")) {
        const ttl = Number(cell.dataset.ttl) - Math.floor((Date.now() - loadedAt) / 1000);
        cell.textContent = ttl > 0 ? `${ttl}s` : "expired";
      }
    }, 1000);
  } catch (e) {
    fail(e);
  }
}

async function loadCluster(): Promise<void> {
  try {
    const [members, status, alarms] = await Promise.all([
      consoleApi.members({}),
      maintenance.status({}),
      maintenance.alarm({}),
    ]);
    const head = ["ID", "name", "role", "health", "version", "peer URLs", "client URLs"];
    const table = h("table", { id: "members" }, h("tr", {}, ...head.map((t) => h("th", {}, t))));
    for (const m of members.members) {
      const info = m.member!;
      const role = m.leader ? "leader" : info.isLearner ? "learner" : "follower";
      table.append(h(
        "tr",
        { "data-member": info.name, "data-role": role, "data-health": m.reachable ? "up" : "down" },
        h("td", {}, info.ID.toString(16)),
        h("td", {}, info.name),
        h("td", { class: "role" }, role),
        h("td", { class: m.reachable ? "up" : "down" }, m.reachable ? "reachable" : m.error),
        h("td", {}, m.version),
        h("td", {}, info.peerURLs.join(", ")),
        h("td", {}, info.clientURLs.join(", ")),
      ));
    }
    $("cluster-body").replaceChildren(
      table,
      h(
        "p",
        { id: "raft" },
        `this member ${status.header!.memberId.toString(16)}: raft term ${status.raftTerm}, ` +
          `index ${status.raftIndex}, applied ${status.raftAppliedIndex}, ` +
          `revision ${status.header!.revision}, DB size ${status.dbSize} bytes ` +
          `(in use ${status.dbSizeInUse})`,
      ),
      h(
        "p",
        { id: "alarms" },
        alarms.alarms.length === 0
          ? "no alarms"
          : `alarms: ${
            alarms.alarms.map((a) =>
              `${a.alarm === 1 ? "NOSPACE" : "CORRUPT"} (member ${a.memberID.toString(16)})`
            ).join(", ")
          }`,
      ),
    );
  } catch (e) {
    fail(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Access: users and roles (root's calls; anyone else is told "permission denied")

const PERMISSION = ["read", "write", "readwrite"];

/** A permission's range as etcdctl prints it: one key, a prefix, a range, or every key from. */
function permRange(key: Uint8Array, end: Uint8Array): string {
  if (end.length === 0) return keyLabel(key);
  if (end.length === 1 && end[0] === 0) return `${keyLabel(key)} and after`;
  const prefixOf = prefixEnd(key);
  if (prefixOf.length === end.length && prefixOf.every((b, i) => b === end[i])) {
    return `${keyLabel(key)}* (prefix)`;
  }
  return `[${keyLabel(key)}, ${keyLabel(end)})`;
}

/** Runs an auth call, shows the users and roles again, then reports it. */
async function access(what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
    await loadAccess();
    ok(what);
  } catch (e) {
    fail(e);
  }
}

async function loadAccess(): Promise<void> {
  const body = $("access-tables");
  try {
    const [users, roles] = await Promise.all([auth.userList({}), auth.roleList({})]);
    const userRows = await Promise.all(users.users.map(async (name) => ({
      name,
      roles: (await auth.userGet({ name })).roles,
    })));
    const roleRows = await Promise.all(roles.roles.map(async (role) => ({
      role,
      perms: (await auth.roleGet({ role })).perm,
    })));
    const userTable = h(
      "table",
      { id: "users" },
      h("tr", {}, h("th", {}, "user"), h("th", {}, "roles"), h("th", {}, "")),
    );
    for (const u of userRows) {
      userTable.append(h(
        "tr",
        { "data-user": u.name },
        h("td", {}, u.name),
        h(
          "td",
          {},
          ...u.roles.map((role) =>
            h(
              "span",
              { class: "chip" },
              role,
              h("button", {
                title: `revoke ${role} from ${u.name}`,
                click: () =>
                  access(
                    `revoked ${role} from ${u.name}`,
                    () => auth.userRevokeRole({ name: u.name, role }),
                  ),
              }, "×"),
            )
          ),
        ),
        h(
          "td",
          {},
          h("button", {
            class: "danger",
            click: () => {
              if (!confirm(`Delete user ${u.name}?`)) return;
              access(`deleted user ${u.name}`, () => auth.userDelete({ name: u.name }));
            },
          }, "delete"),
        ),
      ));
    }
    const roleTable = h(
      "table",
      { id: "roles" },
      h("tr", {}, h("th", {}, "role"), h("th", {}, "permissions"), h("th", {}, "")),
    );
    for (const r of roleRows) {
      roleTable.append(h(
        "tr",
        { "data-role-name": r.role },
        h("td", {}, r.role),
        h(
          "td",
          {},
          ...r.perms.map((p) =>
            h(
              "span",
              { class: "chip" },
              `${PERMISSION[p.permType]} ${permRange(p.key, p.rangeEnd)}`,
              h("button", {
                title: "revoke",
                click: () =>
                  access(
                    `revoked a permission of ${r.role}`,
                    () =>
                      auth.roleRevokePermission({ role: r.role, key: p.key, rangeEnd: p.rangeEnd }),
                  ),
              }, "×"),
            )
          ),
        ),
        h(
          "td",
          {},
          h("button", {
            class: "danger",
            click: () => {
              if (!confirm(`Delete role ${r.role}?`)) return;
              access(`deleted role ${r.role}`, () => auth.roleDelete({ role: r.role }));
            },
          }, "delete"),
        ),
      ));
    }
    body.replaceChildren(h("h3", {}, "Users"), userTable, h("h3", {}, "Roles"), roleTable);
  } catch (e) {
    body.replaceChildren(h("p", {}, "Users and roles are for root: ", message(e)));
    fail(e);
  }
}

/** The access view's forms, made once (the tables above them are made again after each change). */
function accessForms(): void {
  const input = (id: string, placeholder: string, type = "text") =>
    h("input", { id, placeholder, type, "aria-label": placeholder });
  const userName = input("new-user", "user");
  const userPassword = input("new-password", "password", "password");
  const grantUser = input("grant-user", "user");
  const grantRole = input("grant-role", "role");
  const roleName = input("new-role", "role");
  const permRole = input("perm-role", "role");
  const permKey = input("perm-key", "key");
  const permPrefix = h("input", { id: "perm-prefix", type: "checkbox", checked: "" });
  const permType = h(
    "select",
    { id: "perm-type" },
    ...PERMISSION.map((p, i) => h("option", { value: String(i) }, p)),
  );
  $("access-forms").replaceChildren(
    h(
      "p",
      {},
      userName,
      userPassword,
      h("button", {
        id: "user-add",
        click: () =>
          access(
            `added user ${userName.value}`,
            () => auth.userAdd({ name: userName.value, password: userPassword.value }),
          ),
      }, "add user"),
      " ",
      grantUser,
      grantRole,
      h("button", {
        id: "role-grant",
        click: () =>
          access(
            `granted ${grantRole.value} to ${grantUser.value}`,
            () => auth.userGrantRole({ user: grantUser.value, role: grantRole.value }),
          ),
      }, "grant role"),
    ),
    h(
      "p",
      {},
      roleName,
      h("button", {
        id: "role-add",
        click: () =>
          access(`added role ${roleName.value}`, () => auth.roleAdd({ name: roleName.value })),
      }, "add role"),
      " ",
      permRole,
      permType,
      permKey,
      h("label", {}, permPrefix, " prefix"),
      h("button", {
        id: "perm-grant",
        click: () => {
          const key = enc.encode(permKey.value);
          const rangeEnd = permPrefix.checked ? prefixEnd(key) : new Uint8Array(0);
          access(`granted a permission to ${permRole.value}`, () =>
            auth.roleGrantPermission({
              name: permRole.value,
              perm: { permType: Number(permType.value), key, rangeEnd },
            }));
        },
      }, "grant permission"),
    ),
    h(
      "p",
      {},
      h("button", {
        id: "auth-enable",
        click: () => access("authentication enabled", () => auth.authEnable({})),
      }, "enable authentication"),
      " ",
      h("button", {
        id: "auth-disable",
        class: "danger",
        click: () => access("authentication disabled", () => auth.authDisable({})),
      }, "disable authentication"),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Login, views

function showLogin(): void {
  ($("login") as HTMLDialogElement).showModal?.();
}

async function login(e: Event): Promise<void> {
  e.preventDefault();
  const name = ($("user") as HTMLInputElement).value;
  const password = ($("password") as HTMLInputElement).value;
  try {
    token = "";
    const r = await auth.authenticate({ name, password });
    token = r.token;
    ($("password") as HTMLInputElement).value = "";
    ($("login") as HTMLDialogElement).close();
    await loadPermissions();
    $("who").textContent = name;
    $("logout").hidden = false;
    ok(`logged in as ${name}`);
    show(current);
  } catch (err) {
    $("login-error").textContent = message(err);
  }
}

let current = "keys";
let clusterTimer: ReturnType<typeof setInterval> | undefined;

function show(view: string): void {
  current = view;
  for (const section of document.querySelectorAll<HTMLElement>("main > section")) {
    section.hidden = section.id !== `view-${view}`;
  }
  for (const tab of document.querySelectorAll<HTMLElement>("nav button")) {
    tab.classList.toggle("active", tab.dataset.view === view);
  }
  clearInterval(clusterTimer);
  if (view === "keys") reloadTree();
  if (view === "leases") loadLeases();
  if (view === "access") loadAccess();
  if (view === "cluster") {
    loadCluster();
    clusterTimer = setInterval(loadCluster, 1000);
  }
}

function main(): void {
  for (const tab of document.querySelectorAll<HTMLElement>("nav button")) {
    tab.addEventListener("click", () => show(tab.dataset.view!));
  }
  $("search").addEventListener("change", reloadTree);
  $("separator").addEventListener("change", (e) => {
    const value = (e.target as HTMLInputElement).value;
    separator = value === "" ? -1 : value.charCodeAt(0);
    reloadTree();
  });
  $("keys-side").append(newKeyForm());
  $("watch-start").addEventListener("click", startWatch);
  $("watch-stop").addEventListener("click", () => watching?.abort());
  $("watch-pause").addEventListener("click", (e) => {
    paused = !paused;
    (e.target as HTMLElement).textContent = paused ? "resume" : "pause";
  });
  $("leases-refresh").addEventListener("click", loadLeases);
  accessForms();
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => {
    token = "";
    mine = { enabled: true, root: false, perms: [] };
    // Nothing the last user saw stays on the page.
    watching?.abort();
    for (const id of ["tree", "events", "leases", "cluster-body", "access-tables"]) {
      $(id).replaceChildren();
    }
    $("detail").replaceChildren(h("p", {}, "Pick a key."));
    $("who").textContent = "";
    $("logout").hidden = true;
    loadPermissions().then(() => show(current));
  });
  $("logout").hidden = true;
  // The first view once the user's permissions are known; then the page is ready (tests wait).
  loadPermissions().then(() => {
    show("keys");
    return treeLoad;
  }).finally(() => (document.body.dataset.ready = "1"));
}

main();
