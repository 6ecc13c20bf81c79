/** Helpers for the server's tests. */

/**
 * `promise`'s value; fails with `stuck` rather than waits past `ms`, so that something that never
 * comes (a stuck worker, an answer never sent) fails a test instead of hanging it.
 */
export async function inTime<T>(promise: Promise<T>, stuck: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(stuck)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
