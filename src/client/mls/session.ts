// ChatClient's protocol v2 mode (PROTOCOL-v2.md §6.2, §7 "Client storage"): the relay as
// Delivery Service over the session (ds-transport.ts) and the conversation engine
// (conversations.ts) wired to the session's life: started at the first Welcome, back into the
// lobby after each reconnect, each Delivery.mls handed to the engine and acknowledged only
// once the engine has processed it and saved the group (history → state → ack).
import { MlsKind, type Delivery, type SendResult } from "../../gen/securechat/v1/chat.js";
import { fingerprint, type PrivateIdentity } from "../../protocol/keys.js";
import type { Logger } from "../../protocol/log.js";
import type { TrustHook } from "../../protocol/mls/index.js";
import type { MlsKeyStore } from "../mls-store.js";
import type { TrustStore } from "../trust-store.js";
import type { SessionEvent } from "../types.js";
import type { ContentLayer } from "./content-api.js";
import { MlsConversations } from "./conversations.js";
import { DsTransport, mlsQueuedOf, type DsLink } from "./ds-transport.js";

/** How often held messages and past-epoch keys are looked at (PROTOCOL-v2.md §7, §9). */
const TIMER_MS = 60_000;

export interface MlsSessionOptions {
  readonly identity: PrivateIdentity;
  readonly store: MlsKeyStore;
  readonly content: ContentLayer;
  readonly link: DsLink;
  readonly trust: TrustStore;
  readonly clock: () => number;
  readonly log: Logger;
  readonly emit: (e: SessionEvent) => void;
  /** Sends an Ack for these delivery seqs on the current session. */
  readonly ack: (seqs: number[]) => void;
  /** One delivery was handled (for the caught-up count); `message`: it carried an application message. */
  readonly handled?: (message: boolean) => void;
}

/**
 * The pins of PROTOCOL.md §6 as the MLS trust hook (PROTOCOL-v2.md §3): a credential's identity
 * key must be the pinned `sig_fpr`; while a key change waits for a decision, the user's leaves
 * are refused. A user never pinned is accepted (first contact: the key directory pins them when
 * their keys are looked up, as in v1).
 */
export function pinHook(trust: TrustStore): TrustHook {
  return (id) => {
    const pin = trust.get(id.username);
    if (pin === undefined) return true;
    if (pin.pending !== undefined) return false;
    return fingerprint(pin.identity.sigSpki).equals(id.identityFpr);
  };
}

export class MlsSession {
  readonly ds: DsTransport;
  readonly engine: MlsConversations;
  private welcomedOnce = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: MlsSessionOptions) {
    this.ds = new DsTransport(o.link);
    this.engine = new MlsConversations({
      me: o.identity.username, identity: { username: o.identity.username, sigPrivate: o.identity.sigPrivate },
      store: o.store, ds: this.ds, content: o.content, trust: pinHook(o.trust), clock: o.clock, logger: o.log, emit: o.emit,
    });
  }

  /** The relay welcomed a session: the engine starts (first time) or comes back into the lobby. */
  welcomed(): void {
    const first = !this.welcomedOnce;
    this.welcomedOnce = true;
    const p = first ? this.engine.start() : this.engine.reconnected();
    p.catch((e: unknown) => {
      this.o.log.error("mls.session.start_failed", { reason: (e as Error).message });
      this.o.emit({ type: "notice", level: "error", text: `protocol v2 could not start: ${(e as Error).message}` });
    });
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.engine.checkTimers().catch((e: unknown) => this.o.log.warn("mls.session.timers_failed", { reason: (e as Error).message }));
      }, TIMER_MS);
      this.timer.unref();
    }
  }

  /** Hands each MLS delivery to the engine (acked once it resolves); returns the others (v1 envelopes). */
  deliver(items: readonly Delivery[]): Delivery[] {
    const rest: Delivery[] = [];
    for (const d of items) {
      const q = mlsQueuedOf(d);
      if (q === undefined) { rest.push(d); continue; }
      this.engine.deliver(q).then(
        () => {
          this.o.ack([d.seq]);
          this.o.handled?.(q.item.kind === MlsKind.MLS_KIND_APPLICATION);
        },
        (e: unknown) => this.o.log.warn("mls.session.not_acked", { seq: d.seq, reason: (e as Error).message }),
      );
    }
    return rest;
  }

  /** A SendResult: true when it answered one of the engine's SendMls. */
  onSendResult(r: SendResult): boolean {
    return this.ds.onSendResult(r);
  }

  /** The relay's count of my one-time KeyPackages, when it says so unasked. */
  keyPackageStatus(oneTimeLeft: number): void {
    this.engine.keyPackageStatus(oneTimeLeft).catch((e: unknown) => this.o.log.warn("mls.session.top_up_failed", { reason: (e as Error).message }));
  }

  ended(): void {
    this.ds.sessionEnded();
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.ds.sessionEnded();
    await this.engine.idle();
    this.engine.close();
    this.o.store.close();
  }
}
