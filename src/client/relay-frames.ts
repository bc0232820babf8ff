// The frames the relay sends unasked (every one that is not an answer to a request;
// relay-connection.ts matches those), handed to the part each is for. Moved out of
// chat-client.ts as it was; ChatClient passes its parts in.
import type { SessionResponse } from "../gen/securechat/v1/chat.js";
import type { Logger } from "../protocol/log.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import type { ClientDevices } from "./client-devices.js";
import { describeRefusal } from "./errors.js";
import type { Inbox } from "./inbox.js";
import type { KeyDirectory } from "./key-directory.js";
import type { LocalIdentity } from "./local-identity.js";
import type { MlsSession } from "./mls/session.js";
import type { Outbox } from "./outbox.js";
import type { RelayConnection } from "./relay-connection.js";
import type { Rooms } from "./rooms.js";
import type { SessionEvent } from "./types.js";

/** The parts of ChatClient a frame goes to. */
export interface RelayFrameParts {
  readonly mls: MlsSession | undefined;
  readonly local: LocalIdentity;
  readonly log: Logger;
  readonly connection: RelayConnection;
  readonly inbox: Inbox;
  readonly outbox: Outbox;
  readonly directory: KeyDirectory;
  readonly devs: ClientDevices;
  readonly rooms: Rooms;
  readonly emit: (e: SessionEvent) => void;
}

/** Every frame that is not an answer to a request (relay-connection.ts matches those). */
export async function relayFrame(p: RelayFrameParts, frame: NonNullable<SessionResponse["frame"]>): Promise<void> {
  switch (frame.$case) {
    case "deliver": {
      const v1 = p.mls === undefined ? frame.value.items : p.mls.deliver(frame.value.items);
      if (v1.length > 0 && p.local.kind === "linked") {
        // A linked device has no RSA private key (local-identity.ts): a v1 envelope cannot be
        // for it. Acked, so the relay does not keep sending it.
        p.log.warn("session.v1_on_linked_device", { count: v1.length });
        void p.connection.current?.send({ frame: { $case: "ack", value: { seqs: v1.map((d) => d.seq) } } });
      } else if (v1.length > 0) p.inbox.deliver(v1);
      return;
    }
    case "sendResult":
      if (p.mls?.onSendResult(frame.value) === true) return;
      p.outbox.onSendResult(frame.value);
      return;
    case "keyPackageStatus":
      p.mls?.keyPackageStatus(frame.value.oneTimeLeft);
      return;
    case "directoryUpdate":
      p.directory.update(frame.value.entries);
      p.devs.refreshNewerDeviceLists(frame.value.entries);
      return;
    case "roomEvent":
      // v2: membership changes are commits, shown from the group (a relay's RoomEvent is not one).
      if (p.mls === undefined) p.rooms.onRoomEvent(frame.value);
      return;
    case "error":
      // A RequestError no request waits for (late, or about the session itself).
      p.emit({ type: "notice", level: "warn", text: `relay: ${describeRefusal(frame.value.code, frame.value.detail)}` });
      return;
    case "notice":
      p.emit({ type: "notice", level: "info", text: `relay: ${sanitizeLine(frame.value.text).slice(0, 300)}` });
      return;
    case "roomList":
    case "memberList":
    case "keyList":
    case "pong":
    case "challenge":
    case "welcome":
    // MLS Delivery Service answers (PROTOCOL.md §8.2) come to their requests; late ones are dropped.
    case "keyPackageList":
    case "groupInfoResult":
    case "commitResult":
    case "commitList":
    case "deviceListResult":
      return;
    default: {
      const never: never = frame;
      return never;
    }
  }
}
