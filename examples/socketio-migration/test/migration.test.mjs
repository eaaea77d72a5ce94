// The migration example end to end, against a real Herald: the backend
// publishes with @herald/node, the socket.io-client frontend receives live,
// marks read, and after a disconnect resumes and gets what it missed.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';

import { API_KEY, Herald, SECRET, waitFor } from '../../../clients/js/test/herald.mjs';
import { createBackend } from '../backend.mjs';
import { connectInbox } from '../frontend.mjs';

let herald;
let backend;
let backendUrl;
const sockets = [];

before(async () => {
  herald = await Herald.start();
  backend = createBackend({ heraldUrl: herald.base, apiKey: API_KEY, jwtSecret: SECRET });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  backendUrl = `http://127.0.0.1:${backend.address().port}`;
});

after(async () => {
  for (const s of sockets) s.disconnect();
  backend?.close();
  await herald?.cleanup();
});

function inbox(user, ioOptions) {
  const got = { notifications: [], unread: [] };
  const socket = connectInbox({
    heraldUrl: herald.base, backendUrl, user, ioOptions,
    onNotification: (n) => got.notifications.push(n),
    onUnread: (c) => got.unread.push(c),
  });
  sockets.push(socket);
  got.socket = socket;
  return got;
}

test('backend publish reaches the socket.io-client frontend; mark-read; resume after a disconnect', async () => {
  const alice = inbox('alice');
  await waitFor(() => alice.unread.length > 0, { what: 'ready' });

  // The backend's "order paid" publishes to alice (twice: one notification, by its idempotency key).
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${backendUrl}/orders/1234/pay?user=alice`, { method: 'POST' });
    assert.equal(r.status, 201);
  }
  await waitFor(() => alice.notifications.length === 1, { what: 'the notification' });
  const n = alice.notifications[0];
  assert.equal(n.title, 'Order 1234 paid');
  assert.deepEqual(n.data, { order: '1234' });
  assert.equal(n.read, false);
  await waitFor(() => alice.unread.at(-1) === 1, { what: 'unread 1' });
  assert.deepEqual(await alice.socket.emitWithAck('notification:mark-read', { id: n.id }), { ok: true });
  await waitFor(() => alice.unread.at(-1) === 0, { what: 'unread 0' });

  // A tenant-wide announcement reaches her too.
  assert.equal((await fetch(`${backendUrl}/announcements`, { method: 'POST' })).status, 201);
  await waitFor(() => alice.notifications.length === 2, { what: 'the announcement' });
  assert.equal(alice.notifications[1].type, 'announcement');

  // Offline while an order is paid: on reconnect (auth carries since) she gets it, once.
  alice.socket.disconnect();
  assert.equal((await fetch(`${backendUrl}/orders/5678/pay?user=alice`, { method: 'POST' })).status, 201);
  alice.socket.connect();
  await waitFor(() => alice.notifications.length === 3, { what: 'the missed notification' });
  assert.equal(alice.notifications[2].title, 'Order 5678 paid');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(alice.notifications.length, 3, 'nothing twice');
});

test('over WebSocket only, another user sees only their own', async () => {
  const bob = inbox('bob', { transports: ['websocket'] });
  await waitFor(() => bob.unread.length > 0, { what: 'ready' });
  assert.equal((await fetch(`${backendUrl}/orders/9/pay?user=bob`, { method: 'POST' })).status, 201);
  await waitFor(() => bob.notifications.length === 1, { what: "bob's notification" });
  assert.equal(bob.notifications[0].title, 'Order 9 paid');
});
