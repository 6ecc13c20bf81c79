/**
 * Gives the C heap's free memory back to the system: glibc's malloc_trim(0).
 *
 * A member's buffers outside V8's heap (request and response bytes, file reads, the storage's
 * slabs) come from glibc's malloc. After a bulk load most of them are freed, but glibc keeps the
 * freed memory inside its heap (only the heap's top is returned on its own), so a member that has
 * just loaded 1M keys kept ~250 MB of C heap of which ~150 MB was free (docs/benchmarks.md, session
 * 24). malloc_trim(0) returns every free page to the system (madvise), ~10 ms for that heap.
 *
 * Linux with glibc only (libc.so.6 through Deno's FFI); elsewhere, or without the permission to load
 * it, nothing is done. The call runs on a thread of Deno's blocking pool (`nonblocking`), not on the
 * event loop: glibc holds its heap's lock meanwhile, so an allocation there waits, the rest does
 * not.
 */

type Libc = Deno.DynamicLibrary<
  { malloc_trim: { parameters: ["usize"]; result: "i32"; nonblocking: true } }
>;

let trimmer: (() => Promise<void>) | null | undefined;

/** malloc_trim(0), run off the event loop, when glibc is there (loaded once); else null. */
export function mallocTrimmer(): (() => Promise<void>) | null {
  if (trimmer !== undefined) return trimmer;
  trimmer = null;
  if (Deno.build.os !== "linux") return trimmer;
  try {
    const libc: Libc = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
    });
    trimmer = async () => {
      await libc.symbols.malloc_trim(0n);
    };
  } catch {
    // No glibc (or no permission to load it): nothing to trim.
  }
  return trimmer;
}
