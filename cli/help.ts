/**
 * etcdctl's help page (ctlv3/help.go): NAME, USAGE, VERSION, API VERSION, COMMANDS,
 * DESCRIPTION, OPTIONS and GLOBAL OPTIONS, laid out by a tabwriter. Users diff and grep this
 * output, so it is reproduced byte for byte.
 */

import type { Command } from "./command.ts";
import type { FlagSet } from "./flags.ts";
import { goQuote } from "./go_format.ts";
import { tabwriterFormat } from "./tabwriter.ts";

/** The etcdctl version detcdctl mirrors. */
export const etcdctlVersion = "3.4.23";
/** The API version etcdctl 3.4 reports. */
export const apiVersion = "3.4";

/** etcdctl's flag listing: `      --name=default\tusage`, bools as `--name[=false]`. */
export function etcdFlagUsages(fs: FlagSet): string {
  let out = "";
  fs.visitAll((flag) => {
    if (flag.deprecated) return;
    let line = flag.shorthand !== ""
      ? `  -${flag.shorthand}, --${flag.name}`
      : `   ${flag.shorthand}   --${flag.name}`;
    const value = flag.value.type() === "string" ? goQuote(flag.defValue) : flag.defValue;
    line += flag.noOptDefVal !== "" ? `[=${value}]` : `=${value}`;
    out += `${line}\t${flag.usage}\n`;
  });
  return out;
}

/** ctlv3's cmdName: the command's path below `start`. */
function cmdName(cmd: Command, start: Command): string {
  const parts = [cmd.name()];
  let c = cmd;
  while (c.parent && c.parent.name() !== start.name()) {
    c = c.parent;
    parts.unshift(c.name());
  }
  return parts.join(" ");
}

function allSubCommands(cmd: Command): Command[] {
  const out: Command[] = [];
  for (const sub of cmd.commands()) {
    out.push(sub, ...allSubCommands(sub));
  }
  return out;
}

/** Renders etcdctl's usage/help page for `cmd`. */
export function etcdctlUsage(cmd: Command): string {
  let s = "NAME:\n";
  s += cmd.hasParent()
    ? `\t${cmdName(cmd, cmd.root())} - ${cmd.short}\n`
    : `\t${cmd.name()} - ${cmd.short}\n`;
  s += `\nUSAGE:\n\t${cmd.useLine()}\n`;
  if (!cmd.hasParent()) s += `\nVERSION:\n\t${etcdctlVersion}\n`;
  if (cmd.hasSubCommands()) {
    s += `\nAPI VERSION:\n\t${apiVersion}\n`;
    s += "\n\nCOMMANDS:\n";
    for (const sub of allSubCommands(cmd)) {
      if (sub.runnable()) s += `\t${cmdName(sub, cmd)}\t${sub.short}\n`;
    }
  }
  if (cmd.long !== "") {
    s += "\nDESCRIPTION:\n";
    const trimmed = cmd.long.replace(/^[\n\t ]+|[\n\t ]+$/g, "");
    for (const line of trimmed.split("\n")) s += `\t${line}\n`;
  }
  const local = cmd.localFlags();
  if (local.hasFlags()) s += "\nOPTIONS:\n" + etcdFlagUsages(local);
  const inherited = cmd.inheritedFlags();
  if (inherited.hasFlags()) s += "\nGLOBAL OPTIONS:\n" + etcdFlagUsages(inherited);
  s += "\n";
  return tabwriterFormat(s);
}
