// How ChatClient's parts are built and wired to each other (chat-client.ts is the facade over
// them): the options, the relay connection and its hooks, rooms, the key directory, inbox,
// outbox, device lists (client-devices.ts), the MLS session (protocol v2) and the trust
// decisions. Moved out of ChatClient's constructor as it was; what the parts call back into the
// client (its events, the relay's limits, frames, /away) comes in as ClientHooks.
import type { SessionResponse, Welcome } from "../gen/securechat/v1/chat.js";
import type { Limits } from "../protocol/limits.js";
import type { PrivateIdentity } from "../protocol/keys.js";
import { nullLogger, type Logger } from "../protocol/log.js";
import { AtRestCipher } from "./at-rest.js";
import { DEFAULT_RECONNECT, type ReconnectPolicy } from "./backoff.js";
import { ClientDevices } from "./client-devices.js";
import { MessageHistory } from "./history.js";
import { Inbox } from "./inbox.js";
import { KeyDirectory } from "./key-directory.js";
import { KnownRelays } from "./known-relays.js";
import { asLocalIdentity, privateView, type LocalIdentity } from "./local-identity.js";
import type { ContentLayer } from "./mls/content-api.js";
import { contentLayerOver } from "./mls/content.js";
import { CLUSTER_SETTLE_MS } from "./mls/content-order.js";
import { MlsOutboxStore } from "./mls/outbox-store.js";
import { MlsSession } from "./mls/session.js";
import type { MlsKeyStore } from "./mls-store.js";
import { Outbox } from "./outbox.js";
import { OutboxPump } from "./outbox-pump.js";
import { moveV1Outbox, type V1OutboxMoved } from "./outbox-upgrade.js";
import { SendPacer } from "./pacer.js";
import { RelayConnection } from "./relay-connection.js";
import type { RelayTransport } from "./relay-transport.js";
import { Rooms } from "./rooms.js";
import type { ClientStateStore } from "./state-store.js";
import type { KeepalivePolicy } from "./transport.js";
import { TrustDecisions } from "./trust-decisions.js";
import type { TrustStore } from "./trust-store.js";
import type { MessageKind, SessionEvent } from "./types.js";
import { upgradeTimeKeeper } from "./v1-after-upgrade.js";

export interface ChatClientOptions {
  /**
   * Who I am (PROTOCOL.md §4.5): the primary's identity (`<username>_key.pem`), or a LocalIdentity
   * (local-identity.ts), which may be a linked device (its device key; protocol v2 only).
   */
  readonly identity: PrivateIdentity | LocalIdentity;
  /**
   * host:port of the relay, or the relays of one service in order (server-list.ts: the first
   * that answers is used, a session that ends moves to the next).
   */
  readonly server: string | readonly string[];
  /** How the status line names a single relay (default: `server`; a list names the one in use). */
  readonly serverLabel?: string;
  readonly trust: TrustStore;
  readonly state: ClientStateStore;
  readonly logger?: Logger;
  readonly clock?: () => number;
  /**
   * How to reach the relay (PROTOCOL.md §9). Default: TLS with the relay's certificate pinned on
   * first use, in memory only; chat-tui passes its known_relays file.
   */
  readonly transport?: RelayTransport;
  /** Keepalive pings (defaults: every 15 s, 10 s to answer); tests shorten them. */
  readonly keepalive?: KeepalivePolicy;
  /** The primary's device name (PROTOCOL.md §4.5): its first list names it so, and a kept list is renamed to it. */
  readonly deviceName?: string;
  /** Keep the messages shown in the state database (text encrypted at rest); default true. */
  readonly history?: boolean;
  /** false: do not reconnect (tests of single sessions). */
  readonly reconnect?: ReconnectPolicy | false;
  /** Called before each connection attempt (zero-setup mode hosts a relay when none answers). */
  readonly beforeConnect?: (attempt: number) => Promise<void>;
  readonly random?: () => number;
  /**
   * Protocol v2 (MLS, PROTOCOL.md): the MLS key store (`<username>_mls.db`, closed with the
   * client) and the content layer (default: mls/content.ts over `state`). Without it the client
   * speaks protocol v1.
   */
  readonly v2?: { readonly store: MlsKeyStore; readonly content?: ContentLayer };
}
/** What the parts call back into the client (chat-client.ts). */
export interface ClientHooks {
  readonly emit: (e: SessionEvent) => void;
  /** The relay's limits, from the last Welcome (defaults until then). */
  readonly limits: () => Limits;
  readonly subscribe: (listener: (event: SessionEvent) => void) => () => void;
  readonly onWelcome: (w: Welcome) => void;
  readonly onFrame: (frame: NonNullable<SessionResponse["frame"]>) => Promise<void>;
  /** A peer's message shown: the /away answer. */
  readonly answerWhileAway: (conversationId: string, sender: string, kind: MessageKind) => void;
}

/** The parts, wired (ChatClient keeps them in its fields of the same names). */
export interface ClientParts {
  readonly local: LocalIdentity;
  readonly me: string;
  readonly fixedLabel: string | undefined;
  readonly clock: () => number;
  readonly history: MessageHistory | undefined;
  readonly stopRecording: () => void;
  readonly connection: RelayConnection;
  readonly rooms: Rooms;
  readonly directory: KeyDirectory;
  readonly inbox: Inbox;
  readonly outbox: Outbox;
  readonly devs: ClientDevices;
  readonly upgradedOutbox: V1OutboxMoved | undefined;
  readonly mls: MlsSession | undefined;
  readonly decisions: TrustDecisions;
}

export function wireClient(o: ChatClientOptions, hooks: ClientHooks): ClientParts {
  // Bound late, as the client's fields were: the connection's hooks and the directory call them.
  let inbox: Inbox;
  let devs: ClientDevices;
  let mls: MlsSession | undefined;
  const local = asLocalIdentity(o.identity);
  if (local.kind === "linked" && o.v2 === undefined) throw new TypeError("a linked device speaks protocol v2 only (it has no RSA private key)");
  // What the older parts take; on a linked device its RSA half throws (v1 only), local-identity.ts.
  const identity = privateView(local);
  const me = local.username;
  const servers = typeof o.server === "string" ? [o.server] : [...o.server];
  if (servers.length === 0) throw new TypeError("ChatClient needs at least one server address");
  const fixedLabel = servers.length === 1 ? (o.serverLabel ?? servers[0]) : undefined;
  const log = o.logger ?? nullLogger;
  const clock = o.clock ?? Date.now;
  const { emit, limits } = hooks;
  // v2: the time of this client's first v2 Welcome, up to which v1 envelopes may still speak
  // (PROTOCOL.md §14, v1-after-upgrade.ts); recorded at that Welcome, kept in the state db.
  const upgradedAtMs = o.v2 === undefined ? undefined : upgradeTimeKeeper(o.state, clock, (e) => {
    log.warn("upgrade.time-not-kept", { reason: e instanceof Error ? e.message : String(e) });
  });
  const transport = o.transport ?? { kind: "pinned", pins: KnownRelays.inMemory() };
  // Linking uses the first address: the rendezvous lives in one relay's memory, so both
  // devices must meet at the same relay, and both try the list in the same order.
  const linking = { server: servers[0]!, transport, store: o.v2?.store };
  if (transport.kind === "plaintext") {
    log.warn("session.plaintext", { message: "connecting without TLS (a plaintext transport was asked for): anyone on the path can read metadata and hijack the session" });
  }
  const atRest = new AtRestCipher(identity);
  // The relay's rate and burst, kept by the client (sends and room requests spend its tokens).
  const pacer = new SendPacer(clock);
  pacer.reset(limits().messagesPerSecond, limits().burst); // until a Welcome says
  // Writes the outbox at that pace, in order; "too fast" answers go back into it.
  const pump = new OutboxPump({ pacer, envelopeOf: (id) => o.state.outboxGet(id)?.envelope, log });
  const history = o.history === false ? undefined : new MessageHistory(o.state, atRest, log);
  // The history is a subscriber like the UI, the first one: it keeps what the UI is shown.
  const stopRecording = history === undefined ? () => {} : hooks.subscribe(history.onEvent);
  const connection = new RelayConnection({
    identity: local, server: servers, transport, keepalive: o.keepalive, reconnect: o.reconnect ?? DEFAULT_RECONNECT,
    beforeConnect: o.beforeConnect, clock, random: o.random ?? Math.random, log, pacer,
    protocolVersion: o.v2 !== undefined ? 2 : 1,
    hooks: {
      welcomed: (w) => {
        upgradedAtMs?.();
        hooks.onWelcome(w);
        mls?.welcomed(w.queued);
        devs.devicesWelcomed(w);
      },
      // v2 sends no v1 envelope (relays refuse them): its v1 outbox was moved to the v2 one.
      connected: (stream) => pump.start(stream, o.v2 === undefined ? o.state.outbox().map((e) => e.id) : [], limits()),
      frame: (f) => hooks.onFrame(f),
      ended: () => {
        mls?.ended();
        pump.stop();
        inbox.sessionEnded();
      },
      emit,
    },
  });
  const connected = (): boolean => connection.isAuthenticated;
  const rooms = new Rooms({ me, connection, clock, emit });
  const directory = new KeyDirectory({
    me: identity,
    trust: o.trust,
    log,
    lookup: (usernames) => connection.lookupKeys(usernames),
    alive: () => connection.alive(),
    connected,
    maxPerLookup: () => limits().maxRecipients,
    heldCount: (u) => o.state.heldCount(u),
    discardHeld: (u) => {
      const held = o.state.heldFor(u);
      for (const h of held) o.state.releaseHeld(h.rowId);
      if (held.length > 0) log.warn("held.discarded", { from: u, count: held.length });
      return held.length;
    },
    // v2: the rooms whose MLS group holds the user (the relay's room lists are not membership).
    roomsWith: (u) => mls?.engine.rooms().filter((r) => r.members.includes(u)).map((r) => r.room) ?? rooms.roomsWith(u),
    emit,
  });
  inbox = new Inbox({
    identity, trust: o.trust, state: o.state, directory, log, clock, limits,
    roomMembers: (room) => rooms.membersOf(room),
    ack: (seqs) => connection.current?.send({ frame: { $case: "ack", value: { seqs } } }),
    shown: (conversationId, sender, kind) => hooks.answerWhileAway(conversationId, sender, kind),
    emit,
    // v2: a v1 envelope never speaks in a room whose group I hold (PROTOCOL.md §14): one the
    // engine holds, or one kept in the MLS store (the engine may not have restored them yet).
    ...(upgradedAtMs === undefined || o.v2 === undefined ? {} : { v2: { upgradedAtMs, holdsGroup: heldBy(o.v2.store, () => mls) } }),
  });
  const outbox = new Outbox({
    identity, trust: o.trust, state: o.state, directory, atRest, pump, log, clock, limits,
    connected,
    inRoom: (room) => rooms.has(room),
    roomMembers: (room) => rooms.membersOf(room),
    forget: (id) => history?.remove(id),
    emit,
  });
  // Device lists (PROTOCOL.md §4.5) and linking: client-devices.ts.
  devs = new ClientDevices({
    me, local, trust: o.trust, state: o.state, connection, directory, log, clock, emit, limits,
    ds: () => mls?.ds, linking, v2: o.v2,
    ...(o.deviceName === undefined ? {} : { deviceName: o.deviceName }),
  });
  const mlsOutbox = o.v2 === undefined ? undefined : new MlsOutboxStore(o.state.database, atRest);
  // Messages a v1 client left unsent are sent again as v2 messages (PROTOCOL.md §14), before
  // the engine reads its outbox.
  const upgradedOutbox = mlsOutbox === undefined ? undefined : moveV1Outbox({ state: o.state, atRest, to: mlsOutbox, log });
  mls = o.v2 === undefined || mlsOutbox === undefined ? undefined : new MlsSession({
    identity, store: o.v2.store, content: o.v2.content ?? contentLayerOver(o.state, me), link: connection, trust: o.trust, clock, log,
    // A peer's message shown: the /away answer, as v1's inbox does (`shown`).
    emit: (e) => {
      emit(e);
      if (e.type === "message" && !e.message.own) hooks.answerWhileAway(e.message.conversationId, e.message.from, e.message.kind);
    },
    outbox: mlsOutbox,
    // §11.1: several relays deliver what another stored a moment before only with its hint.
    acceptanceSettleMs: servers.length > 1 ? CLUSTER_SETTLE_MS : 0,
    ack: (seqs) => void connection.current?.send({ frame: { $case: "ack", value: { seqs } } }),
    handled: (message) => inbox.countDelivered(message),
    ensureKeys: (names, refresh) => directory.ensure(names, refresh),
    isOnline: (u) => directory.isOnline(u),
    isUnknown: (name) => directory.isUnknown(name),
    // One leaf per device in every group (mls/devices.ts, PROTOCOL.md §4.5).
    ...(devs.deviceDirectory !== undefined ? { devices: devs.deviceDirectory } : {}),
  });
  const decisions = new TrustDecisions({
    identity, trust: o.trust, directory, log, connected,
    releaseHeld: (u) => inbox.releaseHeld(u),
    keyDecided: (u, verified) => mls?.keyDecided(u, verified),
  });  return {
    local, me, fixedLabel, clock, history, stopRecording, connection, rooms, directory, inbox, outbox, devs, upgradedOutbox, mls, decisions,
  };
}

/** Whether I hold a conversation's group: the engine's groups, or the ones kept in the MLS store. */
function heldBy(store: MlsKeyStore, mls: () => MlsSession | undefined): (conversationId: string) => boolean {
  return (conversationId) => {
    if (mls()?.engine.conversations().includes(conversationId) === true) return true;
    try {
      return store.conversations().includes(conversationId);
    } catch {
      return true; // the store cannot say (closed, damaged): refused, the safe side
    }
  };
}
