/**
 * A CLI (etcdctl or detcdctl) running in the background against one member, for the tests of
 * long-running commands (lock, elect, make-mirror): its output as it comes, signals, its end.
 */
import { childEnv, ctlCommand, type CtlKind, type Member, REPO_ROOT, sleep } from "./harness.ts";

const decoder = new TextDecoder();

/** A CLI process in the background. */
export class Proc {
  readonly #child: Deno.ChildProcess;
  readonly #out: Uint8Array[] = [];
  readonly #err: Uint8Array[] = [];
  readonly #pumps: Promise<void>[];
  readonly status: Promise<Deno.CommandStatus>;
  exited = false;

  constructor(ctl: CtlKind, member: Member, args: string[]) {
    const [program, prefix] = ctlCommand(ctl);
    this.#child = new Deno.Command(program, {
      args: [...prefix, ...args],
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv({ ETCDCTL_API: "3", ETCDCTL_ENDPOINTS: member.endpoint }),
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>, parts: Uint8Array[]) => {
      for await (const c of s) parts.push(c);
    };
    this.#pumps = [pump(this.#child.stdout, this.#out), pump(this.#child.stderr, this.#err)];
    this.status = this.#child.status.then((s) => {
      this.exited = true;
      return s;
    });
  }

  stdout(): string {
    return this.#out.map((c) => decoder.decode(c)).join("");
  }

  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // gone already
    }
  }

  async waitFor(what: string, ok: (stdout: string) => boolean, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ok(this.stdout())) {
      if (this.exited) throw new Error(`${what}: exited early; stdout ${this.stdout()}`);
      if (Date.now() > deadline) throw new Error(`${what}: timed out; stdout ${this.stdout()}`);
      await sleep(50);
    }
  }

  /** Waits for the exit (SIGKILL after `ms`): `exit N` / `signal S`, stdout, stderr. */
  async finish(ms = 15_000): Promise<string> {
    const timer = setTimeout(() => this.kill("SIGKILL"), ms);
    const status = await this.status;
    clearTimeout(timer);
    await Promise.all(this.#pumps);
    const err = this.#err.map((c) => decoder.decode(c)).join("");
    const end = status.signal ? `signal ${status.signal}` : `exit ${status.code}`;
    return `${end}\n--- stdout\n${this.stdout()}--- stderr\n${err}`;
  }
}
