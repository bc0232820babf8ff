// Where the relay keeps its state when --data-dir is not given (XDG base directory spec).
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

/** `$XDG_STATE_HOME/secure-chat/relay`, else `~/.local/state/secure-chat/relay`. */
export function defaultRelayDataDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env.XDG_STATE_HOME;
  // The spec says a relative XDG path is invalid and must be ignored.
  const base = xdg !== undefined && xdg !== "" && isAbsolute(xdg) ? xdg : join(home, ".local", "state");
  return join(base, "secure-chat", "relay");
}
