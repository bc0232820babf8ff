// PROTOCOL.md §11.1: the content layer hears that the relay accepted my message only once every
// MLS delivery that the relay queued for me before it accepted mine has been handled. The drop
// rule reads "I had mine's answer before their message reached me" as "mine was stored before
// theirs": true only when no delivery stored for me earlier is still on its way.
// - The engine may be busy sealing (a backlog after a reconnect) when the answer comes, with
//   deliveries waiting behind it: the session counts deliveries as they arrive and as the engine
//   finishes each, and an acceptance waits for those that arrived before it.
// - After a (re)connect the relay announces in its Welcome how many queued deliveries follow
//   (`queued`), and it answers my sends (the outbox resent at once) while it is still pumping
//   them: an answer can come before messages stored for me long before mine. Recorded then,
//   the acceptance (and the `settled` my next message names) runs ahead of what I have opened,
//   and a peer's reply sealed before mine reached them counts as proof that mine was lost. So
//   acceptances answered during that backlog wait until it has arrived and been handled. (With
//   several relays on one database this is the common case: a client that moved to another relay
//   gets the whole backlog from the database while its resent outbox is answered.) A backlog that
//   never completes (rows expired meanwhile) ends after BACKLOG_QUIET_MS without a delivery: the
//   acceptances are then recorded; waiting longer only delays the proof, never makes one.
// - Several relays on one database (a client given a list of relays): a relay answers my send
//   once it is stored, but a message another relay stored for me a moment BEFORE mine reaches my
//   relay only with that relay's hint (NOTIFY: milliseconds, hundreds under load; when a hint is
//   lost, a relay killed between its commit and its hint, the 5 s poll). Each of two senders
//   answered at the same moment by two relays then has its own answer before the other's message,
//   and the next message of either "proves" the other's lost. So such a client records an
//   acceptance only `settleMs` after the answer (CLUSTER_SETTLE_MS: the relays' poll period and
//   a margin), after the deliveries received by then. A single relay orders its answers after
//   its deliveries itself: no wait there.
import type { Logger } from "../../protocol/log.js";
import type { ContentLayer } from "./content-api.js";

/** A Welcome's announced backlog counts as complete after this long without any delivery. */
export const BACKLOG_QUIET_MS = 5_000;
/**
 * With several relays: an acceptance is recorded this long after the relay's answer. The relays
 * poll the database every 5 s when a hint between them was lost (cluster-design.md §2): a
 * message stored for me before mine has reached me by then.
 */
export const CLUSTER_SETTLE_MS = 6_000;

interface Waiting {
  /** The deliveries counted when both waits below were over (undefined until then). */
  at: number | undefined;
  /** Answered during a Welcome's backlog that has not all arrived yet. */
  backlog: boolean;
  /** The settle time (several relays) is not over yet. */
  settling: boolean;
  timer?: NodeJS.Timeout;
  run: () => void;
}

export class AcceptanceOrder {
  private arrivedCount = 0;
  private doneCount = 0;
  /** Deliveries of the current Welcome's backlog that have not arrived yet. */
  private backlogLeft = 0;
  private backlogTimer: NodeJS.Timeout | undefined;
  /** In the order answered; each recorded once its `at` is fixed and that many deliveries are handled. */
  private readonly waiting: Waiting[] = [];

  /**
   * `settleMs`: how long after the relay's answer an acceptance is recorded (CLUSTER_SETTLE_MS for
   * a client of several relays; 0: at once). `quietMs`: BACKLOG_QUIET_MS.
   */
  constructor(private readonly log?: Logger, private readonly quietMs = BACKLOG_QUIET_MS, private readonly settleMs = 0) {}

  /**
   * A Welcome announced `queued` deliveries (replacing what an earlier session announced): the
   * acceptances answered from now on wait until that many more have arrived and been handled.
   */
  welcome(queued: number): void {
    this.backlogLeft = Number.isSafeInteger(queued) && queued > 0 ? queued : 0;
    this.restartQuiet();
    if (this.backlogLeft === 0) this.backlogComplete();
  }

  /** A delivery reached me (call in the order deliveries are received, before any later answer). */
  arrived(): void {
    this.arrivedCount += 1;
    this.countBacklog();
  }

  /** A delivery not for the content layer (a v1 envelope) reached me: it counts toward the backlog only. */
  skipped(): void {
    this.countBacklog();
  }

  /** A delivery was handled or given up on: the acceptances waiting for it are recorded. */
  done(): void {
    this.doneCount += 1;
    this.release();
  }

  /** No more deliveries will come (the client is closed): stops the timers; nothing more is recorded. */
  close(): void {
    clearTimeout(this.backlogTimer);
    this.backlogTimer = undefined;
    for (const w of this.waiting.splice(0)) clearTimeout(w.timer);
  }

  /** The content layer with `accepted` held back until the deliveries received before it were handled. */
  wrap(content: ContentLayer): ContentLayer {
    const accepted = (conversationId: string, messageId: Buffer): void => {
      const run = (): void => content.accepted(conversationId, messageId);
      const backlog = this.backlogLeft > 0;
      const settling = this.settleMs > 0;
      if (!backlog && !settling && this.waiting.length === 0 && this.doneCount >= this.arrivedCount) {
        run();
        return;
      }
      const w: Waiting = { at: backlog || settling ? undefined : this.arrivedCount, backlog, settling, run };
      if (settling) {
        w.timer = setTimeout(() => {
          w.settling = false;
          this.fix(w);
          this.release();
        }, this.settleMs);
        w.timer.unref();
      }
      this.waiting.push(w);
    };
    return new Proxy(content, {
      get: (t, k) => {
        if (k === "accepted") return accepted;
        const v: unknown = Reflect.get(t, k, t);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
  }

  private countBacklog(): void {
    if (this.backlogLeft === 0) return;
    this.backlogLeft -= 1;
    if (this.backlogLeft === 0) this.backlogComplete();
    else this.restartQuiet();
  }

  /** The backlog has arrived: what was answered during it waits for the deliveries received so far. */
  private backlogComplete(): void {
    this.backlogLeft = 0;
    clearTimeout(this.backlogTimer);
    this.backlogTimer = undefined;
    for (const w of this.waiting) {
      w.backlog = false;
      this.fix(w);
    }
    this.release();
  }

  private restartQuiet(): void {
    clearTimeout(this.backlogTimer);
    this.backlogTimer = undefined;
    if (this.backlogLeft === 0) return;
    this.backlogTimer = setTimeout(() => {
      this.log?.info("mls.content.backlog_incomplete", { left: this.backlogLeft });
      this.backlogComplete();
    }, this.quietMs);
    this.backlogTimer.unref();
  }

  /** Both waits over: the acceptance follows the deliveries received so far. */
  private fix(w: Waiting): void {
    if (w.at === undefined && !w.backlog && !w.settling) w.at = this.arrivedCount;
  }

  private release(): void {
    while (this.waiting.length > 0 && this.waiting[0]!.at !== undefined && this.waiting[0]!.at <= this.doneCount) {
      try {
        this.waiting.shift()!.run();
      } catch (e) {
        this.log?.warn("mls.content.accepted_failed", { reason: (e as Error).message });
      }
    }
  }
}
