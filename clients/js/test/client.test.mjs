// Unit tests of @herald/client against a real Herald (built from this
// repository and started by the tests).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { HeraldClient, HeraldError, LruSet, fullJitter, reconnectAfterMs, tokenExpiry } from '../dist/index.js';
import { Herald, freePort, mintToken, record, sleep, tempDir, waitFor } from './herald.mjs';
import { rmSync } from 'node:fs';

const FAST = { backoff: { baseMs: 50, maxMs: 400 }, requestTimeoutMs: 5000 };

function newClient(herald, opts) {
  return new HeraldClient({ url: herald.base, WebSocket, ...FAST, ...opts });
}

describe('pure helpers', () => {
  test('LruSet is bounded and refreshes on add', () => {
    const s = new LruSet(3);
    for (const k of ['a', 'b', 'c']) s.add(k);
    s.add('a'); // a is now the most recent
    s.add('d'); // evicts b
    assert.equal(s.size, 3);
    assert.ok(s.has('a') && s.has('c') && s.has('d'));
    assert.ok(!s.has('b'));
  });

  test('full jitter stays within [0, min(max, base*2^n))', () => {
    for (let n = 0; n < 20; n++) {
      const cap = Math.min(5000, 100 * 2 ** n);
      assert.equal(fullJitter(n, 100, 5000, () => 0), 0);
      assert.ok(fullJitter(n, 100, 5000, () => 0.999999) < cap);
      assert.ok(fullJitter(n, 100, 5000, () => 0.999999) >= cap - 1);
    }
  });

  test('reconnect_after_ms is parsed from the 4009 reason', () => {
    assert.equal(reconnectAfterMs('shutdown;reconnect_after_ms=1234'), 1234);
    assert.equal(reconnectAfterMs('shutdown'), undefined);
    assert.equal(reconnectAfterMs(''), undefined);
    assert.equal(reconnectAfterMs('shutdown;reconnect_after_ms=x'), undefined);
  });

  test('tokenExpiry decodes exp without verifying', () => {
    const tok = mintToken({ ttlSec: 100 });
    const exp = tokenExpiry(tok);
    assert.ok(Math.abs(exp - (Date.now() + 100_000)) < 2000);
    assert.equal(tokenExpiry('not-a-jwt'), undefined);
    assert.equal(tokenExpiry('a.%%%.c'), undefined);
  });

  test('options are validated', () => {
    assert.throws(() => new HeraldClient({ url: 'http://x', WebSocket }), /token/);
    assert.throws(() => new HeraldClient({ url: 'http://x', token: 't', WebSocket: undefined }), /WebSocket/);
  });
});

describe('against a running Herald', () => {
  let herald;
  before(async () => {
    herald = await Herald.start();
  });
  after(async () => {
    await herald?.cleanup();
  });

  test('without --dev there is no demo page and no dev endpoint', async () => {
    for (const path of ['/', '/demo/app.js', '/v1/dev/token?user=alice']) {
      assert.equal((await fetch(herald.base + path)).status, 404, path);
    }
    const r = await fetch(herald.base + '/v1/dev/publish', { method: 'POST', headers: { Authorization: `Bearer ${mintToken()}` }, body: '{"title":"x"}' });
    assert.equal(r.status, 404);
  });

  test('connect, receive, unread, and the state machine', async () => {
    const client = newClient(herald, { token: mintToken({ sub: 'u-connect' }) });
    const ev = record(client);
    assert.equal(client.state, 'idle');
    await client.connect();
    assert.equal(client.state, 'live');
    assert.deepEqual(ev.state.map((s) => s.state), ['connecting', 'authenticating', 'live']);
    assert.equal(ev.ready[0].user, 'u-connect');
    assert.equal(ev.ready[0].tenant, 'demo');
    assert.equal(ev.ready[0].resumed, false);
    assert.deepEqual(ev.unread, [{ count: 0, unseen: 0, byCategory: {} }]);

    const id = await herald.publish(['u-connect'], { title: 'Invoice paid', data: { amount: 42 } });
    await waitFor(() => ev.notification.length === 1, { what: 'notification' });
    const n = ev.notification[0];
    assert.equal(n.id, id);
    assert.equal(n.title, 'Invoice paid');
    assert.deepEqual(n.data, { amount: 42 });
    assert.equal(n.read, false);
    assert.equal(typeof n.position, 'string');
    assert.equal(client.position, n.position);
    await waitFor(() => client.unreadCount === 1, { what: 'unread 1' });
    client.close();
    assert.equal(client.state, 'closed');
  });

  test('markRead resolves on ack and every tab gets the read event', async () => {
    const tok = mintToken({ sub: 'u-read' });
    const a = newClient(herald, { token: tok });
    const b = newClient(herald, { token: tok });
    const evA = record(a);
    const evB = record(b);
    await Promise.all([a.connect(), b.connect()]);
    const id1 = await herald.publish(['u-read']);
    const id2 = await herald.publish(['u-read']);
    await waitFor(() => evB.notification.length === 2 && evA.notification.length === 2, { what: 'notifications' });

    await a.markRead(id1);
    await waitFor(() => evB.read.length === 1 && evA.read.length === 1, { what: 'read events' });
    assert.deepEqual(evB.read[0], { ids: [id1], all: false });
    await waitFor(() => b.unreadCount === 1, { what: 'unread 1 in tab b' });

    await a.markRead([id2, id1]); // id1 is already read: no error
    await waitFor(() => b.unreadCount === 0, { what: 'unread 0' });

    await assert.rejects(a.markRead('01ARZ3NDEKTSV4RRFFQ69G5FAV'), (e) => e instanceof HeraldError && e.code === 'not_found');
    a.close();
    b.close();
  });

  test('markAllRead, list with paging and filters, delete', async () => {
    const client = newClient(herald, { token: mintToken({ sub: 'u-list' }) });
    const ev = record(client);
    await client.connect();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await herald.publish(['u-list'], { title: `n${i}` }));
    await waitFor(() => ev.notification.length === 5, { what: 'five notifications' });

    const page1 = await client.list({ limit: 2 });
    assert.deepEqual(page1.notifications.map((n) => n.id), [ids[4], ids[3]]);
    assert.equal(page1.next, ids[3]);
    const page2 = await client.list({ limit: 10, before: page1.next });
    assert.deepEqual(page2.notifications.map((n) => n.id), [ids[2], ids[1], ids[0]]);
    assert.equal(page2.next, null);

    await client.markRead(ids[0]);
    const unread = await client.list({ unread: true });
    assert.deepEqual(unread.notifications.map((n) => n.id), [ids[4], ids[3], ids[2], ids[1]]);

    await client.delete(ids[2]);
    await waitFor(() => ev.deleted.length === 1, { what: 'deleted event' });
    assert.deepEqual(ev.deleted[0], { id: ids[2], expired: false });
    await assert.rejects(client.delete(ids[2]), (e) => e.code === 'not_found' && /^[0-9a-f]{16}$/.test(e.correlationId));
    assert.equal((await client.list()).notifications.length, 4);

    await client.markAllRead();
    await waitFor(() => ev.read.some((r) => r.all), { what: 'read all event' });
    await waitFor(() => client.unreadCount === 0, { what: 'unread 0' });
    assert.equal((await client.list({ unread: true })).notifications.length, 0);

    // More than 4 concurrent requests: queued client-side, all succeed.
    const results = await Promise.all(Array.from({ length: 9 }, () => client.list({ limit: 1 })));
    assert.ok(results.every((r) => r.notifications.length === 1));
    client.close();
    await assert.rejects(client.list(), (e) => e.code === 'closed');
  });

  test('duplicates are dropped by id', async () => {
    // A transport that delivers every server message twice.
    class Doubling extends WebSocket {
      set onmessage(fn) {
        super.onmessage = fn && ((ev) => {
          fn(ev);
          if (JSON.parse(ev.data).type === 'notification') fn(ev);
        });
      }
      get onmessage() {
        return super.onmessage;
      }
    }
    const client = newClient(herald, { token: mintToken({ sub: 'u-dup' }), WebSocket: Doubling });
    const ev = record(client);
    await client.connect();
    const id1 = await herald.publish(['u-dup']);
    const id2 = await herald.publish(['u-dup']);
    await waitFor(() => ev.notification.length >= 2, { what: 'notifications' });
    await sleep(200);
    assert.deepEqual(ev.notification.map((n) => n.id), [id1, id2]);
    client.close();
  });

  test('the position is kept in storage and resumed by a new client of the same user', async () => {
    const mem = new Map();
    const storage = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => void mem.set(k, v) };
    const tok = () => mintToken({ sub: 'u-store' });
    const first = newClient(herald, { getToken: tok, storage });
    const ev1 = record(first);
    await first.connect();
    const id1 = await herald.publish(['u-store']);
    await waitFor(() => ev1.notification.length === 1, { what: 'first notification' });
    first.close();

    const missed = await herald.publish(['u-store'], { title: 'missed' });
    const second = newClient(herald, { getToken: tok, storage });
    const ev2 = record(second);
    await second.connect();
    assert.equal(ev2.ready[0].resumed, true);
    await waitFor(() => ev2.notification.length === 1, { what: 'replayed notification' });
    assert.equal(ev2.notification[0].id, missed);
    assert.notEqual(ev2.notification[0].id, id1);
    second.close();

    // Another user's stored position is not used.
    const other = newClient(herald, { token: mintToken({ sub: 'u-store-other' }), storage });
    const ev3 = record(other);
    await other.connect();
    assert.equal(ev3.ready[0].resumed, false);
    other.close();
  });

  test('token refresh through the provider keeps the connection', async () => {
    // Tokens live 3 s and this server allows 1 s of leeway: without the
    // in-band refresh the server would close the socket (4003) after ~4 s.
    const h = await Herald.start({ args: ['--jwt-leeway', '1s'] });
    try {
      let calls = 0;
      const client = newClient(h, {
        getToken: () => {
          calls++;
          return mintToken({ sub: 'u-refresh', ttlSec: 3 });
        },
        refreshBeforeMs: 1500,
      });
      const ev = record(client);
      await client.connect();
      await sleep(6500);
      assert.ok(calls >= 3, `getToken called ${calls} times`);
      assert.equal(client.state, 'live');
      assert.deepEqual(ev.state.map((s) => s.state), ['connecting', 'authenticating', 'live'], 'no reconnect');
      const id = await h.publish(['u-refresh']);
      await waitFor(() => ev.notification.some((n) => n.id === id), { what: 'notification after refreshes' });
      client.close();

      // A fixed token cannot be refreshed: the server closes with 4003 and the client fails.
      const fixed = newClient(h, { token: mintToken({ sub: 'u-fixed', ttlSec: 2 }) });
      const evf = record(fixed);
      await fixed.connect();
      await waitFor(() => fixed.state === 'failed', { timeoutMs: 8000, what: 'failed after expiry' });
      assert.equal(evf.state.at(-1).closeCode, 4003);
    } finally {
      await h.cleanup();
    }
  });

  test('4001: a fixed bad token fails at once', async () => {
    const client = newClient(herald, { token: mintToken({ sub: 'u-bad', secret: 'wrong-secret-wrong-secret-wrong-secret!!' }) });
    const ev = record(client);
    await assert.rejects(client.connect(), (e) => e.code === 'failed');
    assert.equal(client.state, 'failed');
    assert.equal(ev.state.at(-1).closeCode, 4001);
    assert.ok(ev.error.some((e) => e.code === 'auth_rejected' && e.closeCode === 4001));
    await assert.rejects(client.list(), (e) => e.code === 'failed');
  });

  test('4001: the provider is asked for a new token, and the client gives up after N rejections', async () => {
    let calls = 0;
    const good = newClient(herald, {
      getToken: () => (++calls === 1 ? mintToken({ sub: 'u-4001', secret: 'wrong-secret-wrong-secret-wrong-secret!!' }) : mintToken({ sub: 'u-4001' })),
    });
    const ev = record(good);
    await good.connect();
    assert.equal(calls, 2);
    assert.ok(ev.state.some((s) => s.state === 'reconnecting' && s.closeCode === 4001));
    good.close();

    let badCalls = 0;
    const bad = newClient(herald, {
      maxAuthFailures: 3,
      getToken: () => {
        badCalls++;
        return mintToken({ sub: 'u-4001b', secret: 'wrong-secret-wrong-secret-wrong-secret!!' });
      },
    });
    await assert.rejects(bad.connect(), (e) => e.code === 'failed');
    assert.equal(badCalls, 3);
    assert.equal(bad.state, 'failed');

    // A provider that returns the very token the server refused: no retry with it.
    const sameTok = mintToken({ sub: 'u-4001c', secret: 'wrong-secret-wrong-secret-wrong-secret!!' });
    const same = newClient(herald, { maxAuthFailures: 2, getToken: () => sameTok });
    const evs = record(same);
    await assert.rejects(same.connect(), (e) => e.code === 'failed');
    assert.equal(evs.state.filter((s) => s.state === 'authenticating').length, 1, 'the rejected token was sent once');
  });
});

describe('server restarts', () => {
  let dir;
  let herald;
  before(async () => {
    dir = tempDir();
    herald = await Herald.start({ dir });
  });
  after(async () => {
    await herald?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('resume after a crash: notifications published while down arrive once after reconnect', async () => {
    let tokenCalls = 0;
    const client = newClient(herald, {
      getToken: () => {
        tokenCalls++;
        return mintToken({ sub: 'u-restart' });
      },
    });
    const ev = record(client);
    await client.connect();
    const id1 = await herald.publish(['u-restart'], { title: 'before' });
    await waitFor(() => ev.notification.length === 1, { what: 'first notification' });

    await herald.stop('SIGKILL');
    await waitFor(() => client.state === 'reconnecting' || client.state === 'connecting', { what: 'reconnecting' });

    // Publish while the client's server is down: a second process on another
    // port, on the same database, takes the writes, then stops.
    const side = await Herald.start({ database: herald.database, port: await freePort() });
    const missed = [await side.publish(['u-restart'], { title: 'missed 1' }), await side.publish(['u-restart'], { title: 'missed 2' })];
    await side.stop('SIGTERM');

    // A request made while reconnecting is queued and sent once live.
    const queued = client.markRead(missed[0]);

    await herald.run(); // same port, same database
    await queued;
    await waitFor(() => ev.notification.length === 3, { what: 'missed notifications', timeoutMs: 15_000 });
    const id4 = await herald.publish(['u-restart'], { title: 'after' });
    await waitFor(() => ev.notification.length === 4, { what: 'live after resume' });
    await sleep(200);

    assert.deepEqual(ev.notification.map((n) => n.id), [id1, ...missed, id4]);
    assert.equal(new Set(ev.notification.map((n) => n.id)).size, 4, 'no duplicates');
    assert.equal(ev.ready.length, 2);
    assert.equal(ev.ready[1].resumed, true);
    assert.ok(tokenCalls >= 2, 'the provider is called on every reconnect');
    assert.ok(ev.read.some((r) => r.ids.includes(missed[0])));
    client.close();
  });

  test('4009 on drain: the reconnect_after_ms hint is honoured; requests time out while down', async () => {
    const client = newClient(herald, { token: mintToken({ sub: 'u-drain' }), requestTimeoutMs: 400 });
    const ev = record(client);
    await client.connect();
    await herald.stop('SIGTERM');
    const rec = await waitFor(() => ev.state.find((s) => s.state === 'reconnecting'), { what: 'reconnecting' });
    assert.equal(rec.closeCode, 4009);
    const hint = reconnectAfterMs(rec.reason);
    assert.ok(hint !== undefined && hint <= 1000, `reason ${rec.reason}`);
    assert.equal(rec.delayMs, hint);

    await assert.rejects(client.list(), (e) => e.code === 'timeout');

    await herald.run();
    await waitFor(() => client.state === 'live', { timeoutMs: 15_000, what: 'live again' });
    const id = await herald.publish(['u-drain']);
    await waitFor(() => ev.notification.some((n) => n.id === id), { what: 'notification after drain' });
    client.close();
  });

  test('topics: subscribe, live events, forbidden, and resubscribe after a restart', async () => {
    const client = newClient(herald, { getToken: () => mintToken({ sub: 'u-topics', extra: { topics: ['room.*'] } }) });
    const ev = record(client);
    await client.subscribe('room.early'); // before connect: remembered
    await client.connect();
    await client.subscribe(['room.1']);
    await assert.rejects(client.subscribe(['secret.1']), (e) => e.code === 'forbidden');
    assert.deepEqual(client.topics.sort(), ['room.1', 'room.early']);

    const id1 = await herald.publishLive({ topics: ['room.1'] }, 'order:updated', { order: 7 });
    const idEarly = await herald.publishLive({ topics: ['room.early'] }, 'typing', { who: 'x' });
    await waitFor(() => ev.event.length === 2, { what: 'two live events' });
    assert.deepEqual(ev.event.map((e) => [e.id, e.topic, e.type]), [[id1, 'room.1', 'order:updated'], [idEarly, 'room.early', 'typing']]);
    assert.deepEqual(ev.event[0].data, { order: 7 });
    assert.equal(ev.notification.length, 0, 'a live event is not a notification');

    // A restart: the client reconnects and subscribes again by itself.
    await herald.stop('SIGTERM');
    await herald.run();
    await waitFor(() => client.state === 'live' && ev.ready.length === 2, { timeoutMs: 15_000, what: 'live again' });
    // The resubscribe is sent first after ready; a live event to the user
    // after the acknowledged unsubscribe below proves the order.
    await client.unsubscribe('room.early');
    const id2 = await herald.publishLive({ topics: ['room.1'] }, 'order:updated', { order: 8 });
    await herald.publishLive({ topics: ['room.early'] }, 'typing', { who: 'y' });
    const marker = await herald.publishLive({ users: ['u-topics'] }, 'marker', {});
    await waitFor(() => ev.event.some((e) => e.id === marker), { what: 'the marker' });
    assert.deepEqual(ev.event.slice(2).map((e) => e.id), [id2, marker], 'room.1 resubscribed, room.early left');
    assert.deepEqual(client.topics, ['room.1']);
    client.close();
  });
});

describe('SSE transport', () => {
  let herald;
  before(async () => {
    herald = await Herald.start();
  });
  after(async () => {
    await herald?.cleanup();
  });

  test('ticket, stream, REST requests and resume', async () => {
    const client = new HeraldClient({
      url: herald.base,
      transport: 'sse',
      EventSource: FetchEventSource,
      getToken: () => mintToken({ sub: 'u-sse' }),
      ...FAST,
    });
    const ev = record(client);
    await client.connect();
    const id1 = await herald.publish(['u-sse'], { title: 'over sse' });
    await waitFor(() => ev.notification.length === 1, { what: 'sse notification' });
    assert.equal(ev.notification[0].id, id1);
    await waitFor(() => client.unreadCount === 1, { what: 'unread 1' });

    await client.markRead(id1);
    await waitFor(() => ev.read.length === 1 && client.unreadCount === 0, { what: 'read over sse' });
    const page = await client.list({ limit: 5 });
    assert.deepEqual(page.notifications.map((n) => n.id), [id1]);
    await client.delete(id1);
    await waitFor(() => ev.deleted.length === 1, { what: 'deleted over sse' });
    await assert.rejects(client.delete(id1), (e) => e.code === 'not_found' && e.status === 404);

    // Drain and restart: the stream is reopened with a new ticket and resumes.
    await herald.stop('SIGTERM');
    await waitFor(() => client.state !== 'live', { what: 'stream closed' });
    const side = await Herald.start({ database: herald.database, port: await freePort() });
    const missed = await side.publish(['u-sse'], { title: 'missed over sse' });
    await side.stop('SIGTERM');
    await herald.run();
    await waitFor(() => ev.notification.some((n) => n.id === missed), { timeoutMs: 15_000, what: 'missed over sse' });
    assert.equal(new Set(ev.notification.map((n) => n.id)).size, ev.notification.length);
    client.close();
  });

  test('topics on the stream URL; subscribe() is refused with SSE', async () => {
    const client = new HeraldClient({
      url: herald.base,
      transport: 'sse',
      EventSource: FetchEventSource,
      getToken: () => mintToken({ sub: 'u-sse-topics', extra: { topics: ['board.*'] } }),
      topics: ['board.1'],
      ...FAST,
    });
    const ev = record(client);
    await client.connect();
    await assert.rejects(client.subscribe('board.2'), (e) => e.code === 'unsupported');
    // The stream may join its topics just after ready: publish until one arrives.
    await waitFor(async () => {
      await herald.publishLive({ topics: ['board.1'] }, 'board:changed', { n: 1 });
      return ev.event.length > 0;
    }, { what: 'a live event over SSE', intervalMs: 100 });
    assert.equal(ev.event[0].topic, 'board.1');
    assert.equal(ev.event[0].type, 'board:changed');
    client.close();
  });
});

/** A minimal EventSource for Node 20 (which has none), on fetch. */
class FetchEventSource {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.onerror = null;
    this.listeners = new Map();
    this.ctl = new AbortController();
    this.run();
  }
  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }
  close() {
    this.readyState = 2;
    this.ctl.abort();
  }
  fail() {
    if (this.readyState === 2) return;
    this.readyState = 2;
    this.onerror?.({});
  }
  async run() {
    try {
      const res = await fetch(this.url, { headers: { Accept: 'text/event-stream' }, signal: this.ctl.signal });
      if (res.status !== 200) return this.fail();
      this.readyState = 1;
      const dec = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          this.dispatch(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
      this.fail();
    } catch {
      this.fail();
    }
  }
  dispatch(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0 || this.readyState === 2) return;
    for (const fn of this.listeners.get(event) ?? []) fn({ data: data.join('\n') });
  }
}

describe('inbox model', () => {
  let herald;
  before(async () => {
    herald = await Herald.start();
  });
  after(async () => {
    await herald?.cleanup();
  });

  function inboxRecord(client) {
    const ev = record(client);
    for (const k of ['archived', 'unarchived', 'preferences']) {
      ev[k] = [];
      client.on(k, (p) => ev[k].push(p));
    }
    return ev;
  }

  for (const transport of ['websocket', 'sse']) {
    test(`categories, seen badge, archive, replacements and preferences over ${transport}`, async () => {
      const user = `u-inbox-${transport}`;
      const opts = transport === 'sse' ? { transport, EventSource: FetchEventSource } : {};
      const tok = mintToken({ sub: user });
      const a = newClient(herald, { token: tok, ...opts });
      const b = newClient(herald, { token: tok, ...opts });
      const evA = inboxRecord(a);
      const evB = inboxRecord(b);
      const billing = await herald.publish([user], { category: 'billing' });
      await Promise.all([a.connect(), b.connect()]);
      assert.equal(evA.ready[0].unseen, 1);
      assert.deepEqual(evA.ready[0].byCategory, { billing: 1 });

      const social = await herald.publish([user], { category: 'social' });
      await waitFor(() => evB.notification.some((n) => n.id === social) && b.unseenCount === 2, { what: 'second notification' });
      assert.equal(evB.notification.at(-1).category, 'social');
      assert.deepEqual(await a.counts(), { count: 2, unseen: 2, byCategory: { billing: 1, social: 1 } });
      const page = await a.list({ category: 'billing' });
      assert.deepEqual(page.notifications.map((n) => n.id), [billing]);

      // Seen clears the badge in every tab; read stays.
      await a.markSeen();
      await waitFor(() => a.unseenCount === 0 && b.unseenCount === 0, { what: 'badge cleared in both tabs' });
      assert.equal(b.unreadCount, 2);

      // Archive and unarchive reach both tabs.
      await b.archive(billing);
      await waitFor(() => evA.archived.length === 1 && a.unreadCount === 1, { what: 'archived event' });
      assert.deepEqual(evA.archived[0], { ids: [billing], all: false });
      const archived = await a.list({ archived: true });
      assert.deepEqual(archived.notifications.map((n) => [n.id, n.archived]), [[billing, true]]);
      await a.unarchive('all');
      await waitFor(() => evB.unarchived.length === 1 && b.unreadCount === 2, { what: 'unarchived event' });
      assert.equal(evB.unarchived[0].all, true);

      // A replacement updates in place.
      const first = await herald.publish([user], { collapse_key: 'build-7', title: 'running' });
      const second = await herald.publish([user], { collapse_key: 'build-7', title: 'passed' });
      await waitFor(() => evA.notification.some((n) => n.id === second), { what: 'replacement' });
      const repl = evA.notification.find((n) => n.id === second);
      assert.equal(repl.replaces, first);
      assert.equal(repl.collapse_key, 'build-7');
      await waitFor(() => a.unreadCount === 3, { what: 'unread 3 after a replacement' });

      // Preferences: both tabs hear of them; muted categories never arrive.
      const stored = await a.setPreferences({ muted_categories: ['social'] });
      assert.deepEqual(stored, { muted_categories: ['social'], muted_types: [] });
      await waitFor(() => evB.preferences.length === 1, { what: 'preferences event' });
      assert.deepEqual(await b.preferences(), stored);
      await herald.publish([user], { category: 'social' });
      const last = await herald.publish([user]);
      await waitFor(() => evB.notification.some((n) => n.id === last), { what: 'last notification' });
      assert.ok(!evB.notification.some((n) => n.category === 'social' && n.id !== social), 'a muted category arrived');
      await assert.rejects(a.setPreferences({ muted_categories: ['*'] }), (e) => e instanceof HeraldError &&
        (e.code === 'invalid_message' || e.code === 'invalid_request'));
      await assert.rejects(a.archive('01ARZ3NDEKTSV4RRFFQ69G5FAV'), (e) => e.code === 'not_found');
      a.close();
      b.close();
    });
  }
});
