/**
 * Decodes the payload of a JWT WITHOUT verifying it. The client only uses it
 * to learn when the token expires (exp) and whose it is (sub), to schedule a
 * refresh and to avoid resuming from another user's position. Returns
 * undefined when the token is not a decodable JWS compact serialization.
 */
export function decodeJwtPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const json = new TextDecoder().decode(bytes);
    const payload: unknown = JSON.parse(json);
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return undefined;
    return payload as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The token's expiry in milliseconds since the epoch, or undefined. */
export function tokenExpiry(token: string): number | undefined {
  const exp = decodeJwtPayload(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/**
 * refreshDelay is how long to wait before refreshing token: until
 * refreshBeforeMs (at most half the time left) before it expires, and at
 * least a second. Undefined for a token without exp.
 */
export function refreshDelay(token: string, refreshBeforeMs: number): number | undefined {
  const exp = tokenExpiry(token);
  if (exp === undefined) return undefined;
  const remaining = exp - Date.now();
  return Math.max(1000, remaining - Math.min(refreshBeforeMs, remaining / 2));
}
