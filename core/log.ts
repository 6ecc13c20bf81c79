/**
 * Structured logging as core sees it: a message plus fields, like etcd's zap logger. The server
 * decides the format (JSON lines like etcd's zap, or capnslog text) and where lines go.
 */
export type LogFields = Record<string, unknown>;

/** Leveled, structured logger. `caller` names the module, like zap's caller field. */
export interface Logger {
  debug(caller: string, msg: string, fields?: LogFields): void;
  info(caller: string, msg: string, fields?: LogFields): void;
  warn(caller: string, msg: string, fields?: LogFields): void;
  error(caller: string, msg: string, fields?: LogFields): void;
}

/** Discards everything (tests that do not look at logs). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
