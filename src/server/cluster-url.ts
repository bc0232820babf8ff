// The PostgreSQL store URL as the relay may show it: never its credentials. Every log line and
// every sentence about the database names it by host:port only.

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
