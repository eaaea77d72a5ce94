// @herald/node against a real Herald: publishing, batches, idempotency keys,
// typed errors, revocations.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Herald, HeraldError } from '@herald/node';
import { ADMIN_KEY, API_KEY, SCOPED_KEY, inbox, mintToken, recordingFetch, startHerald, userStatus } from './helpers.mjs';

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
let h;
before(async () => { h = await startHerald(); });
after(async () => { await h?.cleanup(); });

const client = (opts = {}) => new Herald({ url: h.base, apiKey: API_KEY, ...opts });

/** Runs fn, which must reject with a HeraldError; returns it. */
async function heraldError(fn) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof HeraldError, `not a HeraldError: ${e}`);
    return e;
  }
  assert.fail('did not reject');
}

test('publish to users, a tenant and a role; every field round-trips', async () => {
  const herald = client({ url: `${h.base}/` }); // a trailing slash is fine
  const expires = new Date(Date.now() + 3_600_000);
  const { id: toUsers } = await herald.publish({
    tenant: 'initech', to: { users: ['ann', 'ben'] }, type: 'invoice.paid', title: 'Invoice paid',
    body: 'INV-1 was paid', data: { invoice: 'INV-1', amount: 42 }, expires_at: expires,
  });
  assert.match(toUsers, ULID);
  const { id: toTenant } = await herald.publish({ tenant: 'initech', to: { tenant: true }, type: 'maintenance', title: 'Down at 02:00' });
  const { id: toAdmins } = await herald.publish({ tenant: 'initech', to: { role: 'admin' }, type: 'audit.alert', title: 'New admin login' });

  const ann = await inbox(h, { sub: 'ann', tenant: 'initech', role: 'admin' });
  assert.deepEqual(ann.map((n) => n.id), [toAdmins, toTenant, toUsers]);
  const n = ann[2];
  assert.equal(n.type, 'invoice.paid');
  assert.equal(n.body, 'INV-1 was paid');
  assert.deepEqual(n.data, { invoice: 'INV-1', amount: 42 });
  assert.equal(Date.parse(n.expires_at), expires.getTime());
  assert.deepEqual((await inbox(h, { sub: 'ben', tenant: 'initech' })).map((n) => n.id), [toTenant, toUsers]);
  assert.deepEqual((await inbox(h, { sub: 'cat', tenant: 'initech' })).map((n) => n.id), [toTenant]);
  assert.deepEqual(await inbox(h, { sub: 'ann', tenant: 'globex', role: 'admin' }), []);
});

test('publishLive: 202 with an id, never stored; topics need it', async () => {
  const herald = client();
  const { id } = await herald.publishLive({ tenant: 'livetest', to: { topics: ['project.42'] }, type: 'order:updated', data: { order: 7 } });
  assert.match(id, ULID);
  const again = await herald.publishLive({ tenant: 'livetest', to: { users: ['dan'] }, type: 'job:progress', data: { pct: 5 } },
    { idempotencyKey: 'job-5' });
  const retry = await herald.publishLive({ tenant: 'livetest', to: { users: ['dan'] }, type: 'job:progress', data: { pct: 5 } },
    { idempotencyKey: 'job-5' });
  assert.equal(retry.id, again.id);
  assert.deepEqual(await inbox(h, { sub: 'dan', tenant: 'livetest' }), []);
  const e = await heraldError(() => herald.publishLive({ tenant: 'livetest', to: { topics: ['p'] }, type: 'connect' }));
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.status, 400);
});

test('publishBatch: ids in order, all or nothing', async () => {
  const { ids } = await client().publishBatch([
    { tenant: 'acme', to: { users: ['dan'] }, type: 'chat.message', title: 'one' },
    { tenant: 'acme', to: { users: ['dan'] }, type: 'chat.message', title: 'two' },
    { tenant: 'acme', to: { users: ['eve'] }, type: 'chat.message', title: 'for eve' },
  ]);
  assert.equal(ids.length, 3);
  assert.deepEqual((await inbox(h, { sub: 'dan' })).map((n) => [n.id, n.title]), [[ids[1], 'two'], [ids[0], 'one']]);

  const f = recordingFetch();
  const e = await heraldError(() => client({ fetch: f }).publishBatch([
    { tenant: 'acme', to: { users: ['dan'] }, type: 'ok', title: 'fine' },
    { tenant: 'acme', to: { users: ['dan'] }, type: 'bad type!', title: 'invalid' },
  ]));
  assert.equal(e.status, 400);
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.message, 'invalid notification at index 1');
  assert.equal(f.attempts.length, 1);
  assert.equal((await inbox(h, { sub: 'dan' })).length, 2, 'a rejected batch stored nothing');
});

test('idempotency keys: the caller\'s replays, a mismatch is 422, generated ones are fresh per call', async () => {
  const f = recordingFetch();
  const herald = client({ fetch: f });
  const n = { tenant: 'acme', to: { users: ['fay'] }, type: 'order.paid', title: 'Order 1234 paid' };
  const first = await herald.publish(n, { idempotencyKey: 'order-1234-paid' });
  const again = await herald.publish(n, { idempotencyKey: 'order-1234-paid' });
  assert.equal(again.id, first.id);
  const e = await heraldError(() => herald.publish({ ...n, title: 'refunded' }, { idempotencyKey: 'order-1234-paid' }));
  assert.equal(e.status, 422);
  assert.equal(e.code, 'idempotency_mismatch');
  const a = await herald.publish(n);
  const b = await herald.publish(n);
  assert.notEqual(a.id, b.id);
  assert.equal(f.attempts.length, 5, 'a 422 is not retried');
  const [k3, k4] = [f.attempts[3].key, f.attempts[4].key];
  assert.ok(k3 && k4 && k3 !== k4 && k3 !== 'order-1234-paid', `generated keys ${k3} ${k4}`);
  assert.equal((await inbox(h, { sub: 'fay' })).length, 3);
});

test('typed errors carry status, code and correlation id, and are never retried', async () => {
  const ok = { tenant: 'acme', to: { users: ['gus'] }, type: 't', title: 'x' };
  for (const [name, apiKey, n, status, code] of [
    ['unknown key', 'not-a-key-0123456789', ok, 401, 'unauthorized'],
    ['no title', API_KEY, { ...ok, title: '' }, 400, 'invalid_request'],
    ['two audiences', API_KEY, { ...ok, to: { users: ['a'], tenant: true } }, 400, 'invalid_request'],
    ['scoped key, other tenant', SCOPED_KEY, { ...ok, tenant: 'globex' }, 403, 'forbidden'],
    ['too large', API_KEY, { ...ok, data: { pad: 'x'.repeat(70 << 10) } }, 413, 'too_large'],
  ]) {
    const f = recordingFetch();
    const e = await heraldError(() => client({ apiKey, fetch: f }).publish(n));
    assert.equal(e.status, status, name);
    assert.equal(e.code, code, name);
    assert.match(e.correlationId, /^[0-9a-f]{16}$/, name);
    assert.equal(e.temporary, false, name);
    assert.equal(e.attempts, 1, name);
    assert.equal(f.attempts.length, 1, `${name}: sent ${f.attempts.length} times`);
  }
  // A scoped key's tenant is the default.
  await new Herald({ url: h.base, apiKey: SCOPED_KEY }).publish({ to: { users: ['gus'] }, type: 't', title: 'scoped' });
  assert.deepEqual((await inbox(h, { sub: 'gus' })).map((n) => n.title), ['scoped']);
});

test('revocations: user (and lifting it) and token, admin key only', async () => {
  const admin = new Herald({ url: h.base, apiKey: ADMIN_KEY });
  // Issued a second ago: tokens from the revocation's own second are accepted (iat has second precision).
  const old = mintToken({ sub: 'mal', tenant: 'acme', extra: { iat: Math.floor(Date.now() / 1000) - 1 } });
  assert.equal(await userStatus(h, old), 200);
  const { revokedAt } = await admin.revokeUser('acme', 'mal');
  assert.ok(Math.abs(Date.parse(revokedAt) - Date.now()) < 60_000, revokedAt);
  assert.equal(await userStatus(h, old), 401);
  await admin.liftUserRevocation('acme', 'mal');
  assert.equal(await userStatus(h, old), 200);
  await admin.liftUserRevocation('acme', 'no such/user'); // path-escaped; absent is fine

  const exp = new Date(Date.now() + 3_600_000);
  const leaked = mintToken({ sub: 'tom', tenant: 'acme', extra: { jti: 'leaked-1', exp: Math.floor(exp.getTime() / 1000) } });
  await admin.revokeToken('leaked-1', exp);
  assert.equal(await userStatus(h, leaked), 401);
  assert.equal(await userStatus(h, mintToken({ sub: 'tom', tenant: 'acme' })), 200);

  const e = await heraldError(() => client().revokeUser('acme', 'x'));
  assert.equal(e.status, 403);
  assert.equal(e.code, 'forbidden');
  assert.equal((await heraldError(() => admin.revokeToken('past', new Date(Date.now() - 3_600_000)))).status, 400);
});
