// Polls an assertion until it passes or the deadline passes (then rethrows its last failure).
// Tests wait on conditions like this, never on fixed sleeps.

export async function waitFor<T>(check: () => T, { timeoutMs = 3_000, intervalMs = 5 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
