/**
 * The web console in a real headless Chromium (Debian's `chromium`, driven by puppeteer-core),
 * against detcd members started as a user would: browse the key tree and open a value; edit and
 * delete (with the confirmation); a watch panel that shows an event put by etcdctl in another
 * process; a key's history with a diff and "restore"; a limited user's login that sees only its
 * prefix; the cluster view following `move-leader`. Every change is checked with etcdctl.
 *
 * `DETCD_CONSOLE_SCREENSHOTS=docs deno test -A tests/console_browser_test.ts` also saves the
 * screenshots the README shows.
 *
 * Needs chromium (`DETCD_CHROMIUM` or `chromium` on PATH); without it the tests are ignored,
 * except in CI (`CI` or `DETCD_REQUIRE_REFERENCE` set), where a missing browser fails them.
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { type Member, runCtl, startMember, testTlsFiles, which } from "./harness.ts";
import { startCluster } from "./cluster_harness.ts";

const chromium = Deno.env.get("DETCD_CHROMIUM") ?? which("chromium");
const required = Deno.env.get("CI") !== undefined ||
  Deno.env.get("DETCD_REQUIRE_REFERENCE") !== undefined;
if (chromium === undefined && !required) {
  console.warn("ignoring the web console's browser tests: no chromium (apt-get install chromium)");
}
const ignore = chromium === undefined && !required;

async function ctl(endpoint: string, ...args: string[]): Promise<string> {
  const r = await runCtl("etcdctl", [`--endpoints=${endpoint}`, ...args]);
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** A browser with one page on the member's /ui/; page errors fail the test. */
async function withConsole(
  member: Member,
  fn: (page: Page) => Promise<void>,
): Promise<void> {
  if (chromium === undefined) {
    throw new Error("chromium is not installed (apt-get install chromium)");
  }
  const browser: Browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // The TLS test's member has the harness's own CA: the browser is not told to trust it.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--ignore-certificate-errors",
    ],
  });
  const errors: string[] = [];
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.setViewport({ width: 1200, height: 760 });
    await page.goto(`${member.clientUrl}/ui/`);
    await page.waitForSelector("body[data-ready]");
    await fn(page);
    assert.deepEqual(errors, [], "no errors in the page");
  } finally {
    await browser.close();
  }
}

const text = (page: Page, selector: string) =>
  page.$eval(selector, (e) => (e as unknown as { innerText: string }).innerText);

/** Waits until the element's text satisfies `want`. */
async function waitText(page: Page, selector: string, want: RegExp): Promise<string> {
  const deadline = Date.now() + 15_000;
  let last = "";
  while (Date.now() < deadline) {
    last = await text(page, selector).catch(() => "");
    if (want.test(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `${selector}: ${JSON.stringify(last)} does not match ${want}\n` + (await pageState(page)),
  );
}

/** What the page shows, for a failed wait's message. */
async function pageState(page: Page): Promise<string> {
  const status = await text(page, "#status").catch(() => "");
  const main = await text(page, "main").catch(() => "");
  return `status line: ${status}\npage: ${main.slice(0, 1500)}`;
}

/** waitForSelector, whose timeout says what the page showed instead. */
async function waitFor(page: Page, selector: string, opts: { hidden?: boolean } = {}) {
  try {
    await page.waitForSelector(selector, opts);
  } catch (e) {
    throw new Error(
      `waiting for ${selector}${opts.hidden ? " to go" : ""}: ${e}\n` +
        (await pageState(page)),
    );
  }
}

/**
 * Clicks the element once it is shown, through the DOM. A click by mouse position can land
 * elsewhere when the layout moves between measuring and clicking (seen on a loaded CI machine);
 * what is tested is the page's answer to the click, not the mouse.
 */
async function press(page: Page, selector: string): Promise<void> {
  await waitFor(page, selector);
  await page.$eval(selector, (e) => (e as unknown as { click(): void }).click());
}

/** With DETCD_CONSOLE_SCREENSHOTS=dir (docs/ for the README's), the main views are saved. */
async function screenshot(page: Page, name: string): Promise<void> {
  const dir = Deno.env.get("DETCD_CONSOLE_SCREENSHOTS");
  if (dir) await page.screenshot({ path: `${dir}/${name}.png` });
}

/** An input or a textarea, as the page's script sees it. */
type Field = { value: string };

const options = { ignore, sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...options,
  name:
    "web console in Chromium: browse the tree, open, edit and delete a key; watch an etcdctl put",
  fn: async () => {
    const detcd = await startMember({ kind: "detcd" });
    try {
      const ep = detcd.endpoint;
      await ctl(ep, "put", "/registry/pods/default/web", '{"apiVersion":"v1","kind":"Pod"}');
      await ctl(ep, "put", "/registry/pods/default/db", "plain text");
      await ctl(ep, "put", "/registry/services/api", "x");
      await ctl(ep, "put", "top", "level");
      await withConsole(detcd, async (page) => {
        // The root level: one folder "/" and one key "top".
        await waitFor(page, '[data-folder="/"]');
        assert.equal(await text(page, "#tree"), "/\ntop");
        for (const folder of ["/", "/registry/", "/registry/pods/", "/registry/pods/default/"]) {
          await waitFor(page, `[data-folder="${folder}"]`);
          await press(page, `[data-folder="${folder}"]`);
        }
        await waitFor(page, '[data-key="/registry/pods/default/web"]');
        await press(page, '[data-key="/registry/pods/default/web"]');
        await waitText(page, "#key-name", /^\/registry\/pods\/default\/web$/);
        assert.equal(await text(page, "#value-kind"), "json");
        assert.match(await text(page, "#detail"), /Kubernetes object: apiVersion v1, kind Pod/);
        assert.equal(await text(page, "#value"), '{\n  "apiVersion": "v1",\n  "kind": "Pod"\n}');
        await screenshot(page, "console-keys");

        // YAML is re-indented (yaml.js, fetched when first needed).
        await ctl(ep, "put", "top", "name: web\nports:\n    -   80\n    -   443\n");
        await press(page, '[data-key="top"]');
        await waitText(page, "#value", /^name: web\nports:\n {2}- 80\n {2}- 443$/);
        assert.equal(await text(page, "#value-kind"), "yaml");

        // Edit and save: etcdctl sees the new value.
        await press(page, '[data-key="/registry/pods/default/db"]');
        await waitText(page, "#key-name", /db$/);
        await press(page, "#detail details summary");
        await page.$eval("#editor", (e) => ((e as unknown as Field).value = "edited"));
        await press(page, "#save");
        await waitText(page, "#value", /^edited$/);
        assert.equal(
          await ctl(ep, "get", "/registry/pods/default/db", "--print-value-only"),
          "edited\n",
        );

        // Delete: refused once at the confirmation, then accepted.
        let answer = false;
        page.on("dialog", (d) => (answer ? d.accept() : d.dismiss()));
        await press(page, "#delete");
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(
          await ctl(ep, "get", "/registry/pods/default/db", "--print-value-only"),
          "edited\n",
        );
        answer = true;
        await press(page, "#delete");
        await waitText(page, "#detail", /\(deleted\)/);
        assert.equal(await ctl(ep, "get", "/registry/pods/default/db"), "");

        // Watch a prefix; a put from another process shows up.
        await press(page, 'nav button[data-view="watch"]');
        await page.type("#watch-key", "/registry/");
        await press(page, "#watch-start");
        await waitText(page, "#watch-state", /watching/);
        await new Promise((r) => setTimeout(r, 300));
        await ctl(ep, "put", "/registry/pods/default/cache", "fresh");
        await ctl(ep, "put", "/elsewhere", "not watched");
        await waitText(page, "#events", /PUT \/registry\/pods\/default\/cache = fresh/);
        assert.doesNotMatch(await text(page, "#events"), /elsewhere/);
        await screenshot(page, "console-watch");
      });
    } finally {
      await detcd.stop();
    }
  },
});

Deno.test({
  ...options,
  name: "web console in Chromium: a key's history with a diff, and restoring an old revision",
  fn: async () => {
    const detcd = await startMember({ kind: "detcd" });
    try {
      const ep = detcd.endpoint;
      for (const v of ["line1\nold", "line1\nnew", "line1\nnewest"]) await ctl(ep, "put", "cfg", v);
      await ctl(ep, "del", "cfg");
      await ctl(ep, "put", "cfg", "after delete");
      await withConsole(detcd, async (page) => {
        await waitFor(page, '[data-key="cfg"]');
        await press(page, '[data-key="cfg"]');
        await waitText(page, "#history", /6: after delete/);
        const history = await text(page, "#history");
        assert.deepEqual(
          history.split("\n").map((l: string) => l.replace(/\s+restore$/, "").trim()),
          [
            "6: after delete",
            "5: deleted",
            "4: line1 newest",
            "3: line1 new",
            "2: line1 old",
          ],
        );
        await press(page, '#history li[data-rev="2"] input');
        await press(page, '#history li[data-rev="4"] input');
        assert.equal(await text(page, "#diff"), "--- 2\n+++ 4\n  line1\n- old\n+ newest");
        await screenshot(page, "console-history");
        await press(page, '#history li[data-rev="2"] button.restore');
        await waitText(page, "#history", /^\s*7: line1 old/);
        assert.equal(await ctl(ep, "get", "cfg", "--print-value-only"), "line1\nold\n");
      });
    } finally {
      await detcd.stop();
    }
  },
});

Deno.test({
  ...options,
  name:
    "web console in Chromium: limited users log in and see only their prefix; a reader is offered no edit",
  fn: async () => {
    const detcd = await startMember({ kind: "detcd" });
    try {
      const ep = detcd.endpoint;
      await ctl(ep, "put", "/app/config", "mine");
      await ctl(ep, "put", "/secret/key", "not mine");
      await ctl(ep, "user", "add", "root:rootpw");
      await ctl(ep, "user", "add", "alice:alicepw");
      await ctl(ep, "role", "add", "app");
      await ctl(ep, "role", "grant-permission", "app", "--prefix=true", "readwrite", "/app/");
      await ctl(ep, "user", "grant-role", "alice", "app");
      await ctl(ep, "user", "add", "reader:readerpw");
      await ctl(ep, "role", "add", "app-read");
      await ctl(ep, "role", "grant-permission", "app-read", "--prefix=true", "read", "/app/");
      await ctl(ep, "user", "grant-role", "reader", "app-read");
      await ctl(ep, "auth", "enable");
      await withConsole(detcd, async (page) => {
        await waitFor(page, "#login[open]");
        await page.type("#user", "alice");
        await page.type("#password", "wrong");
        await press(page, "#login-submit");
        await waitText(page, "#login-error", /authentication failed, invalid user ID or password/);
        await page.$eval("#password", (e) => ((e as unknown as Field).value = ""));
        await page.type("#password", "alicepw");
        await press(page, "#login-submit");
        await waitText(page, "#who", /^alice$/);
        // Every key: refused; her prefix, offered as a starting point: listed, and her write
        // lands. Users and roles are not offered to her.
        await waitText(page, "#status", /permission denied/);
        assert.equal(await text(page, "#my-ranges"), "/app/* (prefix)");
        assert.equal(
          await page.$eval('nav button[data-view="access"]', (e) => e.hasAttribute("hidden")),
          true,
        );
        await press(page, '#my-ranges [data-range="/app/"]');
        await waitFor(page, '[data-key="/app/config"]');
        assert.equal(await text(page, "#tree"), "config");
        await press(page, '[data-key="/app/config"]');
        await waitText(page, "#value", /^mine$/);
        await press(page, "#detail details summary");
        await page.$eval("#editor", (e) => ((e as unknown as Field).value = "changed"));
        await press(page, "#save");
        await waitText(page, "#value", /^changed$/);
        // Outside her prefix: the server refuses, the page says so.
        await page.click("#search", { count: 3 });
        await page.type("#search", "/secret/");
        await page.keyboard.press("Enter");
        await waitText(page, "#status", /permission denied/);
        assert.doesNotMatch(await text(page, "#tree"), /key/);

        // A reader of /app/: the value, but neither edit nor delete.
        await press(page, "#logout");
        await waitFor(page, "#login[open]");
        assert.equal(await text(page, "#detail"), "Pick a key.");
        await page.$eval("#user", (e) => ((e as unknown as Field).value = ""));
        await page.$eval("#password", (e) => ((e as unknown as Field).value = ""));
        await page.type("#user", "reader");
        await page.type("#password", "readerpw");
        await press(page, "#login-submit");
        await waitText(page, "#who", /^reader$/);
        await press(page, '#my-ranges [data-range="/app/"]');
        await waitFor(page, '[data-key="/app/config"]');
        await press(page, '[data-key="/app/config"]');
        await waitFor(page, "#read-only");
        assert.equal(await text(page, "#value"), "changed");
        assert.equal(await text(page, "#read-only"), "read only for you");
        assert.equal(await page.$("#save"), null);
        assert.equal(await page.$("#delete"), null);
      });
      const root = ["--user=root:rootpw"];
      assert.equal(await ctl(ep, ...root, "get", "/app/config", "--print-value-only"), "changed\n");
      assert.equal(
        await ctl(ep, ...root, "get", "/secret/key", "--print-value-only"),
        "not mine\n",
      );
    } finally {
      await detcd.stop();
    }
  },
});

Deno.test({
  ...options,
  name:
    "web console in Chromium: the cluster view follows a leader moved with move-leader and a member that stops",
  fn: async () => {
    const cluster = await startCluster({ kind: "detcd", size: 3 });
    try {
      const leader = await cluster.waitForLeader();
      const ids = await Promise.all(cluster.members.map(async (m) => {
        const out = await ctl(m.endpoint, "endpoint", "status", "-w", "json");
        return BigInt(/"member_id":(\d+)/.exec(out)![1]);
      }));
      const [follower, target] = cluster.members.filter((_, i) => ids[i] !== leader);
      const targetId = ids[cluster.members.indexOf(target)];
      await withConsole(follower, async (page) => {
        await press(page, 'nav button[data-view="cluster"]');
        await waitFor(page, "#members tr[data-member]");
        const roles = () =>
          page.$$eval(
            "#members tr[data-member]",
            (rows) =>
              rows.map((r) => `${r.getAttribute("data-member")}=${r.getAttribute("data-role")}`)
                .sort().join(" "),
          );
        const before = await roles();
        assert.equal((before.match(/=leader/g) ?? []).length, 1, before);
        await ctl(cluster.endpoints(), "move-leader", targetId.toString(16));
        const deadline = Date.now() + 15_000;
        while (!(await roles()).includes(`${target.name}=leader`)) {
          assert.ok(
            Date.now() < deadline,
            `leader did not move to ${target.name}: ${await roles()}`,
          );
          await new Promise((r) => setTimeout(r, 200));
        }
        // Every member answers; then one stops and the view says so.
        const health = () =>
          page.$$eval(
            "#members tr[data-member]",
            (rows) =>
              rows.map((r) => `${r.getAttribute("data-member")}=${r.getAttribute("data-health")}`)
                .sort().join(" "),
          );
        assert.equal(await health(), "etcd1=up etcd2=up etcd3=up");
        const stopped = cluster.members.find((m) => m !== follower)!;
        await stopped.kill("SIGKILL");
        const until = Date.now() + 15_000;
        while (!(await health()).includes(`${stopped.name}=down`)) {
          assert.ok(Date.now() < until, `${stopped.name} still shown up: ${await health()}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal((await health()).match(/=up/g)?.length, 2);
        await screenshot(page, "console-cluster");
      });
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  ...options,
  name:
    "web console in Chromium: leases with their keys and a countdown; put with a lease; keep-alive; revoke",
  fn: async () => {
    const detcd = await startMember({ kind: "detcd" });
    try {
      const ep = detcd.endpoint;
      // An ID with a leading zero, granted through the JSON gateway (etcdctl cannot choose
      // one): the page must print it as etcdctl does, "0123…" (it once showed "123…").
      const grant = await fetch(`${detcd.clientUrl}/v3/lease/grant`, {
        method: "POST",
        body: JSON.stringify({ TTL: "300", ID: String(0x0123456789abcdefn) }),
      });
      const answer = await grant.text();
      assert.equal(grant.status, 200, answer);
      const id = "0123456789abcdef";
      assert.match(await ctl(ep, "lease", "list"), new RegExp(`\\b${id}\\b`));
      await ctl(ep, "put", "--lease", id, "/leased/a", "1");
      await withConsole(detcd, async (page) => {
        // A key put from the console with that lease.
        // Opened and submitted through the DOM: a click by position can miss while the tree
        // above the form is still growing.
        await page.$eval("details.new", (e) => e.setAttribute("open", ""));
        await page.type("#new-key", "/leased/b");
        await page.type("#new-value", "2");
        await page.type("#new-lease", id);
        await page.$eval("#create", (e) => (e as unknown as { click(): void }).click());
        await waitText(page, "#status", /put \/leased\/b at revision 3/);
        await press(page, 'nav button[data-view="leases"]');
        const row = `#leases tr[data-lease="${id}"]`;
        await waitFor(page, row);
        assert.match(await text(page, row), /\/leased\/a, \/leased\/b/);
        // The countdown moves on its own.
        const ttl = async () => Number((await text(page, `${row} td.ttl`)).replace(/s$/, ""));
        const first = await ttl();
        assert.ok(first > 290 && first <= 300, `TTL ${first}`);
        const deadline = Date.now() + 5_000;
        while ((await ttl()) === first) {
          assert.ok(Date.now() < deadline, "the countdown did not move");
          await new Promise((r) => setTimeout(r, 200));
        }
        // Keep-alive from the console: the TTL is back at its full length.
        await press(page, `${row} button.keep-alive`);
        await waitText(page, "#status", new RegExp(`lease ${id} kept alive: TTL 300s`));
        const renewed = Date.now() + 5_000;
        while ((await ttl()) < first) {
          assert.ok(Date.now() < renewed, "the countdown did not start again");
          await new Promise((r) => setTimeout(r, 100));
        }
        await press(page, `${row} button.danger`);
        await waitFor(page, row, { hidden: true });
      });
      assert.equal(await ctl(ep, "lease", "list"), "found 0 leases\n");
      assert.equal(await ctl(ep, "get", "--prefix", "/leased/"), "");
    } finally {
      await detcd.stop();
    }
  },
});

Deno.test({
  ...options,
  name:
    "web console in Chromium: root makes a user and a role with a prefix permission, turns auth on; the user sees only that prefix",
  fn: async () => {
    const detcd = await startMember({ kind: "detcd" });
    try {
      const ep = detcd.endpoint;
      await ctl(ep, "put", "/bob/note", "hello");
      await ctl(ep, "put", "/ops/secret", "x");
      await withConsole(detcd, async (page) => {
        page.on("dialog", (d) => d.accept());
        await press(page, 'nav button[data-view="access"]');
        await waitFor(page, "#user-add");
        const fill = async (fields: Record<string, string>) => {
          for (const [id, value] of Object.entries(fields)) {
            await page.$eval(
              `#${id}`,
              (e, v) => ((e as unknown as Field).value = v as string),
              value,
            );
          }
        };
        const step = async (fields: Record<string, string>, button: string, done: RegExp) => {
          await fill(fields);
          await press(page, `#${button}`);
          await waitText(page, "#status", done);
        };
        await step({ "new-user": "root", "new-password": "rootpw" }, "user-add", /added user root/);
        await step(
          { "grant-user": "root", "grant-role": "root" },
          "role-grant",
          /granted root to root/,
        );
        await step({ "new-user": "bob", "new-password": "bobpw" }, "user-add", /added user bob/);
        await step({ "new-role": "notes" }, "role-add", /added role notes/);
        await page.select("#perm-type", "2");
        await step(
          { "perm-role": "notes", "perm-key": "/bob/" },
          "perm-grant",
          /granted a permission to notes/,
        );
        await step(
          { "grant-user": "bob", "grant-role": "notes" },
          "role-grant",
          /granted notes to bob/,
        );
        await waitText(page, "#roles", /readwrite \/bob\/\* \(prefix\)/);
        await press(page, "#auth-enable");
        // Auth is on: the next call asks for a login.
        await waitFor(page, "#login[open]");
        await page.type("#user", "bob");
        await page.type("#password", "bobpw");
        await press(page, "#login-submit");
        await waitText(page, "#who", /^bob$/);
        await waitText(
          page,
          "#access-body",
          /Users and roles are for root: etcdserver: permission denied/,
        );
        await press(page, 'nav button[data-view="keys"]');
        await page.type("#search", "/bob/");
        await page.keyboard.press("Enter");
        await waitFor(page, '[data-key="/bob/note"]');
        assert.equal(await text(page, "#tree"), "note");
      });
      const root = ["--user=root:rootpw"];
      assert.equal(await ctl(ep, ...root, "user", "get", "bob"), "User: bob\nRoles: notes\n");
      assert.equal(
        await ctl(ep, ...root, "role", "get", "notes"),
        "Role notes\nKV Read:\n\t[/bob/, /bob0) (prefix /bob/)\nKV Write:\n\t[/bob/, /bob0) (prefix /bob/)\n",
      );
      const bob = await runCtl("etcdctl", [
        `--endpoints=${ep}`,
        "--user=bob:bobpw",
        "get",
        "/ops/secret",
      ]);
      assert.match(bob.stderr, /permission denied/);
    } finally {
      await detcd.stop();
    }
  },
});

Deno.test({
  ...options,
  name: "web console in Chromium on a TLS port (HTTP/2): browse, open a value, watch a put",
  fn: async () => {
    const files = testTlsFiles();
    const detcd = await startMember({
      kind: "detcd",
      clientScheme: "https",
      extraArgs: ["--cert-file", files.cert, "--key-file", files.key],
    });
    const tlsCtl = (...args: string[]) => ctl(detcd.clientUrl, `--cacert=${files.ca}`, ...args);
    try {
      await tlsCtl("put", "/secure/key", '{"tls":true}');
      await withConsole(detcd, async (page) => {
        const protocol = await page.evaluate(() =>
          (performance.getEntriesByType("navigation")[0] as unknown as { nextHopProtocol: string })
            .nextHopProtocol
        );
        assert.equal(protocol, "h2");
        await waitFor(page, '[data-folder="/"]');
        await press(page, '[data-folder="/"]');
        await waitFor(page, '[data-folder="/secure/"]');
        await press(page, '[data-folder="/secure/"]');
        await waitFor(page, '[data-key="/secure/key"]');
        await press(page, '[data-key="/secure/key"]');
        await waitText(page, "#value", /"tls": true/);
        await press(page, 'nav button[data-view="watch"]');
        await page.type("#watch-key", "/secure/");
        await press(page, "#watch-start");
        await waitText(page, "#watch-state", /watching/);
        await new Promise((r) => setTimeout(r, 300));
        await tlsCtl("put", "/secure/new", "over h2");
        await waitText(page, "#events", /PUT \/secure\/new = over h2/);
      });
    } finally {
      await detcd.stop();
    }
  },
});
