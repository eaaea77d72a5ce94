// artillery processor: mints an HS256 Herald token for each virtual user,
// the way a backend would (sub, tenant_id, role, iat, exp), with the
// secret Herald verifies (JWT_SECRET, or the one `herald --dev` prints).
const { createHmac, randomUUID } = require('node:crypto');

const secret = process.env.JWT_SECRET;
if (!secret) throw new Error('set JWT_SECRET to the secret Herald verifies tokens with');
const tenant = process.env.HERALD_TENANT || 'demo';

function sign(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** socket.io-client's auth callback, one new user per virtual user (see plugin-socketio-auth). */
function socketioAuth(cb) {
  const now = Math.floor(Date.now() / 1000);
  cb({ token: sign({ sub: `vu-${randomUUID()}`, tenant_id: tenant, role: 'member', iat: now, exp: now + 3600 }) });
}

module.exports = { socketioAuth };
