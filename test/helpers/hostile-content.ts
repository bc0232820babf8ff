// A hostile peer in protocol v2 is a modified client: it has real MLS groups (its leaf, its
// signatures, its keys), so what it sends is encrypted and signed as any member's message, but the
// application data inside (PROTOCOL.md §11) is whatever it wants. This content layer is the real
// one (src/client/mls/content.ts) with one change: each application data it seals goes through
// `tamper` first (e.g. invalid UTF-8 where the text is, or another member's message id).
import type { ContentLayer, OpenedContent, OwnDeliveryChange, SealedContent } from "../../src/client/mls/content-api.js";
import type { AppKind } from "../../src/protocol/mls/index.js";

export class TamperingContent implements ContentLayer {
  /** Rewrites the application data of each message sealed (undefined: sealed honestly). */
  tamper: ((app: Uint8Array) => Uint8Array) | undefined;
  /** The message id to seal the next message with (a modified client may pick any). */
  nextId: Buffer | undefined;

  constructor(private readonly real: ContentLayer) {}

  seal(conversationId: string, groupId: Uint8Array, kind: AppKind, text: string, nowMs: number, messageId?: Buffer): SealedContent {
    const id = this.nextId ?? messageId;
    this.nextId = undefined;
    const sealed = this.real.seal(conversationId, groupId, kind, text, nowMs, id);
    return this.tamper === undefined ? sealed : { ...sealed, app: this.tamper(sealed.app) };
  }
  accepted(conversationId: string, messageId: Buffer): void {
    this.real.accepted(conversationId, messageId);
  }
  open(conversationId: string, groupId: Uint8Array, sender: string, app: Uint8Array): { readonly content: OpenedContent; readonly own: OwnDeliveryChange } {
    return this.real.open(conversationId, groupId, sender, app);
  }
  membersChanged(conversationId: string, members: readonly string[]): void {
    this.real.membersChanged(conversationId, members);
  }
  shouldUpdate(conversationId: string, nowMs: number): boolean {
    return this.real.shouldUpdate(conversationId, nowMs);
  }
  committed(conversationId: string, nowMs: number): void {
    this.real.committed(conversationId, nowMs);
  }
  epochView(conversationId: string, groupId: Uint8Array, epoch: number, authenticator: Uint8Array): void {
    this.real.epochView?.(conversationId, groupId, epoch, authenticator);
  }
  forget(conversationId: string): void {
    this.real.forget(conversationId);
  }
}

/** Replaces the first occurrence of `from` in `app` by `to` (same length): a byte-level edit of the sealed data. */
export function replaceBytes(app: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array {
  if (from.length !== to.length) throw new Error("replaceBytes keeps the length");
  const b = Buffer.from(app);
  const at = b.indexOf(Buffer.from(from));
  if (at < 0) throw new Error("the bytes to replace are not in the application data");
  Buffer.from(to).copy(b, at);
  return b;
}
