/**
 * A worker that writes a snapshot's file (Maintenance.Snapshot) off the event loop: it gets the
 * store's columns as of the snapshot (MvccView.storedColumns), the revision log's segment files
 * and the small buckets, plans the bbolt file, reads each record from its file and hands back
 * whole chunks, a few at a time and only as fast as they are taken
 * (docs/adr/0010-storage-that-scales.md). Protocol: server/snapshot_service.ts.
 */
/// <reference lib="deno.worker" />
import { BoltWriter } from "../core/storage/bbolt.ts";
import { segmentFilesReader } from "../core/storage/revision_log.ts";
import { backendSources, columnsKeySource } from "../core/snapshot/key_bucket.ts";
import { openReadAt } from "../platform/deno_disk.ts";
import { fileChunks, plainChunk, snapshotResponseFrame } from "./snapshot_chunks.ts";
import {
  SNAPSHOT_BATCH_CHUNKS,
  SNAPSHOT_BATCHES_AHEAD,
  type SnapshotFromWorker,
  type SnapshotStart,
  type SnapshotToWorker,
} from "./snapshot_protocol.ts";

let credits = SNAPSHOT_BATCHES_AHEAD;
let wake: (() => void) | null = null;

function post(message: SnapshotFromWorker, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

async function write(start: SnapshotStart): Promise<void> {
  const { columns } = start;
  const files = segmentFilesReader(columns.files, openReadAt);
  try {
    const writer = new BoltWriter(
      backendSources(columnsKeySource(columns, files.read), start.buckets),
      { txid: start.txid },
    );
    for (const _ of writer.plan()) { /* no one else to let run here */ }
    const total = writer.size;
    post({ kind: "total", total });
    let outs: Uint8Array[] = [];
    let sizes: number[] = [];
    const send = async () => {
      while (credits === 0) await new Promise<void>((resolve) => (wake = resolve));
      credits--;
      post({ kind: "chunks", outs, sizes }, outs.map((o) => o.buffer as ArrayBuffer));
      outs = [];
      sizes = [];
    };
    const allocate = start.framed ? snapshotResponseFrame : plainChunk;
    for (const chunk of fileChunks(writer.pages(), total, allocate)) {
      if (chunk === null) continue;
      outs.push(chunk.out);
      sizes.push(chunk.blob.length);
      if (outs.length === SNAPSHOT_BATCH_CHUNKS) await send();
    }
    if (outs.length > 0) await send();
    post({ kind: "end" });
  } finally {
    files.close();
  }
}

self.onmessage = (e: MessageEvent<SnapshotToWorker>) => {
  const message = e.data;
  if (message.kind === "credit") {
    credits++;
    const resolve = wake;
    wake = null;
    resolve?.();
    return;
  }
  write(message).catch((error) => {
    post({ kind: "error", message: error instanceof Error ? error.message : String(error) });
  });
};
