// The peers suite's relay clients read each DeliverBatch by walking its bytes for what they check
// (scripts/bench/_peers-grpc.ts): every item's seq (to ack it), and of its MlsDelivery the kind,
// the sender the relay names and the MLS message's last 16 bytes (its AEAD tag, which identifies
// the message of the run). The forwarder's clients read the tag from the raw frame in the same
// way. Decoding every frame with ts-proto's generic decoder (objects for each item, its
// MlsDelivery and their fields) was more than half of the load generator's CPU at K=100, which
// then bounded the relay's measured rate (load generator 85-93% of its core, relay 70-79%).
//
// Strict: any byte sequence that is not a well-formed SessionResponse.deliver throws (the run
// fails), and a frame of another kind is left to the generic decoder (returns false).

/** One item of a DeliverBatch as the walk sees it (`mls` absent for a version-1 envelope). */
export interface WalkedItem {
  seq: number;
  kind: number;
  sender: string;
  /** The MLS message's last 16 bytes, in hex (test/helpers/mls-room.ts mlsKey). */
  tag: string;
  mls: boolean;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class Reader {
  at: number;
  constructor(readonly b: Buffer, from: number, readonly end: number) {
    this.at = from;
  }

  get more(): boolean {
    return this.at < this.end;
  }

  varint(): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.at >= this.end) throw new Error("a DeliverBatch ends inside a varint");
      const byte = this.b[this.at++]!;
      v += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(v)) throw new Error("a DeliverBatch varint is beyond 2^53");
        return v;
      }
      scale *= 128;
    }
    throw new Error("a DeliverBatch varint is beyond 2^53");
  }

  /** The end of a length-delimited field that starts here. */
  len(): number {
    const n = this.varint();
    const end = this.at + n;
    if (end > this.end) throw new Error("a DeliverBatch field runs past its end");
    return end;
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_LEN) this.at = this.len();
    else if (wire === WIRE_I64) this.at += 8;
    else if (wire === WIRE_I32) this.at += 4;
    else throw new Error(`a DeliverBatch has a field of wire type ${wire}`);
    if (this.at > this.end) throw new Error("a DeliverBatch field runs past its end");
  }
}

/**
 * Walks one SessionResponse: false when it is not a DeliverBatch (nothing visited); otherwise
 * calls `visit` with each item in order (the same object, refilled: copy what you keep) and
 * returns true. Throws on malformed bytes.
 */
export function walkDeliverBatch(bytes: Buffer, visit: (item: Readonly<WalkedItem>) => void): boolean {
  const top = new Reader(bytes, 0, bytes.length);
  if (!top.more) return false;
  const key = top.varint();
  if (key !== ((3 << 3) | WIRE_LEN)) return false; // SessionResponse.deliver
  const batch = new Reader(bytes, 0, top.len());
  batch.at = top.at;
  if (batch.end !== bytes.length) throw new Error("a SessionResponse has bytes after its DeliverBatch");
  const item: WalkedItem = { seq: 0, kind: 0, sender: "", tag: "", mls: false };
  while (batch.more) {
    const k = batch.varint();
    if (k !== ((1 << 3) | WIRE_LEN)) {
      batch.skip(k & 7);
      continue;
    }
    const d = new Reader(bytes, 0, batch.len());
    d.at = batch.at;
    batch.at = d.end;
    item.seq = 0;
    item.kind = 0;
    item.sender = "";
    item.tag = "";
    item.mls = false;
    while (d.more) {
      const dk = d.varint();
      if (dk === ((1 << 3) | WIRE_VARINT)) {
        item.seq = d.varint();
      } else if (dk === ((5 << 3) | WIRE_LEN)) {
        item.mls = true;
        const m = new Reader(bytes, 0, d.len());
        m.at = d.at;
        d.at = m.end;
        while (m.more) {
          const mk = m.varint();
          if (mk === ((1 << 3) | WIRE_VARINT)) {
            item.kind = m.varint();
          } else if (mk === ((3 << 3) | WIRE_LEN)) {
            const end = m.len();
            item.sender = bytes.toString("utf8", m.at, end);
            m.at = end;
          } else if (mk === ((4 << 3) | WIRE_LEN)) {
            const end = m.len();
            if (end - m.at < 16) throw new Error("an MLS message in a DeliverBatch is shorter than its tag");
            item.tag = bytes.toString("hex", end - 16, end);
            m.at = end;
          } else {
            m.skip(mk & 7);
          }
        }
      } else {
        d.skip(dk & 7);
      }
    }
    visit(item);
  }
  return true;
}
