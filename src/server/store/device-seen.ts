// The last-seen notes of devices not written yet, shared by both stores' device parts
// (devices.ts and pg/devices.ts): session open and close only note the time here; the store
// writes them in one batch DEVICE_SEEN_FLUSH_MS after the first note at most (a lost note only
// shows an older "last seen"). Dropping a device or a user drops its notes with its rows.

/** Longest a last-seen note waits in memory before it is written. */
export const DEVICE_SEEN_FLUSH_MS = 1000;

/** A note to write: the device's session was open at `ms`. */
export interface SeenNote {
  readonly username: string;
  readonly deviceId: string;
  readonly ms: number;
}

export class PendingSeen {
  /** "username\ndevice_id" -> ms. */
  private readonly notes = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  /** `flush`: the store's write of the notes, run by a timer after the first note. */
  constructor(private readonly flush: () => void) {}

  get size(): number {
    return this.notes.size;
  }

  /** Notes that a session of this device was open at `ms` (the unnamed device "" is not noted). */
  note(username: string, deviceId: string, ms: number): void {
    if (deviceId === "") return;
    this.notes.set(`${username}\n${deviceId}`, ms);
    this.timer ??= setTimeout(() => this.flush(), DEVICE_SEEN_FLUSH_MS);
    this.timer.unref();
  }

  /** An unlinked device's note goes. */
  dropDevice(username: string, deviceId: string): void {
    this.notes.delete(`${username}\n${deviceId}`);
  }

  /** A released name's notes go. */
  dropUser(username: string): void {
    for (const k of this.notes.keys()) if (k.startsWith(`${username}\n`)) this.notes.delete(k);
  }

  /** `written` (a user's last seen per device id, as stored) with the user's notes merged in, the later time winning. */
  mergeInto(username: string, written: Map<string, number>): Map<string, number> {
    const prefix = `${username}\n`;
    for (const [k, ms] of this.notes) {
      if (k.startsWith(prefix)) written.set(k.slice(prefix.length), Math.max(ms, written.get(k.slice(prefix.length)) ?? 0));
    }
    return written;
  }

  /** Stops the flush timer (the store is flushing now). */
  stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Hands over every note, in key order (two relays writing the same devices cannot deadlock), and forgets them. */
  take(): SeenNote[] {
    const notes = [...this.notes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    this.notes.clear();
    return notes.map(([k, ms]) => {
      const i = k.indexOf("\n");
      return { username: k.slice(0, i), deviceId: k.slice(i + 1), ms };
    });
  }
}
