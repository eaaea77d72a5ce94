// The receiver against a real Herald: signatures verified by the
// standardwebhooks npm package, user.online / user.offline around a stream
// (a reload within the grace sends nothing), notification.unseen only for
// the recipient who did not read, retries with the same webhook-id, and
// forged or tampered requests refused.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Webhook } from 'standardwebhooks';

import { API_KEY, Herald, mintToken, waitFor } from '../../../clients/js/test/herald.mjs';
import { createReceiver } from '../receiver.mjs';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

let herald;
let receiver;
let url;
const events = []; // handled once each
const attempts = new Map(); // webhook-id -> requests seen
let failNext = 0; // answer 503 to this many more deliveries

before(async () => {
  receiver = createReceiver({ secret: SECRET, onEvent: (e) => events.push(e) });
  const handler = receiver.listeners('request')[0];
  receiver.removeAllListeners('request');
  receiver.on('request', (req, res) => {
    const id = req.headers['webhook-id'];
    attempts.set(id, (attempts.get(id) ?? 0) + 1);
    if (failNext > 0) {
      failNext--;
      req.resume();
      res.writeHead(503).end();
      return;
    }
    handler(req, res);
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  url = `http://127.0.0.1:${receiver.address().port}/herald-webhooks`;
  herald = await Herald.start({ args: ['--webhook-url', url, '--webhook-secret', SECRET, '--presence-grace', '400ms'] });
});

after(async () => {
  await herald?.cleanup();
  receiver?.close();
});

/** Opens an SSE stream for user (a connection, as far as presence goes) and waits for ready. */
async function connect(user) {
  const ac = new AbortController();
  const r = await fetch(`${herald.base}/v1/me/stream`, {
    headers: { Authorization: `Bearer ${mintToken({ sub: user })}`, Accept: 'text/event-stream' },
    signal: ac.signal,
  });
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  let text = '';
  while (!text.includes('event: ready')) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'stream ended before ready');
    text += Buffer.from(value).toString();
  }
  return () => {
    ac.abort();
    reader.cancel().catch(() => {});
  };
}

const typesFor = (user) => events.filter((e) => e.user === user).map((e) => e.type);

test('user.online, nothing for a reload, user.offline after the grace', async () => {
  let close = await connect('alice');
  await waitFor(() => typesFor('alice').length === 1, { what: 'user.online' });
  const online = events.find((e) => e.user === 'alice');
  assert.equal(online.type, 'user.online');
  assert.equal(online.tenant, 'demo');
  assert.match(online.id, /^msg_/);
  assert.ok(!Number.isNaN(Date.parse(online.created_at)));

  close(); // a reload: the page's stream closes and another opens
  close = await connect('alice');
  await new Promise((r) => setTimeout(r, 700));
  assert.deepEqual(typesFor('alice'), ['user.online']);

  close();
  await waitFor(() => typesFor('alice').length === 2, { what: 'user.offline' });
  assert.deepEqual(typesFor('alice'), ['user.online', 'user.offline']);
});

test('notification.unseen for the recipient who did not read, retried with the same id', async () => {
  failNext = 1; // the receiver is down for the first attempt
  const id = await herald.publish(['bob', 'carol'], { title: 'Invoice paid', fallback: { after_s: 1 } });
  const read = await fetch(`${herald.base}/v1/me/notifications/${id}/read`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${mintToken({ sub: 'carol' })}` },
  });
  assert.equal(read.status, 200);
  await waitFor(() => typesFor('bob').includes('notification.unseen'), { what: "bob's fallback", timeoutMs: 20_000 });
  const e = events.find((x) => x.user === 'bob');
  assert.equal(e.notification.id, id);
  assert.equal(e.notification.title, 'Invoice paid');
  assert.equal(e.notification.read, false);
  assert.equal(attempts.get(e.id), 2, 'one failed attempt, then the same webhook-id again');
  assert.deepEqual(typesFor('carol'), [], 'carol read it: no fallback');
});

test('forged and tampered requests are refused', async () => {
  const body = JSON.stringify({ id: 'msg_forged', type: 'user.online', created_at: new Date().toISOString(), tenant: 'demo', user: 'mallory' });
  const other = new Webhook(`whsec_${randomBytes(32).toString('base64')}`);
  const mine = new Webhook(SECRET);
  const now = new Date();
  const send = (payload, sig, ts = now) => fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': 'msg_forged', 'webhook-timestamp': String(Math.floor(ts / 1000)), 'webhook-signature': sig },
    body: payload,
  });
  assert.equal((await send(body, other.sign('msg_forged', now, body))).status, 400, 'another secret');
  assert.equal((await send(body.replace('mallory', 'admin'), mine.sign('msg_forged', now, body))).status, 400, 'tampered body');
  const old = new Date(Date.now() - 10 * 60_000);
  assert.equal((await send(body, mine.sign('msg_forged', old, body), old)).status, 400, 'replayed 10 minutes later');
  assert.equal((await send(body, mine.sign('msg_forged', now, body))).status, 204, 'the genuine one');
  assert.deepEqual(typesFor('mallory'), ['user.online']);
});
