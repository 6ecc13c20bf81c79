import type { LogFields, Logger } from "../core/log.ts";

/** etcd's log levels, least to most severe. */
export const logLevels = ["debug", "info", "warn", "error", "panic", "fatal"] as const;
export type LogLevel = typeof logLevels[number];

/** Where lines go; stderr by default like etcd's `--log-outputs=default`. */
export type LineSink = (line: string) => void;

const encoder = new TextEncoder();
/** Writes a line to stderr synchronously so that a crash never loses the lines before it. */
export const stderrSink: LineSink = (line) => {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
};

/**
 * The server's logger. `zap` writes one JSON object per line like etcd 3.4's `--logger=zap`
 * (level, ts, caller, msg, then fields); `capnslog` writes etcd 3.4's older text lines.
 */
export function createLogger(
  options: { format: "zap" | "capnslog"; level: LogLevel; sink?: LineSink; now?: () => Date },
): Logger {
  const sink = options.sink ?? stderrSink;
  const now = options.now ?? (() => new Date());
  const threshold = logLevels.indexOf(options.level);
  const emit = (level: LogLevel, caller: string, msg: string, fields?: LogFields) => {
    if (logLevels.indexOf(level) < threshold) return;
    if (options.format === "zap") {
      sink(JSON.stringify({ level, ts: now().toISOString(), caller, msg, ...fields }));
    } else {
      sink(capnsLine(now(), level, caller, msg, fields));
    }
  };
  return {
    debug: (caller, msg, fields) => emit("debug", caller, msg, fields),
    info: (caller, msg, fields) => emit("info", caller, msg, fields),
    warn: (caller, msg, fields) => emit("warn", caller, msg, fields),
    error: (caller, msg, fields) => emit("error", caller, msg, fields),
  };
}

function capnsLine(t: Date, level: LogLevel, caller: string, msg: string, fields?: LogFields) {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const stamp = `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
    `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}.` +
    `${pad(t.getUTCMilliseconds(), 3)}000`;
  const letter = { debug: "D", info: "I", warn: "W", error: "E", panic: "C", fatal: "C" }[level];
  const pkg = caller.split("/").slice(0, -1).join("/") || caller;
  const extra = fields && Object.keys(fields).length > 0
    ? " (" + Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") + ")"
    : "";
  return `${stamp} ${letter} | ${pkg}: ${msg}${extra}`;
}
