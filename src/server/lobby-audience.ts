// Who a lobby envelope is stored for (PROTOCOL.md §13): the devices (queue addresses, §4.5: the
// bare username for a primary, `username/device_id` for a linked device) online at admission, and
// those seen online within the grace period. Without the grace, a lobby message typed while the relay
// was restarting (or while a reader's connection was being replaced) was lost for readers who
// had not reconnected yet, though it was sealed to them because they were there. With it, a
// sender still cannot make the relay keep lobby messages for users who left long ago.

/** The relay's memory of who went offline when, bounded by the grace period. */
export class LobbyAudience {
  private readonly offlineAt = new Map<string, number>();
  private readonly restartGraceUntil: number;

  /**
   * @param restarted the relay started on a data dir that already had users: it cannot know
   *   who was online before it stopped, so for one grace period every named recipient counts.
   */
  constructor(
    private readonly graceMs: number,
    private readonly clock: () => number,
    private readonly isOnline: (username: string) => boolean,
    restarted: boolean,
  ) {
    if (!(graceMs >= 0)) throw new RangeError("lobby grace must be a non-negative number of ms");
    this.restartGraceUntil = restarted ? clock() + graceMs : -Infinity;
  }

  /** A device's session ended (the key is its queue address). */
  wentOffline(username: string): void {
    const now = this.clock();
    this.offlineAt.set(username, now);
    if (this.offlineAt.size > 4096) this.prune(now);
  }

  /** Whether a lobby envelope is stored for this recipient (a queue address). */
  includes(username: string): boolean {
    if (this.isOnline(username)) return true;
    const now = this.clock();
    if (now < this.restartGraceUntil) return true;
    const at = this.offlineAt.get(username);
    return at !== undefined && now - at <= this.graceMs;
  }

  private prune(now: number): void {
    for (const [name, at] of this.offlineAt) if (now - at > this.graceMs) this.offlineAt.delete(name);
  }
}
