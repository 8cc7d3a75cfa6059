/** The `Retry-After` header, read by the rate-limit error and by the retry policy. */

/** Seconds to wait per a `Retry-After` header (seconds or an HTTP date); null if unusable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  const text = value?.trim();
  if (!text) return null;
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) return Number(text);
  const when = Date.parse(text);
  if (Number.isNaN(when)) return null;
  return Math.max((when - now) / 1000, 0);
}
