/**
 * lowerThreadPriority() lowers the calling thread only: a worker that calls it runs at nice 10
 * (its /proc/thread-self/stat says so), and the thread that started the worker keeps its own (were
 * it the whole process, the member's event loop would run at the worker's priority).
 */
import { assertEquals } from "../core/testing.ts";

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
