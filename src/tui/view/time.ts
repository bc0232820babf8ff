// Message times and days as the user's wall clock shows them. A message's time is its sender's
// claim (PROTOCOL.md §11: any u64 up to 2^53 - 1 decodes), so every function here takes any
// number: one that is not a date JavaScript can represent (beyond ±8.64e15 ms, about the year
// 275760) is shown as an unknown time of the same width, never "NaN".

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** The date of `ms`, or undefined when it is not one Date can hold (out of range, not finite). */
function dateOf(ms: number): Date | undefined {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Shown for a time out of Date's range: as wide as "HH:MM", so columns stay aligned. */
export const UNKNOWN_CLOCK = "--:--";
/** Shown for a day out of Date's range (the day separator). */
export const UNKNOWN_DAY = "date out of range";

/** "HH:MM" in local time. */
export function formatClock(ms: number): string {
  const d = dateOf(ms);
  return d === undefined ? UNKNOWN_CLOCK : `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/**
 * A number that is the same for two times exactly when they fall on the same local day. Times
 * out of range are one day of their own past every other on their side (so a run of them shares
 * one day separator).
 */
export function localDay(ms: number): number {
  const d = dateOf(ms);
  if (d === undefined) return ms < 0 ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  return d.getFullYear() * 10_000 + (d.getMonth() + 1) * 100 + d.getDate();
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"] as const;
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"] as const;

/** "Tuesday 25 November 2026" in local time (fixed English, like the rest of the UI). */
export function formatDay(ms: number): string {
  const d = dateOf(ms);
  if (d === undefined) return UNKNOWN_DAY;
  return `${DAYS[d.getDay()] ?? ""} ${d.getDate()} ${MONTHS[d.getMonth()] ?? ""} ${d.getFullYear()}`;
}

/** "2026-11-25 14:02" in local time: a compact, unambiguous stamp for lists (/search). */
export function formatStamp(ms: number): string {
  const d = dateOf(ms);
  if (d === undefined) return `---------- ${UNKNOWN_CLOCK}`;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${formatClock(ms)}`;
}
