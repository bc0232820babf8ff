// Message times as the user's wall clock shows them.

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** "HH:MM" in local time. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}
