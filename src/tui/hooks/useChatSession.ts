// Where React meets the session: the UI state, fed by the session's events. Events are
// stamped with the local clock and folded into one dispatch, so a burst (a queue delivered
// after reconnecting) costs one render, not one per message. Incoming events are drawn at most
// every EVENT_FRAME_MS: a busy room then never fills the frame budget, and a key the user
// presses is drawn at once instead of waiting behind message frames.
import { useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore } from "react";
import type { BacklogItem, ChatSession, SessionEvent, SessionSnapshot } from "../../client/types.js";
import { shouldRing } from "../state/attention.js";
import { createInitialState, reducer, type Action, type StartupNotice } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";
import { LOBBY_ID } from "../state/conversations.js";
import { readPoint } from "../state/read-point.js";
import { createStore } from "../state/store.js";
import { SETTINGS_NAME, parseSettings, serializeSettings } from "../state/settings.js";
import { connectionWithUiText, messageWithUiText, withUiText } from "../commands/error-text.js";

/** Session events are folded and drawn at most this often (a new message shows within it). */
export const EVENT_FRAME_MS = 50;

export interface UseChatSessionOptions {
  readonly session: ChatSession;
  readonly clock: () => number;
  /** Called (at most once per burst) for a DM, a mention, or a key change. */
  readonly bell: () => void;
  readonly notices?: readonly StartupNotice[];
  readonly backlog?: readonly BacklogItem[];
  readonly mouse?: boolean;
}

export interface ChatState {
  /** The state this render shows. */
  readonly state: TuiState;
  /** The latest state, including actions dispatched since this render. */
  readonly getState: () => TuiState;
  readonly dispatch: (action: Action) => void;
}

/** The snapshot with the connection's reason in the UI's words, as later connection events get it. */
function withUiConnection(snapshot: SessionSnapshot): SessionSnapshot {
  return { ...snapshot, connection: connectionWithUiText(snapshot.connection) };
}

export function useChatSession(options: UseChatSessionOptions): ChatState {
  const { session, clock, bell } = options;
  const [store] = useState(() =>
    createStore(reducer, createInitialState({
      me: options.session.me,
      serverLabel: options.session.serverLabel,
      snapshot: withUiConnection(options.session.snapshot()),
      ...(options.notices ? { notices: options.notices } : {}),
      ...(options.backlog ? { backlog: options.backlog.map((m) => ("type" in m ? m : messageWithUiText(m))) } : {}),
      ...(options.mouse !== undefined ? { mouse: options.mouse } : {}),
      settings: parseSettings(options.session.loadSetting?.(SETTINGS_NAME)),
      atMs: options.clock(),
    })));
  const state = useSyncExternalStore(store.subscribe, store.getState);
  const { dispatch, getState } = store;

  // Settings changed by a command (or by closing / reopening a conversation) are kept at once.
  const keptSettings = useRef(state.settings);
  useEffect(() => {
    if (keptSettings.current === state.settings) return;
    keptSettings.current = state.settings;
    session.saveSetting?.(SETTINGS_NAME, serializeSettings(state.settings));
  }, [session, state.settings]);

  // What the user read here goes to their other devices (PROTOCOL.md §11.3); the session sends
  // at most one marker per conversation every few seconds, whatever this asks.
  const read = readPoint(state);
  const readKey = read === undefined ? undefined : `${read.conversationId} ${read.from} ${read.id}`;
  const lastRead = useRef<string | undefined>(undefined);
  useEffect(() => {
    if (read === undefined || readKey === lastRead.current) return;
    lastRead.current = readKey;
    session.markRead?.(read.conversationId, { from: read.from, id: read.id });
  }, [session, readKey]);

  // A layout effect runs inside Ink's synchronous first render, so the subscription starts in
  // the same tick as the snapshot above: no event can fall between the two.
  useLayoutEffect(() => {
    let queue: { event: SessionEvent; atMs: number }[] = [];
    let scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
    let lastFlush = Number.NEGATIVE_INFINITY;
    const flush = (): void => {
      scheduled = undefined;
      lastFlush = performance.now();
      const events = queue;
      queue = [];
      const settings = getState().settings;
      if (events.some((e) => shouldRing(e.event, session.me, settings))) bell();
      const first = events[0];
      if (events.length === 1 && first) dispatch({ type: "session", event: first.event, atMs: first.atMs });
      else if (events.length > 1) dispatch({ type: "session-batch", events });
    };
    // Protocol v2 (kick exists only there): who is in the lobby's group now, so the header can say
    // how many read a lobby line. Read once now (I may be in it already) and after each membership
    // line of the lobby: my own entry (at start, after each reconnect) is a `joined` line too.
    let lobbyRead = 0;
    let lobbyShown = "";
    const readLobby = (): void => {
      const asked = ++lobbyRead;
      session.members(LOBBY_ID).then((o) => {
        if (!o.ok || asked !== lobbyRead) return;
        const key = o.value.join(",");
        if (key === lobbyShown) return;
        lobbyShown = key;
        dispatch({ type: "lobby-members", members: o.value });
      }, () => undefined);
    };
    const v2 = session.kick !== undefined;
    if (v2) readLobby();
    const unsubscribe = session.subscribe((event) => {
      if (v2 && event.type === "membership" && event.conversationId === LOBBY_ID) readLobby();
      // With several relays (--server a,b) the one in use changes on a move: the status row follows.
      if (event.type === "connection" && session.serverLabel !== getState().serverLabel) dispatch({ type: "server-label", label: session.serverLabel });
      queue.push({ event: withUiText(event), atMs: clock() });
      if (scheduled !== undefined) return;
      // The first event after a quiet spell is drawn at the next tick; within a busy spell, at
      // the end of the current event frame.
      const wait = lastFlush + EVENT_FRAME_MS - performance.now();
      scheduled = wait <= 0 ? setImmediate(flush) : setTimeout(flush, wait);
    });
    return () => {
      unsubscribe();
      if (scheduled !== undefined) {
        clearImmediate(scheduled as NodeJS.Immediate);
        clearTimeout(scheduled as NodeJS.Timeout);
      }
    };
  }, [session, clock, bell, dispatch, getState]);

  return { state, getState, dispatch };
}
