// The backend after the migration: it no longer hosts sockets. Where the
// NestJS gateway did server.to(`user:${id}`).emit('notification', n), it
// publishes to Herald with @herald/node; Herald stores, counts and delivers.
//
//   HERALD_URL=http://127.0.0.1:8080 HERALD_API_KEY=hk_… JWT_SECRET=… node backend.mjs
//
// Routes (a stand-in for your application's own):
//   GET  /api/herald-token?user=alice   a Herald token for the (pretend-)logged-in user
//   POST /orders/:id/pay?user=alice      "an order was paid": notifies its owner
//   POST /announcements                  notifies the whole tenant
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

import { Herald, HeraldError } from '@herald/node';

import { signUserToken } from './token.mjs';

const TENANT = 'acme';

/** Builds the backend's HTTP server. */
export function createBackend({ heraldUrl, apiKey, jwtSecret }) {
  const herald = new Herald({ url: heraldUrl, apiKey });
  return createServer(async (req, res) => {
    const url = new URL(req.url, 'http://backend');
    const send = (status, body) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    try {
      if (req.method === 'GET' && url.pathname === '/api/herald-token') {
        // In a real app: the user of the session, not a query parameter.
        return send(200, { token: signUserToken({ user: url.searchParams.get('user'), tenant: TENANT }, jwtSecret) });
      }
      const paid = /^\/orders\/([\w-]+)\/pay$/.exec(url.pathname);
      if (req.method === 'POST' && paid) {
        const order = paid[1];
        // Before: this.gateway.server.to(`user:${userId}`).emit('notification', n)
        const { id } = await herald.publish(
          { tenant: TENANT, to: { users: [url.searchParams.get('user')] }, type: 'order.paid', title: `Order ${order} paid`, data: { order } },
          { idempotencyKey: `order-${order}-paid` }, // paying twice notifies once
        );
        return send(201, { notification: id });
      }
      if (req.method === 'POST' && url.pathname === '/announcements') {
        // Before: this.gateway.server.to(`tenant:${tenantId}`).emit(...)
        const { id } = await herald.publish({ tenant: TENANT, to: { tenant: true }, type: 'announcement', title: 'Maintenance at 02:00 UTC' });
        return send(201, { notification: id });
      }
      send(404, { error: 'not found' });
    } catch (e) {
      if (e instanceof HeraldError) {
        console.error(`herald: ${e.status ?? ''} ${e.code}: ${e.message} (correlation id ${e.correlationId ?? '-'})`);
        return send(502, { error: 'notification not sent' });
      }
      console.error(e);
      send(500, { error: 'internal' });
    }
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { HERALD_URL = 'http://127.0.0.1:8080', HERALD_API_KEY, JWT_SECRET, PORT = '3000' } = process.env;
  if (!HERALD_API_KEY || !JWT_SECRET) {
    console.error('set HERALD_API_KEY and JWT_SECRET (go run ./cmd/herald --dev prints both)');
    process.exit(2);
  }
  createBackend({ heraldUrl: HERALD_URL, apiKey: HERALD_API_KEY, jwtSecret: JWT_SECRET })
    .listen(Number(PORT), '127.0.0.1', () => console.log(`backend on http://127.0.0.1:${PORT}`));
}
