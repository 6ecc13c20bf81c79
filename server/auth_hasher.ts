/**
 * The server's bcrypt PasswordHasher (core/auth): hashing and comparing run in worker threads,
 * because bcrypt at etcd's cost 10 takes ~60-90 ms of CPU per call and a storm of Authenticate
 * calls must never stall the thread that serves other clients (etcd #9713, #11826: bcrypt made
 * Authenticate a bottleneck). Hashes are `$2a$` like Go's, and hashes written by etcd verify.
 * Calls go to the least busy worker; the queue is bounded and answers "too many requests" when
 * full rather than growing.
 */
import type { PasswordHasher } from "../core/auth/mod.ts";
import { Errors } from "../core/errors.ts";

/** A request to the worker. */
export type HasherRequest =
  | { id: number; op: "hash"; password: string; cost: number }
  | { id: number; op: "verify"; password: string; hash: string };

/** The worker's answer. */
export type HasherReply =
  | { id: number; ok: true; hash: string }
  | { id: number; ok: true; match: boolean }
  | { id: number; ok: false; error: string };

/** Pool size and bound. */
export interface WorkerPasswordHasherOptions {
  /** Worker threads (default: the CPU count, at least 2, at most 4). */
  workers?: number;
  /** Calls queued or running at most before new ones are refused (default 4096). */
  maxPending?: number;
}

interface Pending {
  resolve: (reply: HasherReply) => void;
  reject: (e: Error) => void;
  worker: number;
}

function defaultWorkers(): number {
  // At least two: bcrypt at cost 10 is ~70 ms a check, so one thread caps logins near 14/s on
  // any machine, while etcd checks on every core (measured: docs/benchmarks.md, "Auth on").
  const cpus = typeof navigator !== "undefined" ? navigator.hardwareConcurrency ?? 2 : 2;
  return Math.min(4, Math.max(2, cpus));
}

/** bcrypt in a pool of workers. Call close() when done: workers keep the process alive. */
export class WorkerPasswordHasher implements PasswordHasher {
  #workers: Worker[] = [];
  #busy: number[] = [];
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #maxPending: number;
  #closed = false;

  #count: number;

  constructor(options: WorkerPasswordHasherOptions = {}) {
    this.#count = Math.max(1, options.workers ?? defaultWorkers());
    this.#maxPending = options.maxPending ?? 4096;
  }

  /** Workers start on the first call: a member nobody logs in to runs none. */
  #start(): void {
    if (this.#workers.length > 0) return;
    for (let i = 0; i < this.#count; i++) {
      const worker = new Worker(new URL("./auth_hasher_worker.ts", import.meta.url).href, {
        type: "module",
        name: `bcrypt-${i}`,
      });
      worker.onmessage = (event: MessageEvent<HasherReply>) => this.#settle(i, event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.#failWorker(i, new Error(`bcrypt worker failed: ${event.message}`));
      };
      this.#workers.push(worker);
      this.#busy.push(0);
    }
  }

  /** Calls queued or running. */
  get pending(): number {
    return this.#pending.size;
  }

  /** A `$2a$<cost>$…` hash of `password` with a fresh random salt. */
  async hash(password: string, cost: number): Promise<string> {
    const reply = await this.#call((id) => ({ id, op: "hash", password, cost }));
    if (!reply.ok) throw new Error(`bcrypt: ${reply.error}`);
    if (!("hash" in reply)) throw new Error("bcrypt worker: unexpected reply");
    return reply.hash;
  }

  /** Whether `password` matches `hash` (false for a malformed hash). */
  async verify(password: string, hash: string): Promise<boolean> {
    const reply = await this.#call((id) => ({ id, op: "verify", password, hash }));
    if (!reply.ok) throw new Error(`bcrypt: ${reply.error}`);
    if (!("match" in reply)) throw new Error("bcrypt worker: unexpected reply");
    return reply.match;
  }

  /** Stops the workers; calls still pending are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.reject(new Error("password hasher closed"));
    this.#pending.clear();
  }

  #call(request: (id: number) => HasherRequest): Promise<HasherReply> {
    if (this.#closed) return Promise.reject(new Error("password hasher closed"));
    if (this.#pending.size >= this.#maxPending) return Promise.reject(Errors.tooManyRequests());
    this.#start();
    const id = this.#nextId++;
    let worker = 0;
    for (let i = 1; i < this.#busy.length; i++) if (this.#busy[i] < this.#busy[worker]) worker = i;
    this.#busy[worker]++;
    return new Promise<HasherReply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, worker });
      this.#workers[worker].postMessage(request(id));
    });
  }

  #settle(worker: number, reply: HasherReply): void {
    const p = this.#pending.get(reply.id);
    if (p === undefined) return;
    this.#pending.delete(reply.id);
    this.#busy[worker]--;
    p.resolve(reply);
  }

  #failWorker(worker: number, error: Error): void {
    for (const [id, p] of this.#pending) {
      if (p.worker !== worker) continue;
      this.#pending.delete(id);
      this.#busy[worker]--;
      p.reject(error);
    }
  }
}
