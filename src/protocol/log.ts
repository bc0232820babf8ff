// Structured logging: one JSON object per line. The sink is injected (the relay writes to
// stderr, the TUI to a file; tests collect lines), so this module does no IO itself.
// Never log message content or key material: ids, names, codes and sizes only.

export type LogLevel = "debug" | "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined | readonly string[]>>;

export interface Logger {
  log(level: LogLevel, event: string, fields?: LogFields): void;
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export function isLogLevel(s: unknown): s is LogLevel {
  return typeof s === "string" && s in RANK;
}

/** A logger writing `{"t":..., "level":..., "event":..., ...fields}` lines at or above minLevel. */
export function jsonLineLogger(write: (line: string) => void, minLevel: LogLevel = "info", now: () => Date = () => new Date()): Logger {
  const log = (level: LogLevel, event: string, fields: LogFields = {}): void => {
    if (RANK[level] < RANK[minLevel]) return;
    write(`${JSON.stringify({ t: now().toISOString(), level, event, ...fields })}\n`);
  };
  return {
    log,
    debug: (e, f) => log("debug", e, f),
    info: (e, f) => log("info", e, f),
    warn: (e, f) => log("warn", e, f),
    error: (e, f) => log("error", e, f),
  };
}

export const nullLogger: Logger = jsonLineLogger(() => {}, "error");
