// Mints the user tokens Herald verifies: HS256 with the shared JWT_SECRET,
// carrying sub, tenant_id, role, iat and the required exp. node:crypto
// only; a real backend would use its JWT library.
import { createHmac, randomUUID } from 'node:crypto';

export function signUserToken({ user, tenant, role = 'member', ttlSec = 900 }, secret) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const claims = b64({ sub: user, tenant_id: tenant, role, iat: now, exp: now + ttlSec, jti: randomUUID() });
  return `${head}.${claims}.${createHmac('sha256', secret).update(`${head}.${claims}`).digest('base64url')}`;
}
