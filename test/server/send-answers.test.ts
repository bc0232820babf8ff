// A session's SendResults (src/server/send-answers.ts): written in frame order whatever order
// the commits settle in, counted until written, and a failure (a relay bug) stops the writing
// and is thrown to whoever waits next.
import { describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import { SendAnswers } from "../../src/server/send-answers.js";

const result = (n: number): SendResult =>
  ({ messageId: Buffer.from([n]), status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: [] });

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("SendAnswers", () => {
  it("writes answers in the order the sends came, whatever order they settle in, and counts them until written", async () => {
    const written: number[] = [];
    const answers = new SendAnswers(async (r) => {
      written.push(r.messageId[0]!);
    }, () => {
      throw new Error("no failure expected");
    });
    const d = [deferred<SendResult>(), deferred<SendResult>(), deferred<SendResult>()];
    d.forEach((x, i) => answers.add(x.promise, 100 + i));
    expect([answers.count, answers.bytes]).toEqual([3, 303]);
    d[2]!.resolve(result(2));
    d[1]!.resolve(result(1));
    await Promise.resolve();
    expect(written).toEqual([]);
    d[0]!.resolve(result(0));
    await answers.all();
    expect(written).toEqual([0, 1, 2]);
    expect([answers.count, answers.bytes]).toEqual([0, 0]);
    // A later burst starts a new writer.
    answers.add(Promise.resolve(result(3)), 10);
    await answers.all();
    expect(written).toEqual([0, 1, 2, 3]);
  });

  it("waits for a slow write before the next answer", async () => {
    const order: string[] = [];
    const gate = deferred<void>();
    const answers = new SendAnswers(async (r) => {
      order.push(`start ${r.messageId[0]}`);
      if (r.messageId[0] === 0) await gate.promise;
      order.push(`end ${r.messageId[0]}`);
    }, () => {});
    answers.add(Promise.resolve(result(0)), 1);
    answers.add(Promise.resolve(result(1)), 1);
    const all = answers.all();
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(["start 0"]);
    gate.resolve();
    await all;
    expect(order).toEqual(["start 0", "end 0", "start 1", "end 1"]);
  });

  it("on a failure writes nothing more, reports it once, and throws it to every later wait", async () => {
    const written: number[] = [];
    const failures: unknown[] = [];
    const answers = new SendAnswers(async (r) => {
      written.push(r.messageId[0]!);
    }, (e) => failures.push(e));
    const bug = new Error("relay bug");
    answers.add(Promise.resolve(result(0)), 1);
    answers.add(Promise.reject(bug), 1);
    answers.add(Promise.resolve(result(2)), 1);
    await expect(answers.all()).rejects.toBe(bug);
    answers.add(Promise.resolve(result(3)), 1);
    await expect(answers.all()).rejects.toBe(bug);
    expect(written).toEqual([0]);
    expect(failures).toEqual([bug]);
  });
});
