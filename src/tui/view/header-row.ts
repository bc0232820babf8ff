// The conversation header under the status line: what this conversation is and, for a DM, the
// peer's presence and trust in words (verified, not verified yet, or a key change waiting for a
// decision, with what to do about it). Also the input prompt, which says when a key change waits.
// Protocol v2 (PROTOCOL.md §4.4, §6): the new key is refused until the user decides; the
// conversation goes on with the key pinned before.
import type { PeerView } from "../../client/types.js";
import { promptFor } from "../state/conversations.js";
import type { Conversation, TuiState } from "../state/state.js";
import { shownLine, shownName } from "./outside-text.js";
import { fitSegments, seg, type Row, type Segment } from "./row.js";
import { STYLE } from "./style.js";

function peerOf(state: TuiState, conversation: Conversation): PeerView | undefined {
  return conversation.peer === undefined ? undefined : state.peers.find((p) => p.username === conversation.peer);
}

/** True when the peer of this DM has a key change waiting for a decision (the prompt turns red). */
export function sendingBlocked(state: TuiState, conversation: Conversation): boolean {
  return peerOf(state, conversation)?.trust === "key-changed";
}

function headerSegments(state: TuiState, conversation: Conversation): Segment[] {
  // The title comes from a parsed conversation id, the topic and the members from peers: all drawn through the sanitiser.
  const title = seg(shownLine(conversation.title), STYLE.header);
  switch (conversation.kind) {
    case "lobby": {
      const online = state.peers.filter((p) => p.online).length;
      // Protocol v2: a lobby line reaches those in the lobby's group now (joining takes a moment after connecting).
      const readers = state.lobbyMembers === undefined ? "" : ` · ${state.lobbyMembers.length} can read new lines`;
      return [title, seg(` — everyone online reads it · ${online} online${readers}`, STYLE.info)];
    }
    case "room": {
      const members = state.rooms.find((r) => r.room === conversation.id)?.members;
      // The topic first (it says what the room is for); the first line of it only.
      const topic = conversation.topic === undefined ? [] : [seg(` — ${shownLine(conversation.topic.text.split("\n", 1)[0] ?? "")}`, STYLE.strong)];
      if (members === undefined) return [title, ...topic, seg(" — you are not in this room (/join to enter it)", STYLE.info)];
      return [title, ...topic, seg(` — ${members.length} member${members.length === 1 ? "" : "s"}: ${members.map(shownName).join(", ")}`, STYLE.info)];
    }
    case "dm": {
      const name = shownName(conversation.peer ?? conversation.title.slice(1));
      const peer = peerOf(state, conversation);
      if (peer === undefined) return [title, seg(` — ${name} is unknown here: messages fail until ${name} has connected once`, STYLE.warn)];
      const presence = peer.online ? seg(" ● online", STYLE.ok) : seg(" ○ offline (messages wait for them)", STYLE.info);
      switch (peer.trust) {
        case "key-changed":
          return [
            seg(`${shownLine(conversation.title)} ⚠ KEY CHANGED — new key refused until you decide: /verify ${name}, compare with ${name}, then /trust (or /accept ${name})`, STYLE.alarm),
          ];
        case "verified":
          return [title, seg(" ✓ verified", STYLE.ok), presence];
        case "unverified":
          return [title, seg(` · not verified (/verify ${name})`, STYLE.info), presence];
      }
    }
  }
}

export function headerRow(state: TuiState, conversation: Conversation, width: number): Row {
  return { key: "header", segments: fitSegments(headerSegments(state, conversation), Math.max(1, width)) };
}

/**
 * The prompt: "[#ops] > ", "[@bob ⚠ key changed] > " while a key change waits for a decision, "[#ops]
 * (draft) > " while the input is a half-typed line restored on arriving, and "[#ops] (↑ draft) > "
 * once a command typed over it has set it aside in the history.
 */
export function promptOf(state: TuiState, conversation: Conversation): { readonly text: string; readonly blocked: boolean } {
  const blocked = sendingBlocked(state, conversation);
  const text = promptFor(blocked ? `${conversation.title} ⚠ key changed` : conversation.title);
  const mark = state.draftRestored ? "(draft) " : state.draftAside ? "(↑ draft) " : "";
  return { text: mark === "" ? text : text.replace(/> $/, `${mark}> `), blocked };
}
