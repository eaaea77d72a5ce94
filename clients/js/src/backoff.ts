/**
 * Exponential backoff with full jitter: a uniformly random delay between 0
 * and min(maxMs, baseMs * 2^attempt).
 */
export function fullJitter(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/**
 * Parses the reconnect hint of a 4009 (shutdown) close reason, e.g.
 * "shutdown;reconnect_after_ms=1234". Returns undefined when absent.
 */
export function reconnectAfterMs(reason: string | undefined): number | undefined {
  if (!reason) return undefined;
  const m = /(?:^|;)\s*reconnect_after_ms=(\d{1,9})\s*(?:;|$)/.exec(reason);
  return m ? Number(m[1]) : undefined;
}
