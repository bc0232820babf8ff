// The SendResults of one session's sends, written in frame order (PROTOCOL.md §8.3): each send
// is checked and handed to the group commit at once, the next frames are read while it waits
// for its transaction, and its answer goes out after those of the sends before it. One loop
// writes them while any wait (no promise chain per send); the counts bound what a session
// holds while commits are pending (session.ts, MAX_SENDS_IN_FLIGHT).
import type { SendResult } from "../gen/securechat/v1/chat.js";

export class SendAnswers {
  /** Sends not answered yet, in frame order. */
  private readonly waiting: Array<{ readonly result: Promise<SendResult>; readonly frameBytes: number }> = [];
  /** The loop writing the answers of `waiting`, while there are any. */
  private writing: Promise<void> | undefined;
  /** Why an answer could not be written (a relay bug): whoever waits next gets it. */
  private failure: unknown;
  /** Sends, and their frames' bytes, not answered yet. */
  count = 0;
  bytes = 0;

  /**
   * @param write writes one SendResult (resolves once the stream took it)
   * @param onFailure told once when an answer could not be made or written (a relay bug: a
   *   refusal is an answer, and stream.send never rejects); the session ends with it when it
   *   next waits, and a session that ends for another reason first never waits, so log it there
   */
  constructor(private readonly write: (result: SendResult) => Promise<unknown>, private readonly onFailure: (e: unknown) => void) {}

  /** Queues a send's answer behind those before it. */
  add(result: Promise<SendResult>, frameBytes: number): void {
    this.count++;
    this.bytes += frameBytes;
    this.waiting.push({ result, frameBytes });
    if (this.writing === undefined && this.failure === undefined) this.writing = this.writeAll();
  }

  /** Resolves once every send so far is answered; throws what made an answer fail. */
  async all(): Promise<void> {
    if (this.writing !== undefined) await this.writing;
    if (this.failure !== undefined) throw this.failure;
  }

  private async writeAll(): Promise<void> {
    try {
      for (let next = this.waiting.shift(); next !== undefined; next = this.waiting.shift()) {
        const value = await next.result;
        this.count--;
        this.bytes -= next.frameBytes;
        await this.write(value);
      }
    } catch (e) {
      this.failure = e;
      this.onFailure(e);
    } finally {
      this.writing = undefined;
    }
  }
}
