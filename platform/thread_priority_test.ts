/**
 * lowerThreadPriority() lowers the calling thread only: a worker that calls it runs at nice 10
 * (its /proc/thread-self/stat says so), and the thread that started the worker keeps its own (were
 * it the whole process, the member's event loop would run at the worker's priority).
 */
import { assert, assertEquals } from "../core/testing.ts";
import { mayLeaveIdle, StarvationWatch } from "./thread_priority.ts";

/** Field 19 of /proc/thread-self/stat: the calling thread's nice value. */
function niceOfThisThread(): number {
  const stat = Deno.readTextFileSync("/proc/thread-self/stat");
  // The command name (field 2) is in parentheses and may hold spaces: count after its end.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[19 - 3]);
}

Deno.test({
  name: "lowerThreadPriority: the worker that calls it runs at nice 10, its starter does not move",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const before = niceOfThisThread();
    const source = `
      import { lowerThreadPriority } from ${
      JSON.stringify(new URL("./thread_priority.ts", import.meta.url).href)
    };
      const read = () => {
        const stat = Deno.readTextFileSync("/proc/thread-self/stat");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
      };
      const was = read();
      const answer = lowerThreadPriority(10) ? 10 : null;
      self.postMessage({ was, answer, now: read() });
    `;
    const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
    const worker = new Worker(url, { type: "module" });
    try {
      const got = await new Promise<{ was: number; answer: number | null; now: number }>(
        (resolve, reject) => {
          worker.onmessage = (e) => resolve(e.data);
          worker.onerror = (e) => reject(e);
        },
      );
      assertEquals(got, { was: before, answer: 10, now: 10 });
      assertEquals(niceOfThisThread(), before, "the starting thread keeps its priority");
    } finally {
      worker.terminate();
      URL.revokeObjectURL(url);
    }
  },
});

/** Fields 19 (nice) and 41 (scheduling policy) of /proc/thread-self/stat, read in a worker. */
const READ_SCHEDULING = `
  const scheduling = () => {
    const stat = Deno.readTextFileSync("/proc/thread-self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { nice: Number(fields[19 - 3]), policy: Number(fields[41 - 3]) };
  };
`;

function moduleWorker(source: string): { worker: Worker; url: string } {
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  return { worker: new Worker(url, { type: "module" }), url };
}

const PRIORITY_MODULE = JSON.stringify(new URL("./thread_priority.ts", import.meta.url).href);

Deno.test({
  name: "IdleThread: a worker enters SCHED_IDLE where it may leave it, and leaves it for nice 10",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const files = {
      status: Deno.readTextFileSync("/proc/self/status"),
      limits: Deno.readTextFileSync("/proc/self/limits"),
      uidMap: Deno.readTextFileSync("/proc/self/uid_map"),
    };
    const before = niceOfThisThread();
    const { worker, url } = moduleWorker(`
      import { IdleThread } from ${PRIORITY_MODULE};
      ${READ_SCHEDULING}
      const thread = new IdleThread(10);
      const was = scheduling();
      const entered = thread.enter();
      const inside = scheduling();
      thread.leave();
      self.postMessage({ was, entered, inside, after: scheduling(), idle: thread.idle });
    `);
    try {
      const got = await new Promise<Record<string, unknown>>((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => reject(e);
      });
      if (mayLeaveIdle(10, files)) {
        assertEquals(got, {
          was: { nice: before, policy: 0 },
          entered: true,
          inside: { nice: 10, policy: 5 },
          after: { nice: 10, policy: 0 },
          idle: false,
        });
      } else {
        // Where it could not come back it never goes: nice 10 from the start.
        assertEquals(got.entered, false);
        assertEquals(got.inside, { nice: 10, policy: 0 });
      }
    } finally {
      worker.terminate();
      URL.revokeObjectURL(url);
    }
  },
});

Deno.test("mayLeaveIdle: RLIMIT_NICE, or CAP_SYS_NICE in the initial user namespace", () => {
  const limits = (soft: number) =>
    `Limit                     Soft Limit           Hard Limit           Units     \n` +
    `Max nice priority         ${soft}                    ${soft}                    \n`;
  const status = (capEff: string) => `Name:\tdeno\nCapEff:\t${capEff}\n`;
  const initial = "         0          0 4294967295\n";
  const container = "         0     100000      65536\n";
  const root = "000001fffeffffff";
  const noNice = (BigInt(`0x${root}`) & ~(1n << 23n)).toString(16).padStart(16, "0");
  assertEquals(
    mayLeaveIdle(10, { status: status(root), limits: limits(0), uidMap: initial }),
    true,
  );
  assertEquals(
    mayLeaveIdle(10, { status: status(root), limits: limits(0), uidMap: container }),
    false,
    "a container's root is not capable() of it",
  );
  assertEquals(
    mayLeaveIdle(10, { status: status(noNice), limits: limits(0), uidMap: initial }),
    false,
  );
  assertEquals(
    mayLeaveIdle(10, { status: status("0"), limits: limits(10), uidMap: container }),
    true,
  );
  assertEquals(
    mayLeaveIdle(10, { status: status("0"), limits: limits(9), uidMap: container }),
    false,
  );
  assertEquals(
    mayLeaveIdle(5, { status: status("0"), limits: limits(10), uidMap: initial }),
    false,
  );
});

Deno.test("StarvationWatch: judged over working time only, at a quarter of a core", () => {
  let wall = 0;
  let cpu = 0;
  const watch = new StarvationWatch(() => wall, () => cpu);
  assertEquals(watch.starved(), false, "the first call starts a window");
  wall += 200;
  cpu += 10;
  assertEquals(watch.starved(), false, "a window is 250 ms");
  wall += 100;
  cpu += 10;
  assertEquals(watch.starved(), true, "20 ms of 300");
  wall += 300;
  cpu += 100;
  assertEquals(watch.starved(), false, "100 ms of 300");
  // Waiting for the consumer is not starving: the pause is not judged.
  watch.pause();
  wall += 5_000;
  assertEquals(watch.starved(), false);
  wall += 260;
  cpu += 70;
  assertEquals(watch.starved(), false, "70 ms of 260 after the pause");
});

Deno.test({
  name: "IdleThread: a worker starved on a busy core returns to nice 10 and finishes its work",
  ignore: Deno.build.os !== "linux" || !hasTaskset(),
  async fn() {
    // One core, a nice-0 thread spinning on it until the work is done (at most 60 s), and a worker
    // under SCHED_IDLE with ~0.25 s of work: left idle it would get ~0.3% of the core and finish
    // only when the spinner gives up; back at nice 10 it gets ~10%, a few seconds.
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      await Deno.writeTextFile(
        script,
        `
        const flag = new Int32Array(new SharedArrayBuffer(4));
        const mk = (src) => new Worker(
          URL.createObjectURL(new Blob([src], { type: "application/javascript" })), { type: "module" });
        const spinner = mk(\`self.onmessage = (e) => { const f = e.data;
          self.postMessage("spinning");
          const end = performance.now() + 60000;
          while (Atomics.load(f, 0) === 0 && performance.now() < end) {}
          self.postMessage("done"); };\`);
        // The spinner holds the core before the worker starts its work.
        const spinning = new Promise((r) => (spinner.onmessage = r));
        spinner.postMessage(flag);
        await spinning;
        const worker = mk(\`import { IdleThread } from ${PRIORITY_MODULE};
          self.onmessage = (e) => { const f = e.data; const thread = new IdleThread(10);
          const entered = thread.enter(); const start = performance.now(); let x = 0;
          for (let i = 0; i < 2e8; i++) { x += i; if ((i & 0xfffff) === 0) thread.working(); }
          Atomics.store(f, 0, 1);
          self.postMessage({ entered, idle: thread.idle, ms: performance.now() - start, x }); };\`);
        worker.postMessage(flag);
        const got = await new Promise((r) => (worker.onmessage = (e) => r(e.data)));
        console.log(JSON.stringify(got));
        Deno.exit(0);
        `,
      );
      const out = await new Deno.Command("taskset", {
        args: ["-c", "0", Deno.execPath(), "run", "-A", script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.success, true, new TextDecoder().decode(out.stderr));
      const got = JSON.parse(text) as { entered: boolean; idle: boolean; ms: number };
      if (!got.entered) return; // Not allowed to enter here: nothing can starve.
      assertEquals(got.idle, false, "the starved worker left SCHED_IDLE");
      assert(got.ms < 30_000, `the work took ${got.ms} ms: still starved`);
    } finally {
      await Deno.remove(script);
    }
  },
});

function hasTaskset(): boolean {
  try {
    return new Deno.Command("taskset", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}
