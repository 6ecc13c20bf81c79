/**
 * Running a user's command as Go's exec.Cmd.Run does for etcdctl (`watch ... -- cmd`,
 * `lock NAME cmd`): stdout and stderr inherited, and the error Go reports, in its words.
 */
import { goQuote } from "../go_format.ts";

/** Runs `execArgs` with exactly `env`; undefined on success, else Go's error text. */
export async function runCommand(
  execArgs: string[],
  env: Record<string, string>,
): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(execArgs[0], {
      args: execArgs.slice(1),
      clearEnv: true,
      env,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (out.signal) return `signal: ${signalName(out.signal)}`;
    if (out.code !== 0) return `exit status ${out.code}`;
    return undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return execArgs[0].includes("/")
        ? `fork/exec ${execArgs[0]}: no such file or directory`
        : `exec: ${goQuote(execArgs[0])}: executable file not found in $PATH`;
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      return `fork/exec ${execArgs[0]}: permission denied`;
    }
    return (e as Error).message;
  }
}

/** Go's os.Signal String() of a signal that ended a child. */
function signalName(sig: Deno.Signal): string {
  const names: Record<string, string> = {
    SIGKILL: "killed",
    SIGTERM: "terminated",
    SIGINT: "interrupt",
    SIGHUP: "hangup",
    SIGQUIT: "quit",
    SIGABRT: "aborted",
    SIGSEGV: "segmentation fault",
    SIGPIPE: "broken pipe",
  };
  return names[sig] ?? sig;
}
