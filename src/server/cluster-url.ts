// The PostgreSQL store URL: where chat-relay takes it from, and how the relay may show it (never
// its credentials: every log line and every sentence about the database names it by host:port).
// Light on purpose (no driver): chat-relay reads it on every start, store or not.
import { RelayStartError } from "./startup.js";

/** The environment variable naming the store when --store is not given. */
export const STORE_ENV = "SECURECHAT_RELAY_STORE";

/** The store URL of this invocation: --store wins over the environment; undefined for the embedded store. */
export function storeUrlOf(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = flag ?? env[STORE_ENV];
  if (url === undefined || url === "") return undefined;
  if (!isPostgresUrl(url)) {
    throw new RelayStartError(`the store must be a postgres:// or postgresql:// URL (from ${flag !== undefined ? "--store" : STORE_ENV}); without one the relay keeps relay.db in its data dir`);
  }
  return url;
}

/** "host:port" of a postgres:// URL (default port 5432); "the database" when it does not parse. */
export function databaseHostOf(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname === "" ? "localhost" : u.hostname;
    return `${host}:${u.port === "" ? "5432" : u.port}`;
  } catch {
    return "the database";
  }
}

/** `text` with the URL's password (and the whole URL) taken out, for messages built from driver errors. */
export function redactSecrets(text: string, url: string): string {
  let out = text.split(url).join(databaseHostOf(url));
  try {
    const u = new URL(url);
    if (u.password !== "") {
      out = out.split(u.password).join("***");
      const decoded = decodeURIComponent(u.password);
      if (decoded !== "") out = out.split(decoded).join("***");
    }
  } catch {
    // not a URL: nothing more to hide than the text itself
  }
  return out;
}

/** Whether `url` names a PostgreSQL database (the store switch of chat-relay). */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}
