/**
 * A command tree that behaves like spf13/cobra 1.6.1 as etcdctl 3.4.23 (Debian build) uses it:
 * how the subcommand is found among flags (including prefix matching and "did you mean"
 * suggestions), how flags of parents are inherited, when help is shown, and which error lines
 * go to which stream. The help layout itself is etcdctl's own template, rendered through a
 * tabwriter, in cli/help.ts.
 */

import { FlagError, FlagSet, HelpRequested } from "./flags.ts";

/** Where a command tree writes; text is written as-is (UTF-8), bytes unchanged. */
export interface CommandOutput {
  stdout(text: string | Uint8Array): void;
  stderr(text: string | Uint8Array): void;
}

/** A command's action. Throwing ends the run (see cli/exit.ts for etcdctl's exits). */
export type RunFn = (cmd: Command, args: string[]) => void | Promise<void>;

/** Positional-argument validation (cobra's Args). */
export type ArgsFn = (cmd: Command, args: string[]) => string | null;

/** Fields of a command, named like cobra.Command's. */
export interface CommandSpec {
  use: string;
  short?: string;
  long?: string;
  run?: RunFn;
  args?: ArgsFn;
  aliases?: string[];
  hidden?: boolean;
  disableFlagsInUseLine?: boolean;
  silenceErrors?: boolean;
  silenceUsage?: boolean;
  suggestFor?: string[];
}

/** An error from command-line handling (unknown command, bad flag, bad arguments). */
export class CommandError extends Error {}

/** Renders a command's usage; the tree's root may override it (etcdctl does). */
export type UsageFn = (cmd: Command, write: (s: string) => void) => void;

/** cobra.NoArgs. */
export const noArgs: ArgsFn = (cmd, args) =>
  args.length > 0 ? `unknown command "${args[0]}" for "${cmd.commandPath()}"` : null;

/** cobra's "ld": case-insensitive Levenshtein distance used for suggestions. */
export function levenshtein(s: string, t: string): number {
  s = s.toLowerCase();
  t = t.toLowerCase();
  const d: number[][] = [];
  for (let i = 0; i <= s.length; i++) {
    d.push(new Array(t.length + 1).fill(0));
    d[i][0] = i;
  }
  for (let j = 0; j <= t.length; j++) d[0][j] = j;
  for (let j = 1; j <= t.length; j++) {
    for (let i = 1; i <= s.length; i++) {
      if (s[i - 1] === t[j - 1]) {
        d[i][j] = d[i - 1][j - 1];
      } else {
        d[i][j] = Math.min(d[i - 1][j], d[i][j - 1], d[i - 1][j - 1]) + 1;
      }
    }
  }
  return d[s.length][t.length];
}

/** One node of the command tree. */
export class Command {
  readonly use: string;
  readonly short: string;
  readonly long: string;
  run?: RunFn;
  readonly argsFn?: ArgsFn;
  readonly aliases: string[];
  readonly hidden: boolean;
  readonly disableFlagsInUseLine: boolean;
  silenceErrors: boolean;
  silenceUsage: boolean;
  readonly suggestFor: string[];
  parent?: Command;
  /** Set on the root: how usage is rendered (etcdctl's template) and where output goes. */
  usageFn?: UsageFn;
  output?: CommandOutput;
  /** The built-in help command once added. */
  helpCommand?: Command;

  #children: Command[] = [];
  #flagSet?: FlagSet;
  #pflagSet?: FlagSet;
  #parentsPflagSet?: FlagSet;
  #capture?: string[];

  constructor(spec: CommandSpec) {
    this.use = spec.use;
    this.short = spec.short ?? "";
    this.long = spec.long ?? "";
    this.run = spec.run;
    this.argsFn = spec.args;
    this.aliases = spec.aliases ?? [];
    this.hidden = spec.hidden ?? false;
    this.disableFlagsInUseLine = spec.disableFlagsInUseLine ?? false;
    this.silenceErrors = spec.silenceErrors ?? false;
    this.silenceUsage = spec.silenceUsage ?? false;
    this.suggestFor = spec.suggestFor ?? [];
  }

  /** The first word of `use`. */
  name(): string {
    const i = this.use.indexOf(" ");
    return i >= 0 ? this.use.slice(0, i) : this.use;
  }

  /** Adds children (like cobra's AddCommand). */
  addCommand(...cmds: Command[]): void {
    for (const c of cmds) {
      c.parent = this;
      this.#children.push(c);
    }
  }

  /** Removes children. */
  removeCommand(...cmds: Command[]): void {
    this.#children = this.#children.filter((c) => !cmds.includes(c));
  }

  /**
   * Children sorted by name, for help pages. Lookups and suggestions use insertion order, as
   * cobra only sorts when a help page is rendered.
   */
  commands(): Command[] {
    return [...this.#children].sort((
      a,
      b,
    ) => (a.name() < b.name() ? -1 : a.name() > b.name() ? 1 : 0));
  }

  /** True when this command has a parent. */
  hasParent(): boolean {
    return this.parent !== undefined;
  }

  /** The root of the tree. */
  root(): Command {
    return this.parent ? this.parent.root() : this;
  }

  /** True when the command has an action. */
  runnable(): boolean {
    return this.run !== undefined;
  }

  /** True when the command has children. */
  hasSubCommands(): boolean {
    return this.#children.length > 0;
  }

  /** cobra's IsAvailableCommand: shown in suggestions and default usage. */
  isAvailableCommand(): boolean {
    if (this.hidden) return false;
    if (this.parent && this.parent.helpCommand === this) return false;
    return this.runnable() || this.hasAvailableSubCommands();
  }

  /** True when a child is available. */
  hasAvailableSubCommands(): boolean {
    return this.#children.some((c) => c.isAvailableCommand());
  }

  /** "etcdctl endpoint status". */
  commandPath(): string {
    return this.parent ? `${this.parent.commandPath()} ${this.name()}` : this.name();
  }

  /** The usage line: parent path, `use`, and " [flags]" when flags exist. */
  useLine(): string {
    const line = this.parent ? `${this.parent.commandPath()} ${this.use}` : this.use;
    if (this.disableFlagsInUseLine) return line;
    if (this.flags().hasAvailableFlags() && !line.includes("[flags]")) return line + " [flags]";
    return line;
  }

  /** All flags that apply (local, own persistent and inherited persistent once merged). */
  flags(): FlagSet {
    if (!this.#flagSet) this.#flagSet = new FlagSet(this.name());
    return this.#flagSet;
  }

  /** Flags declared here that children inherit. */
  persistentFlags(): FlagSet {
    if (!this.#pflagSet) this.#pflagSet = new FlagSet(this.name());
    return this.#pflagSet;
  }

  #updateParentsPflags(): FlagSet {
    if (!this.#parentsPflagSet) {
      this.#parentsPflagSet = new FlagSet(this.name());
      this.#parentsPflagSet.sortFlags = false;
    }
    for (let p = this.parent; p; p = p.parent) {
      this.#parentsPflagSet.addFlagSet(p.persistentFlags());
    }
    return this.#parentsPflagSet;
  }

  /** Merges own and parents' persistent flags into flags(). */
  mergePersistentFlags(): void {
    const parents = this.#updateParentsPflags();
    this.flags().addFlagSet(this.persistentFlags());
    this.flags().addFlagSet(parents);
  }

  /** Flags declared on this command itself (shown as OPTIONS). */
  localFlags(): FlagSet {
    this.mergePersistentFlags();
    const local = new FlagSet(this.name());
    const parents = this.#updateParentsPflags();
    const add = (f: ReturnType<FlagSet["lookup"]>) => {
      if (f && local.lookup(f.name) === undefined && f !== parents.lookup(f.name)) local.addFlag(f);
    };
    this.flags().visitAll(add);
    this.persistentFlags().visitAll(add);
    return local;
  }

  /** Flags inherited from parents (shown as GLOBAL OPTIONS). */
  inheritedFlags(): FlagSet {
    this.mergePersistentFlags();
    const inherited = new FlagSet(this.name());
    const local = this.localFlags();
    this.#updateParentsPflags().visitAll((f) => {
      if (inherited.lookup(f.name) === undefined && local.lookup(f.name) === undefined) {
        inherited.addFlag(f);
      }
    });
    return inherited;
  }

  /** Adds -h/--help unless defined (cobra does this lazily, only for executed commands). */
  initDefaultHelpFlag(): void {
    this.mergePersistentFlags();
    if (this.flags().lookup("help") === undefined) {
      const usage = "help for " + (this.name() === "" ? "this command" : this.name());
      this.flags().bool("help", false, usage, "h");
    }
  }

  #findCapture(): string[] | undefined {
    return this.#capture ?? (this.parent ? this.parent.#findCapture() : undefined);
  }

  #write(stream: "stdout" | "stderr", text: string): void {
    const capture = this.#findCapture();
    if (capture) {
      capture.push(text);
      return;
    }
    const out = this.root().output;
    if (!out) throw new Error("command tree has no output");
    out[stream](text);
  }

  /** Writes to cobra's OutOrStderr (captured while rendering a usage string). */
  printErr(text: string): void {
    this.#write("stderr", text);
  }

  /** Renders usage: the root's usage function, else cobra's default template. */
  usage(): void {
    const fn = this.root().usageFn;
    if (fn) {
      fn(this, (s) => this.#write("stdout", s));
      return;
    }
    this.mergePersistentFlags();
    this.#write("stderr", defaultUsage(this));
  }

  /** cobra's UsageString: usage captured as text (empty when usage writes to stdout directly). */
  usageString(): string {
    const fn = this.root().usageFn;
    if (fn) {
      // etcdctl's usage function writes to os.Stdout itself, so nothing is captured.
      this.usage();
      return "";
    }
    const saved = this.#capture;
    this.#capture = [];
    try {
      this.usage();
      return this.#capture.join("");
    } finally {
      this.#capture = saved;
    }
  }

  /** cobra's Help: etcdctl's help template is just the usage string, printed to stdout. */
  help(): void {
    if (this.root().usageFn) {
      this.#write("stdout", this.usageString());
      return;
    }
    this.mergePersistentFlags();
    const text = (this.long || this.short).replace(/[\s]+$/, "");
    let out = text !== "" ? text + "\n\n" : "";
    if (this.runnable() || this.hasSubCommands()) out += this.usageString();
    this.#write("stdout", out);
  }

  /** Finds the child matching `next`: exact name or alias, else a unique prefix. */
  findNext(next: string): Command | undefined {
    const matches: Command[] = [];
    for (const c of this.#children) {
      if (c.name() === next || c.aliases.includes(next)) return c;
      if (c.name().startsWith(next) || c.aliases.some((a) => a.startsWith(next))) matches.push(c);
    }
    return matches.length === 1 ? matches[0] : undefined;
  }

  /** "\n\nDid you mean this?\n\tget\n" or "". */
  findSuggestions(arg: string): string {
    const suggestions: string[] = [];
    for (const c of this.#children) {
      if (!c.isAvailableCommand()) continue;
      const byDistance = levenshtein(arg, c.name()) <= 2;
      const byPrefix = c.name().toLowerCase().startsWith(arg.toLowerCase());
      if (byDistance || byPrefix) suggestions.push(c.name());
      for (const s of c.suggestFor) {
        if (s.toLowerCase() === arg.toLowerCase()) suggestions.push(c.name());
      }
    }
    if (suggestions.length === 0) return "";
    return "\n\nDid you mean this?\n" + suggestions.map((s) => `\t${s}\n`).join("");
  }

  /** cobra's Find: the target command, its remaining args, or an error text. */
  find(args: string[]): { cmd: Command; args: string[]; error?: string } {
    const inner = (c: Command, innerArgs: string[]): [Command, string[]] => {
      const withoutFlags = stripFlags(innerArgs, c);
      if (withoutFlags.length === 0) return [c, innerArgs];
      const next = withoutFlags[0];
      const cmd = c.findNext(next);
      if (cmd) return inner(cmd, argsMinusFirst(innerArgs, next));
      return [c, innerArgs];
    };
    const [found, rest] = inner(this, args);
    if (found.argsFn === undefined) {
      const error = legacyArgs(found, stripFlags(rest, found));
      if (error) return { cmd: found, args: rest, error };
    }
    return { cmd: found, args: rest };
  }

  /** cobra's execute on the found command: parse flags, then help or run. */
  async execute(args: string[]): Promise<Error | null> {
    this.initDefaultHelpFlag();
    try {
      this.flags().parse(args);
    } catch (e) {
      if (e instanceof FlagError || e instanceof HelpRequested) return e;
      throw e;
    }
    if (this.flags().getBool("help")) return new HelpRequested();
    if (!this.runnable()) return new HelpRequested();
    const positional = this.flags().args;
    if (this.argsFn) {
      const err = this.argsFn(this, positional);
      if (err !== null) return new CommandError(err);
    }
    await this.run!(this, positional);
    return null;
  }

  /** cobra's ExecuteC on the root: returns the error etcdctl then reports (or null). */
  async executeRoot(args: string[]): Promise<Error | null> {
    const root = this.root();
    root.initDefaultHelpCmd();
    root.initDefaultCompletionCmd();
    const found = root.find(args);
    if (found.error !== undefined) {
      const c = found.cmd;
      if (!c.silenceErrors) {
        c.printErr(`Error: ${found.error}\n`);
        c.printErr(`Run '${c.commandPath()} --help' for usage.\n`);
      }
      return new CommandError(found.error);
    }
    const cmd = found.cmd;
    const err = await cmd.execute(found.args);
    if (err) {
      if (err instanceof HelpRequested) {
        cmd.help();
        return null;
      }
      if (!cmd.silenceErrors && !root.silenceErrors) root.printErr(`Error: ${err.message}\n`);
      if (!cmd.silenceUsage && !root.silenceUsage) root.printErr(cmd.usageString() + "\n");
    }
    return err;
  }

  /** Adds cobra's "help [command]" command to a root that has children. */
  initDefaultHelpCmd(): void {
    if (!this.hasSubCommands()) return;
    if (!this.helpCommand) {
      this.helpCommand = new Command({
        use: "help [command]",
        short: "Help about any command",
        long:
          `Help provides help for any command in the application.\nSimply type ${this.name()} help [path to command] for full details.`,
        run: (c, args) => {
          const found = c.root().find(args);
          if (found.error !== undefined) {
            c.printErr(`Unknown help topic ${backquotedList(args)}\n`);
            c.root().usage();
          } else {
            found.cmd.initDefaultHelpFlag();
            found.cmd.help();
          }
        },
      });
    }
    this.removeCommand(this.helpCommand);
    this.addCommand(this.helpCommand);
  }

  /** Adds cobra's "completion" command (listed by etcdctl's help, scripts not provided). */
  initDefaultCompletionCmd(): void {
    if (!this.hasSubCommands()) return;
    if (this.#children.some((c) => c.name() === "completion")) return;
    const completion = new Command({
      use: "completion",
      short: "Generate the autocompletion script for the specified shell",
      long: `Generate the autocompletion script for ${this.name()} for the specified shell.\n` +
        "See each sub-command's help for details on how to use the generated script.\n",
      args: noArgs,
    });
    this.addCommand(completion);
    for (const shell of completionShells(this.name())) {
      const c = new Command({
        use: shell.name,
        short: `Generate the autocompletion script for ${shell.name}`,
        long: shell.long,
        args: noArgs,
        disableFlagsInUseLine: shell.name === "bash",
        run: () => {
          throw new CommandError(`shell completion scripts are not provided by detcdctl`);
        },
      });
      c.flags().bool("no-descriptions", false, "disable completion descriptions");
      completion.addCommand(c);
    }
  }
}

function backquotedList(args: string[]): string {
  return "[" + args.map((a) => (a.includes("`") ? JSON.stringify(a) : "`" + a + "`")).join(" ") +
    "]";
}

function hasNoOptDefVal(name: string, fs: FlagSet): boolean {
  const f = fs.lookup(name);
  return f !== undefined && f.noOptDefVal !== "";
}

function shortHasNoOptDefVal(name: string, fs: FlagSet): boolean {
  if (name.length === 0) return false;
  const f = fs.shorthandLookup(name[0]);
  return f !== undefined && f.noOptDefVal !== "";
}

/** cobra's stripFlags: the words of args that are neither flags nor (guessed) flag values. */
export function stripFlags(args: string[], c: Command): string[] {
  if (args.length === 0) return args;
  c.mergePersistentFlags();
  const commands: string[] = [];
  const flags = c.flags();
  let rest = args;
  while (rest.length > 0) {
    const s = rest[0];
    rest = rest.slice(1);
    if (s === "--") break;
    const longWithValue = s.startsWith("--") && !s.includes("=") &&
      !hasNoOptDefVal(s.slice(2), flags);
    const shortWithValue = s.startsWith("-") && !s.includes("=") && s.length === 2 &&
      !shortHasNoOptDefVal(s.slice(1), flags);
    if (longWithValue || shortWithValue) {
      if (rest.length <= 1) break;
      rest = rest.slice(1);
      continue;
    }
    if (s !== "" && !s.startsWith("-")) commands.push(s);
  }
  return commands;
}

function argsMinusFirst(args: string[], x: string): string[] {
  const i = args.indexOf(x);
  return i < 0 ? args : [...args.slice(0, i), ...args.slice(i + 1)];
}

function legacyArgs(cmd: Command, args: string[]): string | undefined {
  if (!cmd.hasSubCommands()) return undefined;
  if (!cmd.hasParent() && args.length > 0) {
    return `unknown command "${args[0]}" for "${cmd.commandPath()}"${cmd.findSuggestions(args[0])}`;
  }
  return undefined;
}

function flagUsagesDefault(fs: FlagSet): string {
  const lines: string[] = [];
  let maxlen = 0;
  const varnames: Record<string, string> = {
    bool: "",
    duration: "duration",
    int64: "int",
    int: "int",
    uint64: "uint",
    stringSlice: "strings",
    string: "string",
  };
  fs.visitAll((flag) => {
    if (flag.hidden) return;
    let line = flag.shorthand !== ""
      ? `  -${flag.shorthand}, --${flag.name}`
      : `      --${flag.name}`;
    let usage = flag.usage;
    let varname = varnames[flag.value.type()] ?? flag.value.type();
    const bq = /`([^`]*)`/.exec(usage);
    if (bq) {
      varname = bq[1];
      usage = usage.replace(/`([^`]*)`/, "$1");
    }
    if (varname !== "") line += " " + varname;
    if (flag.noOptDefVal !== "") {
      const t = flag.value.type();
      if (t === "string") line += `[="${flag.noOptDefVal}"]`;
      else if (t === "bool") {
        if (flag.noOptDefVal !== "true") line += `[=${flag.noOptDefVal}]`;
      } else line += `[=${flag.noOptDefVal}]`;
    }
    line += "\x00";
    if (line.length > maxlen) maxlen = line.length;
    line += usage;
    const zero = ["false", "", "0", "0s", "[]"].includes(flag.defValue);
    if (!zero) {
      line += flag.value.type() === "string"
        ? ` (default ${JSON.stringify(flag.defValue)})`
        : ` (default ${flag.defValue})`;
    }
    lines.push(line);
  });
  return lines.map((line) => {
    const sidx = line.indexOf("\x00");
    return line.slice(0, sidx) + " " + " ".repeat(maxlen - sidx) + " " + line.slice(sidx + 1) +
      "\n";
  }).join("");
}

/** cobra's default usage template (used for commands built outside etcdctl's root). */
function defaultUsage(c: Command): string {
  let out = "Usage:";
  if (c.runnable()) out += `\n  ${c.useLine()}`;
  if (c.hasAvailableSubCommands()) out += `\n  ${c.commandPath()} [command]`;
  if (c.aliases.length > 0) out += `\n\nAliases:\n  ${[c.name(), ...c.aliases].join(", ")}`;
  if (c.hasAvailableSubCommands()) {
    const cmds = c.commands();
    const pad = Math.max(11, ...cmds.map((x) => x.name().length));
    out += "\n\nAvailable Commands:";
    for (const x of cmds) {
      if (x.isAvailableCommand() || x.name() === "help") {
        out += `\n  ${x.name().padEnd(pad)} ${x.short}`;
      }
    }
  }
  const local = c.localFlags();
  if (local.hasAvailableFlags()) {
    out += "\n\nFlags:\n" + flagUsagesDefault(local).replace(/\s+$/, "");
  }
  const inherited = c.inheritedFlags();
  if (inherited.hasAvailableFlags()) {
    out += "\n\nGlobal Flags:\n" + flagUsagesDefault(inherited).replace(/\s+$/, "");
  }
  if (c.hasAvailableSubCommands()) {
    out += `\n\nUse "${c.commandPath()} [command] --help" for more information about a command.`;
  }
  return out + "\n";
}

function completionShells(root: string): { name: string; long: string }[] {
  return [
    {
      name: "bash",
      long: `Generate the autocompletion script for the bash shell.

This script depends on the 'bash-completion' package.
If it is not installed already, you can install it via your OS's package manager.

To load completions in your current shell session:

\tsource <(${root} completion bash)

To load completions for every new session, execute once:

#### Linux:

\t${root} completion bash > /etc/bash_completion.d/${root}

#### macOS:

\t${root} completion bash > $(brew --prefix)/etc/bash_completion.d/${root}

You will need to start a new shell for this setup to take effect.
`,
    },
    {
      name: "fish",
      long: `Generate the autocompletion script for the fish shell.

To load completions in your current shell session:

\t${root} completion fish | source

To load completions for every new session, execute once:

\t${root} completion fish > ~/.config/fish/completions/${root}.fish

You will need to start a new shell for this setup to take effect.
`,
    },
    {
      name: "powershell",
      long: `Generate the autocompletion script for powershell.

To load completions in your current shell session:

\t${root} completion powershell | Out-String | Invoke-Expression

To load completions for every new session, add the output of the above command
to your powershell profile.
`,
    },
    {
      name: "zsh",
      long: `Generate the autocompletion script for the zsh shell.

If shell completion is not already enabled in your environment you will need
to enable it.  You can execute the following once:

\techo "autoload -U compinit; compinit" >> ~/.zshrc

To load completions in your current shell session:

\tsource <(${root} completion zsh); compdef _${root} ${root}

To load completions for every new session, execute once:

#### Linux:

\t${root} completion zsh > "\${fpath[1]}/_${root}"

#### macOS:

\t${root} completion zsh > $(brew --prefix)/share/zsh/site-functions/_${root}

You will need to start a new shell for this setup to take effect.
`,
    },
  ];
}
