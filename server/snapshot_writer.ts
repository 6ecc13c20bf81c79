/**
 * The worker that writes a snapshot's file off the event loop (server/snapshot_worker.ts), driven
 * from the event loop: started with the store's columns and a format, it fills a ring of shared
 * memory batch by batch, and the event loop hands each batch on (to a client's gRPC stream, or to
 * a follower's socket) and gives its slots back. Used by Maintenance.Snapshot
 * (server/snapshot_service.ts) and for the snapshots a leader sends its followers.
 */
import type { ColumnArrays, MvccView, StoredColumns } from "../core/mvcc/snapshot_codec.ts";
import type { SnapshotBody } from "../core/node/mod.ts";
import {
  ringSlot,
  type SnapshotFormat,
  type SnapshotFromWorker,
  type SnapshotStart,
  type SnapshotToWorker,
} from "./snapshot_protocol.ts";
import { PACED_SLICE_MS, Slicer } from "./slicer.ts";

/** What SnapshotWorker.batches yields: the file's size, its batches, its digest. */
export type WorkerPart =
  | { total: number }
  /** Chunks `first`, `first + 1`, ... (`sizes` bytes each) are in their slots of `ring`. */
  | { first: number; sizes: number[]; ring: SharedArrayBuffer }
  | { sha256: Uint8Array | null };

/**
 * A worker taken for one snapshot's file (the one standing by, or a new one): first the memory
 * the store's columns are copied into (`memory`), then the file (`batches`). Ended by `batches`
 * when the file is done or its consumer gone, else by `end`; one whose file was written whole
 * stands by for the next snapshot instead where the member keeps one (keepFinishedWorkers).
 */
export class SnapshotWorker {
  readonly #worker: Worker;
  readonly #inbox: SnapshotFromWorker[] = [];
  #wake: (() => void) | null = null;
  #ring: SharedArrayBuffer | null = null;
  #ended = false;
  /** The worker sent its file's end: it waits for nothing more of this snapshot. */
  #finished = false;

  constructor() {
    const { worker, failed } = standby ?? startWorker(WORKER_URL);
    standby = null;
    liveWorkers++;
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent<SnapshotFromWorker>) => this.#deliver(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#deliver({ kind: "error", message: e.message });
    };
    // A worker that stood by and could not load its module: as if it failed now.
    if (failed.message !== null) this.#deliver({ kind: "error", message: failed.message });
  }

  #deliver(message: SnapshotFromWorker): void {
    this.#inbox.push(message);
    const resolve = this.#wake;
    this.#wake = null;
    resolve?.();
  }

  async #next(): Promise<SnapshotFromWorker> {
    while (this.#inbox.length === 0) {
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    return this.#inbox.shift()!;
  }

  /**
   * Columns for `length` revisions in shared memory, zeroed and paged in by the worker (and the
   * ring it fills later); null when the worker failed (its error is met again by `batches`).
   */
  async memory(length: number): Promise<ColumnArrays | null> {
    this.#worker.postMessage({ kind: "memory", length } satisfies SnapshotToWorker);
    const message = await this.#next();
    if (message.kind !== "memory") {
      this.#inbox.unshift(message);
      return null;
    }
    this.#ring = message.ring;
    return message.columns;
  }

  /**
   * The file of `columns` in `format` as the worker writes it: its size first, then each batch of
   * chunks in the ring (the batch's slots are given back when the consumer asks for the next
   * part), then its digest. The worker ends with the generator; a worker that cannot start throws
   * at the first part.
   */
  async *batches(format: SnapshotFormat, columns: StoredColumns): AsyncGenerator<WorkerPart> {
    try {
      await columns.flushed;
      const { main, sub, tombstone, location, size, files } = columns;
      const ring = this.#ring;
      if (ring === null) {
        // No memory from the worker: it failed, and its error is the next message.
        const message = await this.#next();
        throw new Error(`snapshot: ${message.kind === "error" ? message.message : "no memory"}`);
      }
      const start: SnapshotStart = {
        kind: "start",
        columns: { main, sub, tombstone, location, size, files },
        format,
        ring,
      };
      // Columns in ArrayBuffers are handed over; in shared memory (MvccView.storedColumns) shared.
      const buffers = [main, sub, tombstone, location, size].map((a) => a.buffer)
        .filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
      this.#worker.postMessage(start, buffers);
      for (;;) {
        const message = await this.#next();
        switch (message.kind) {
          case "total":
            yield { total: message.total };
            break;
          case "chunks":
            yield { first: message.first, sizes: message.sizes, ring };
            this.#worker.postMessage({ kind: "credit" } satisfies SnapshotToWorker);
            break;
          case "end":
            this.#finished = true;
            yield { sha256: message.sha256 };
            return;
          case "error":
            throw new Error(`snapshot: ${message.message}`);
          case "memory":
            throw new Error("snapshot: memory not asked for");
        }
      }
    } finally {
      this.end();
    }
  }

  /**
   * Ends the worker (once), or, if it wrote its file whole and the member keeps a worker standing
   * by with none standing by now, makes it that one: a new worker would hold the event loop while
   * its isolate starts, right after the snapshot (docs/benchmarks.md, session 30).
   */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    liveWorkers--;
    if (this.#finished && standby === null && keepFinished()) {
      this.#worker.onmessage = null;
      this.#worker.postMessage({ kind: "stand-by" } satisfies SnapshotToWorker);
      standby = { worker: this.#worker, failed: watchFailure(this.#worker) };
      return;
    }
    this.#worker.terminate();
  }
}

let liveWorkers = 0;

/** Whether a worker that wrote its file whole stands by for the next snapshot. */
let keepFinished: () => boolean = () => false;

/**
 * Whether (and while `keep` answers true) a worker that wrote a snapshot's file whole stays as the
 * one standing by rather than ending; null: every worker ends with its snapshot.
 */
export function keepFinishedWorkers(keep: (() => boolean) | null): void {
  keepFinished = keep ?? (() => false);
}

const WORKER_URL = new URL("./snapshot_worker.ts", import.meta.url).href;

/** A worker and the error it met before anyone listened (its module failed to load). */
interface StartedWorker {
  worker: Worker;
  failed: { message: string | null };
}

function startWorker(url: string): StartedWorker {
  const worker = new Worker(url, { type: "module", name: "snapshot" });
  return { worker, failed: watchFailure(worker) };
}

/** The error `worker` meets while nobody listens (a standby's), kept for the snapshot taking it. */
function watchFailure(worker: Worker): StartedWorker["failed"] {
  const failed: StartedWorker["failed"] = { message: null };
  worker.onerror = (e) => {
    e.preventDefault();
    failed.message = e.message;
  };
  return failed;
}

/** The worker the next snapshot takes instead of starting its own, or null. */
let standby: StartedWorker | null = null;

/**
 * Starts the next snapshot's worker now, unless one already stands by. `new Worker` holds the
 * event loop 7-13 ms (it waits for the thread's isolate): at a quiet moment that wait costs
 * nobody, at the start of a snapshot it is the longest wait of the requests served meanwhile.
 * `url` is for tests (a module that fails to load).
 */
export function standBySnapshotWorker(url: string = WORKER_URL): void {
  if (standby === null) standby = startWorker(url);
}

/** Ends the worker standing by, if any. */
export function dismissSnapshotWorker(): void {
  standby?.worker.terminate();
  standby = null;
}

/** Whether a worker stands by for the next snapshot. */
export function snapshotWorkerStandingBy(): boolean {
  return standby !== null;
}

/** Snapshot workers started and not yet ended (each ends with its snapshot's stream). */
export function snapshotWorkers(): number {
  return liveWorkers;
}

/** A batch's chunks as one view of the ring: its slots are consecutive (batches never wrap). */
function batchBytes(part: { first: number; sizes: number[]; ring: SharedArrayBuffer }): Uint8Array {
  let bytes = 0;
  for (const size of part.sizes) bytes += size;
  return ringSlot(part.ring, part.first, bytes);
}

/** Runs a generator's steps with pauses between them; its result (undefined for no generator). */
export async function stepped<T>(
  steps: Generator<void, T> | undefined,
  slicer: Slicer,
): Promise<T | undefined> {
  if (steps === undefined) return undefined;
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await slicer.pause();
  }
}

/**
 * The snapshot a follower is sent, `head(size)` bytes (the node's other state and the store
 * field's header) then `view`'s store encoding, written by a worker from the view's columns: the
 * event loop only copies the view's columns (in slices) and hands each batch of 512 KiB to the
 * socket. Null where the view's records are not all in files (a store in memory) or no worker
 * starts: the caller encodes it on the event loop. Closing the body ends the worker; the view is
 * the caller's to close.
 */
export async function workerSnapshotBody(
  view: MvccView,
  head: (size: number) => Uint8Array,
  onWorkerError?: (error: unknown) => void,
): Promise<SnapshotBody | null> {
  if (!view.storedColumns) return null;
  const worker = new SnapshotWorker();
  let columns: StoredColumns | null | undefined;
  try {
    const into = await worker.memory(view.length);
    columns = await stepped(view.storedColumns(into ?? undefined), new Slicer(PACED_SLICE_MS));
  } finally {
    if (!columns) worker.end();
  }
  if (!columns) return null;
  const parts = worker.batches(
    { kind: "store", revision: view.revision, compactMainRev: view.compactMainRev },
    columns,
  );
  let first: IteratorResult<WorkerPart>;
  try {
    first = await parts.next();
  } catch (e) {
    onWorkerError?.(e);
    return null;
  }
  if (first.done || !("total" in first.value)) {
    await parts.return(undefined);
    return null;
  }
  let before: Uint8Array | null = head(first.value.total);
  return {
    size: before.length + first.value.total,
    async next() {
      if (before !== null) {
        const out = before;
        before = null;
        return out;
      }
      const part = await parts.next();
      if (part.done || "sha256" in part.value) return null;
      if ("total" in part.value) throw new Error("snapshot: a second size");
      return batchBytes(part.value);
    },
    close() {
      void parts.return(undefined);
    },
  };
}
