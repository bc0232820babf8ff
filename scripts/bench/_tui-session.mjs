// A ChatSession for the benchmark: it answers what the UI asks at start and lets the driver
// emit events (a burst of 100,000 messages). Sends are accepted and echoed as pending.
export class BenchSession {
  me;
  serverLabel = "127.0.0.1:50051";
  #listeners = new Set();
  #peers;
  #next = 1;

  constructor(me, peers) {
    this.me = me;
    this.#peers = [{ username: me, online: true, trust: "verified", you: true }, ...peers];
  }

  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event) {
    for (const l of this.#listeners) l(event);
  }

  snapshot() {
    return { connection: { state: "connected", sinceMs: Date.now() }, peers: this.#peers, rooms: [] };
  }

  newId() {
    return (this.#next++).toString(16).padStart(32, "0");
  }

  send(conversationId, text, kind = "text") {
    const id = this.newId();
    const now = Date.now();
    this.emit({ type: "message", message: { id, conversationId, from: this.me, kind, text, sentAtMs: now, receivedAtMs: now, own: true, state: "pending" } });
    return { ok: true, value: { id } };
  }

  retry() {
    return { ok: false, error: "nothing to retry" };
  }

  async joinRoom(room) {
    return { ok: true, value: { room, members: [this.me] } };
  }

  async leaveRoom() {
    return { ok: true, value: undefined };
  }

  async listRooms() {
    return { ok: true, value: { joined: [], all: [] } };
  }

  async members() {
    return { ok: true, value: [this.me] };
  }

  fingerprint() {
    return "bench";
  }

  verifyInfo(username) {
    return { ok: false, error: `no keys known for ${username}` };
  }

  trust(username) {
    return { ok: false, error: `no keys known for ${username}` };
  }

  async close() {
    this.emit({ type: "connection", status: { state: "closed" } });
  }
}
