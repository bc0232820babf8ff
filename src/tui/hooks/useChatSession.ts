// Where React meets the session: the UI state, fed by the session's events. Events are
// stamped with the local clock and folded into one dispatch per tick, so a burst (a queue
// delivered after reconnecting) costs one render, not one per message.
import { useLayoutEffect, useState, useSyncExternalStore } from "react";
import type { ChatMessage, ChatSession, SessionEvent } from "../../client/types.js";
import { shouldRing } from "../state/attention.js";
import { createInitialState, reducer, type Action, type StartupNotice } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";
import { createStore } from "../state/store.js";

export interface UseChatSessionOptions {
  readonly session: ChatSession;
  readonly clock: () => number;
  /** Called (at most once per burst) for a DM, a mention, or a key change. */
  readonly bell: () => void;
  readonly notices?: readonly StartupNotice[];
  readonly pending?: readonly ChatMessage[];
}

export interface ChatState {
  /** The state this render shows. */
  readonly state: TuiState;
  /** The latest state, including actions dispatched since this render. */
  readonly getState: () => TuiState;
  readonly dispatch: (action: Action) => void;
}

export function useChatSession(options: UseChatSessionOptions): ChatState {
  const { session, clock, bell } = options;
  const [store] = useState(() =>
    createStore(reducer, createInitialState({
      me: options.session.me,
      serverLabel: options.session.serverLabel,
      snapshot: options.session.snapshot(),
      ...(options.notices ? { notices: options.notices } : {}),
      ...(options.pending ? { pending: options.pending } : {}),
      atMs: options.clock(),
    })));
  const state = useSyncExternalStore(store.subscribe, store.getState);
  const { dispatch, getState } = store;

  // A layout effect runs inside Ink's synchronous first render, so the subscription starts in
  // the same tick as the snapshot above: no event can fall between the two.
  useLayoutEffect(() => {
    let queue: { event: SessionEvent; atMs: number }[] = [];
    let scheduled: NodeJS.Immediate | undefined;
    const flush = (): void => {
      scheduled = undefined;
      const events = queue;
      queue = [];
      if (events.some((e) => shouldRing(e.event, session.me))) bell();
      const first = events[0];
      if (events.length === 1 && first) dispatch({ type: "session", event: first.event, atMs: first.atMs });
      else if (events.length > 1) dispatch({ type: "session-batch", events });
    };
    const unsubscribe = session.subscribe((event) => {
      queue.push({ event, atMs: clock() });
      scheduled ??= setImmediate(flush);
    });
    return () => {
      unsubscribe();
      if (scheduled !== undefined) clearImmediate(scheduled);
    };
  }, [session, clock, bell, dispatch]);

  return { state, getState, dispatch };
}
