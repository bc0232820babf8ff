// Message times and days as the user's wall clock shows them.

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** "HH:MM" in local time. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** A number that is the same for two times exactly when they fall on the same local day. */
export function localDay(ms: number): number {
  const d = new Date(ms);
  return d.getFullYear() * 10_000 + (d.getMonth() + 1) * 100 + d.getDate();
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"] as const;
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"] as const;

/** "Tuesday 25 November 2026" in local time (fixed English, like the rest of the UI). */
export function formatDay(ms: number): string {
  const d = new Date(ms);
  return `${DAYS[d.getDay()] ?? ""} ${d.getDate()} ${MONTHS[d.getMonth()] ?? ""} ${d.getFullYear()}`;
}

/** "2026-11-25 14:02" in local time: a compact, unambiguous stamp for lists (/search). */
export function formatStamp(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${formatClock(ms)}`;
}
