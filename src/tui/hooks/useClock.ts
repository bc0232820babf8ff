// The current time for things that count down (the reconnect timer): ticks only while active.
import { useEffect, useState } from "react";

export interface UseClockOptions {
  readonly clock: () => number;
  readonly active: boolean;
  readonly intervalMs?: number;
}

export function useClock({ clock, active, intervalMs = 500 }: UseClockOptions): number {
  const [now, setNow] = useState(clock);
  useEffect(() => {
    if (!active) return;
    setNow(clock());
    const timer = setInterval(() => setNow(clock()), intervalMs);
    return () => clearInterval(timer);
  }, [clock, active, intervalMs]);
  return active ? now : clock();
}
