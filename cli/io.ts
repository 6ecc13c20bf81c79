/**
 * The process boundary of detcdctl: stdout/stderr as byte sinks, stdin as a buffered reader
 * that behaves like Go's bufio.Reader over os.Stdin, the environment, the clock, and
 * etcdctl's exit codes. Everything the CLI touches goes through CliIo so that the whole
 * program can run inside a test with captured streams.
 */

const encoder = new TextEncoder();

/** etcdctl's exit codes (ctlv3/command/error.go). */
export const ExitCode = {
  Success: 0,
  Error: 1,
  BadConnection: 2,
  InvalidInput: 3,
  BadFeature: 4,
  Interrupted: 5,
  IO: 6,
  BadArgs: 128,
} as const;

/** Thrown to end the run with an exit code (Go's os.Exit); caught only at the top. */
export class ExitSignal extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = "ExitSignal";
  }
}

/** A sink for output bytes. */
export interface ByteSink {
  write(data: string | Uint8Array): void;
}

/** Something that yields input bytes (Deno.stdin, a test buffer). */
export interface ByteSource {
  /** Reads into `buf`; resolves to the byte count, or null at end of input. */
  read(buf: Uint8Array): Promise<number | null>;
}

/** Go's bufio.Reader over stdin: line reads, plus access to what was never buffered. */
export class StdinReader {
  #buf = new Uint8Array(0);
  #eof = false;

  readonly #source: ByteSource;

  constructor(source: ByteSource) {
    this.#source = source;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(4096);
    const n = await this.#source.read(chunk);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const joined = new Uint8Array(this.#buf.length + n);
    joined.set(this.#buf);
    joined.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = joined;
    return true;
  }

  /**
   * bufio.Reader.ReadString('\n'): the bytes up to and including the newline. At end of input
   * without a newline, returns what was read and `eof: true` (Go returns io.EOF then).
   */
  async readLine(): Promise<{ line: Uint8Array; eof: boolean }> {
    for (;;) {
      const i = this.#buf.indexOf(0x0a);
      if (i >= 0) {
        const line = this.#buf.slice(0, i + 1);
        this.#buf = this.#buf.slice(i + 1);
        return { line, eof: false };
      }
      if (!(await this.#fill())) {
        const line = this.#buf;
        this.#buf = new Uint8Array(0);
        return { line, eof: true };
      }
    }
  }

  /** ioutil.ReadAll on the reader: everything left, buffered or not. */
  async readAll(): Promise<Uint8Array> {
    while (await this.#fill());
    const all = this.#buf;
    this.#buf = new Uint8Array(0);
    return all;
  }

  /** ioutil.ReadAll(os.Stdin) while a bufio.Reader holds part of it: only unbuffered bytes. */
  async readAllUnbuffered(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    if (!this.#eof) {
      for (;;) {
        const chunk = new Uint8Array(4096);
        const n = await this.#source.read(chunk);
        if (n === null) break;
        parts.push(chunk.slice(0, n));
      }
      this.#eof = true;
    }
    const total = parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

/** Everything detcdctl needs from its process. */
export interface CliIo {
  stdout: ByteSink;
  stderr: ByteSink;
  stdin: StdinReader;
  /** The environment in process order (etcdctl warns in os.Environ order). */
  env: ReadonlyArray<readonly [string, string]>;
  now(): Date;
  /** True when stdin is a terminal (password prompts switch echo off then). */
  stdinIsTerminal?: () => boolean;
}

/**
 * A sink that writes synchronously to a Deno file (stdout/stderr). A closed pipe ends the
 * process quietly with status 141, as SIGPIPE ends etcdctl (`detcdctl get ... | head`).
 */
export function fileSink(file: { writeSync(p: Uint8Array): number }): ByteSink {
  return {
    write(data) {
      let bytes = typeof data === "string" ? encoder.encode(data) : data;
      try {
        while (bytes.length > 0) {
          const n = file.writeSync(bytes);
          bytes = bytes.subarray(n);
        }
      } catch (e) {
        if (e instanceof Deno.errors.BrokenPipe) Deno.exit(128 + 13);
        throw e;
      }
    },
  };
}

/**
 * A sink that gathers the writes of one synchronous stretch of work and writes them at once,
 * (many small writes per key would otherwise cost a system call each); flush() forces it out.
 */
/** Writes out what stdout holds back (before a child process writes to the same stream). */
export function flushStdout(io: CliIo): void {
  if (io.stdout instanceof CoalescingSink) io.stdout.flush();
}

export class CoalescingSink implements ByteSink {
  #parts: Uint8Array[] = [];
  #size = 0;
  #scheduled = false;

  readonly #target: ByteSink;
  readonly #maxBytes: number;

  constructor(target: ByteSink, maxBytes = 1 << 16) {
    this.#target = target;
    this.#maxBytes = maxBytes;
  }

  write(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data.slice();
    this.#parts.push(bytes);
    this.#size += bytes.length;
    if (this.#size >= this.#maxBytes) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Writes out everything gathered so far. */
  flush(): void {
    this.#scheduled = false;
    if (this.#parts.length === 0) return;
    const out = new Uint8Array(this.#size);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    this.#parts = [];
    this.#size = 0;
    this.#target.write(out);
  }
}

/** The real process: Deno's stdio, environment and clock. */
export function processIo(): CliIo {
  const stdout = new CoalescingSink(fileSink(Deno.stdout));
  const rawStderr = fileSink(Deno.stderr);
  return {
    stdout,
    // stdout is flushed first so that the two streams keep their relative order on a terminal.
    stderr: {
      write(data) {
        stdout.flush();
        rawStderr.write(data);
      },
    },
    stdin: new StdinReader(Deno.stdin),
    env: Object.entries(Deno.env.toObject()),
    now: () => new Date(),
    stdinIsTerminal: () => Deno.stdin.isTerminal(),
  };
}

/** A sink that collects bytes (tests). */
export class BufferSink implements ByteSink {
  #parts: Uint8Array[] = [];
  write(data: string | Uint8Array): void {
    this.#parts.push(typeof data === "string" ? encoder.encode(data) : data.slice());
  }
  /** Everything written so far. */
  bytes(): Uint8Array {
    const total = this.#parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
  /** Everything written so far, as UTF-8 text. */
  text(): string {
    return new TextDecoder().decode(this.bytes());
  }
}

/** A byte source over fixed input (tests). */
export function bytesSource(input: string | Uint8Array): ByteSource {
  let data = typeof input === "string" ? encoder.encode(input) : input;
  return {
    read(buf) {
      if (data.length === 0) return Promise.resolve(null);
      const n = Math.min(buf.length, data.length);
      buf.set(data.subarray(0, n));
      data = data.subarray(n);
      return Promise.resolve(n);
    },
  };
}
