// Writes the outbox to the relay at the pace it allows, in order. At each Welcome the pump is
// started with every message still in the outbox (oldest first); messages sealed during the
// session are appended. Each write waits for a token of the SendPacer, so however long the
// outage and however big the outbox, the relay never has a reason to answer "too fast". If it
// does anyway, the message goes back to its place in the queue and is written again after a
// pause: it stays pending (`…`), never failed. The outbox in the state database stays the truth
// about what is unsent; this queue is only the order of writes for the current session.
import { Envelope as WireEnvelope } from "../gen/securechat/v1/chat.js";
import type { Logger } from "../protocol/log.js";
import type { SendPacer } from "./pacer.js";
import type { SessionStream } from "./transport.js";

interface Queued {
  readonly id: Buffer;
  /** Position in send order (messages go out, and come back after "too fast", in this order). */
  readonly order: number;
}

export interface OutboxPumpDeps {
  readonly pacer: SendPacer;
  /** The sealed envelope of a message still in the outbox; undefined once it was settled. */
  readonly envelopeOf: (id: Buffer) => Uint8Array | undefined;
  readonly log: Logger;
}

export class OutboxPump {
  private stream: SessionStream | undefined;
  private queue: Queued[] = [];
  private readonly inFlight = new Map<string, Queued & { readonly sentAtMs: number }>();
  private nextOrder = 0;
  /** Each session's writes run in a loop of their own: one stuck on a dead stream cannot stall the next. */
  private generation = 0;
  private loopingGeneration = -1;
  /**
   * After a "too fast" answer this session, one message at a time: the relay counts differently
   * from what it advertised, and with several in flight a refused one could be overtaken by an
   * accepted one sent after it (recipients would see them out of order).
   */
  private oneAtATime = false;
  private wakeSleep: (() => void) | undefined;

  constructor(private readonly deps: OutboxPumpDeps) {}

  /** A session reached Welcome: write `ids` (the outbox, oldest first), paced by the relay's limits. */
  start(stream: SessionStream, ids: readonly Buffer[], limits: { readonly messagesPerSecond: number; readonly burst: number }): void {
    this.stop();
    this.stream = stream;
    this.deps.pacer.reset(limits.messagesPerSecond, limits.burst);
    for (const id of ids) this.queue.push({ id, order: this.nextOrder++ });
    this.kick();
  }

  /** The session ended: what was not answered stays in the outbox for the next one. */
  stop(): void {
    this.generation++;
    this.stream = undefined;
    this.queue = [];
    this.inFlight.clear();
    this.oneAtATime = false;
    this.wakeSleep?.();
  }

  /** A message was sealed into the outbox during a session: write it after the ones before it. */
  push(id: Buffer): void {
    if (this.stream === undefined) return; // the next Welcome picks it up from the outbox
    this.queue.push({ id, order: this.nextOrder++ });
    this.kick();
  }

  /** Messages queued or written but not answered in this session. */
  get backlog(): number {
    return this.queue.length + this.inFlight.size;
  }

  /** The relay answered (accepted or refused for a reason other than the rate). */
  settled(id: Uint8Array, accepted: boolean): void {
    this.inFlight.delete(Buffer.from(id).toString("hex"));
    if (accepted) this.deps.pacer.accepted();
    if (this.oneAtATime) this.wakeSleep?.();
  }

  /**
   * The relay answered "too fast": pause, and put the message back at its place in the queue
   * (it is still in the outbox). Returns the pause in ms.
   */
  tooFast(id: Uint8Array): number {
    const key = Buffer.from(id).toString("hex");
    const sent = this.inFlight.get(key);
    this.inFlight.delete(key);
    this.oneAtATime = true;
    const pause = this.deps.pacer.tooFast(sent?.sentAtMs ?? -Infinity);
    if (this.stream !== undefined) {
      const item: Queued = sent ?? { id: Buffer.from(id), order: -1 };
      if (!this.queue.some((q) => q.order === item.order && q.id.equals(item.id))) {
        // Back in send order: before everything that was queued after it.
        let at = this.queue.findIndex((q) => q.order > item.order);
        if (at < 0) at = this.queue.length;
        this.queue.splice(at, 0, item);
      }
      this.kick();
      this.wakeSleep?.();
    }
    return pause;
  }

  private kick(): void {
    const generation = this.generation;
    if (this.loopingGeneration === generation) return;
    this.loopingGeneration = generation;
    void this.loop(generation).finally(() => {
      if (this.loopingGeneration !== generation) return;
      this.loopingGeneration = -1;
      if (this.stream !== undefined && this.queue.length > 0) this.kick();
    });
  }

  private async loop(generation: number): Promise<void> {
    while (generation === this.generation && this.stream !== undefined && this.queue.length > 0) {
      if (this.oneAtATime && this.inFlight.size > 0) {
        await this.sleep(1_000); // woken by the answer
        continue;
      }
      const wait = this.deps.pacer.delayMs();
      if (wait > 0) {
        await this.sleep(wait);
        continue;
      }
      const stream = this.stream;
      const item = this.queue.shift()!;
      const envelope = this.deps.envelopeOf(item.id);
      if (envelope === undefined) continue; // answered meanwhile (e.g. a duplicate answer)
      const sentAtMs = this.deps.pacer.take();
      this.inFlight.set(item.id.toString("hex"), { ...item, sentAtMs });
      try {
        await stream.send({ frame: { $case: "send", value: { envelope: WireEnvelope.decode(envelope) } } });
      } catch {
        // The stream is gone; the session's end stops the pump, and the next Welcome resends
        // everything still in the outbox with the same ids.
        if (this.stream === stream) this.queue = [];
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = done;
    });
  }
}
