import { decodeJwtPayload } from './jwt.js';
import type { StorageLike } from './types.js';

/** What the client keeps in storage: the last position, and whose it is. */
interface StoredPosition {
  v: 1;
  user?: string;
  tenant?: string;
  position: string;
}

/** storePosition keeps position p of user/tenant under key; a full or unavailable storage is ignored (memory still has it). */
export function storePosition(s: StorageLike, key: string, p: string, user: string | undefined, tenant: string | undefined): void {
  const v: StoredPosition = { v: 1, position: p };
  if (user !== undefined) v.user = user;
  if (tenant !== undefined) v.tenant = tenant;
  try {
    s.setItem(key, JSON.stringify(v));
  } catch {
    // storage full or unavailable: memory still has it
  }
}

/** loadPosition returns the stored position, unless it belongs to another user or tenant than token's. */
export function loadPosition(s: StorageLike, key: string, token: string): string | undefined {
  let v: StoredPosition | undefined;
  try {
    const raw = s.getItem(key);
    v = raw ? (JSON.parse(raw) as StoredPosition) : undefined;
  } catch {
    v = undefined;
  }
  if (!v || typeof v.position !== 'string') return undefined;
  const claims = decodeJwtPayload(token);
  if (v.user !== undefined && typeof claims?.sub === 'string' && claims.sub !== v.user) return undefined;
  if (v.tenant !== undefined && typeof claims?.tenant_id === 'string' && claims.tenant_id !== v.tenant) return undefined;
  return v.position;
}
