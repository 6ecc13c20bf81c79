/**
 * detcdctl: etcdctl 3.4.23 for detcd (and etcd), in TypeScript on Deno.
 *
 *   deno run -A cli/main.ts [global options] command [command options] [args...]
 *
 * Same commands, flags, ETCDCTL_* variables, outputs, errors and exit codes as etcdctl.
 */

import { type CliIo, CoalescingSink, ExitCode, ExitSignal, processIo } from "./io.ts";
import { Session } from "./commands/global.ts";
import { newRootCommand } from "./commands/root.ts";

/** Runs detcdctl with `args` (without the program name); resolves to the exit code. */
export async function runCli(args: string[], io: CliIo): Promise<number> {
  // etcdctl picks its API version from ETCDCTL_API and then hides the variable from flag parsing.
  const api = io.env.find(([k]) => k === "ETCDCTL_API")?.[1] ?? "";
  const env = io.env.filter(([k]) => k !== "ETCDCTL_API");
  if (api === "2") {
    io.stderr.write("Error: ETCDCTL_API=2 (the etcd v2 API) is not supported by detcdctl\n");
    return ExitCode.Error;
  }
  if (api !== "" && api !== "3") {
    io.stderr.write(`unsupported API version ${api}\n`);
    return ExitCode.Error;
  }
  const session = new Session({ ...io, env });
  session.osArgs = args;
  try {
    const root = newRootCommand(session);
    const err = await root.executeRoot(args);
    if (err) session.exitWithError(ExitCode.Error, err.message);
    return ExitCode.Success;
  } catch (e) {
    if (e instanceof ExitSignal) return e.code;
    throw e;
  } finally {
    session.close();
  }
}

if (import.meta.main) {
  const io = processIo();
  const code = await runCli(Deno.args, io);
  if (io.stdout instanceof CoalescingSink) io.stdout.flush();
  Deno.exit(code);
}
