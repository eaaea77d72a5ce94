// Retries against a real Herald: a real 429 (the per-key publish rate), a
// real 503 (the store's write lock held past the publish timeout) and a
// real connection refusal. A local HTTP server covers only what Herald
// never sends (an HTTP-date or huge Retry-After, a foreign body, other 5xx).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';

import { Herald, HeraldError, parseRetryAfter } from '@herald/node';
import { API_KEY, HeraldProcess, freePort, inbox, recordingFetch, startHerald, tempDir, waitFor } from './helpers.mjs';

const n = (user = 'alice', tenant = 'acme') => ({ tenant, to: { users: [user] }, type: 't', title: 'x' });

test('a real 429 is retried after Retry-After with the same key and body', async () => {
  const h = await startHerald({ args: ['--publish-rate', '2', '--publish-burst', '1'] });
  try {
    const f = recordingFetch();
    const herald = new Herald({ url: h.base, apiKey: API_KEY, fetch: f });
    await herald.publish(n()); // takes the burst
    const { id } = await herald.publish(n());
    const [a, b] = f.attempts.slice(1);
    assert.deepEqual(f.attempts.slice(1).map((x) => x.status), [429, 201]);
    assert.ok(b.at - a.at >= 1000, `retried after ${b.at - a.at} ms, before Retry-After: 1`);
    assert.ok(a.key && a.key === b.key && a.body === b.body, 'the retry changed the key or the body');
    assert.equal((await inbox(h, { sub: 'alice' }))[0].id, id);

    // Without retries, the 429 is the caller's, with the server's advice.
    const once = new Herald({ url: h.base, apiKey: API_KEY, retry: { maxAttempts: 1 } });
    await assert.rejects(once.publish(n()), (e) => e instanceof HeraldError && e.status === 429 && e.code === 'rate_limited' && e.retryAfterMs === 1000 && e.temporary);
    // An abort ends the wait at once.
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t = Date.now();
    await assert.rejects(new Herald({ url: h.base, apiKey: API_KEY }).publish(n(), { signal: ac.signal }), (e) => e instanceof HeraldError && (e.status === 429 || e.code === 'aborted'));
    assert.ok(Date.now() - t < 900, `abort took ${Date.now() - t} ms`);
  } finally {
    await h.cleanup();
  }
});

const haveSqlite = spawnSync('sqlite3', ['-version']).status === 0;
if (!haveSqlite) {
  const msg = '\n*** 503 retry test SKIPPED: sqlite3 not found (apt-get install -y sqlite3) ***\n';
  if (process.env.CI === 'true') throw new Error(msg + 'CI=true: sqlite3 is required');
  console.warn(msg);
}

test('a real 503 (store locked past the 5 s publish timeout) is retried with the same key: stored once', { skip: !haveSqlite && 'sqlite3 missing', timeout: 60_000 }, async () => {
  const dir = tempDir();
  const h = await startHerald({ dir, database: join(dir, 'herald.db') });
  // Another connection takes SQLite's write lock; Herald's writer waits for it.
  const lock = spawn('sqlite3', [h.database], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  lock.stdout.on('data', (d) => { out += d; });
  lock.stdin.write('BEGIN IMMEDIATE;\n.print locked\n');
  await waitFor(() => out.includes('locked'), { what: 'the write lock' });
  const release = () => { if (lock.stdin.writable) lock.stdin.end('ROLLBACK;\n.quit\n'); };
  try {
    const f = recordingFetch((a) => { if (a.status === 503) release(); });
    const { id } = await new Herald({ url: h.base, apiKey: API_KEY, fetch: f }).publish(n('una'));
    const statuses = f.attempts.map((a) => a.status);
    assert.equal(statuses[0], 503);
    assert.equal(statuses.at(-1), 201);
    assert.ok(f.attempts[1].at - f.attempts[0].at >= 1000, 'retried before Retry-After: 1');
    assert.ok(f.attempts.every((a) => a.key === f.attempts[0].key && a.body === f.attempts[0].body));
    assert.deepEqual((await inbox(h, { sub: 'una' })).map((x) => x.id), [id], 'stored exactly once');
  } finally {
    release();
    await h.cleanup();
  }
});

test('a refused connection is retried until Herald is up', async () => {
  const port = await freePort();
  let herald;
  let starting;
  const f = recordingFetch((a) => {
    if (a.error && !starting) starting = HeraldProcess.start({ port }).then((p) => { herald = p; });
  });
  try {
    const client = new Herald({ url: `http://127.0.0.1:${port}`, apiKey: API_KEY, fetch: f, retry: { maxAttempts: 12, baseDelayMs: 200, maxDelayMs: 1000 } });
    const { id } = await client.publish(n('val'));
    assert.ok(f.attempts[0].error, 'the first attempt should have failed');
    assert.equal(f.attempts.at(-1).status, 201);
    await starting;
    assert.deepEqual((await inbox(herald, { sub: 'val' })).map((x) => x.id), [id]);
  } finally {
    await starting?.catch(() => {});
    await herald?.cleanup();
  }
});

/** A local server answering each request with the next of answers (the last repeats). */
async function fakeHerald(answers) {
  let count = 0;
  const s = createServer((req, res) => {
    const [status, headers, body] = answers[Math.min(count++, answers.length - 1)];
    req.resume();
    res.writeHead(status, headers).end(body);
  });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${s.address().port}`, count: () => count, close: () => new Promise((r) => s.close(r)) };
}
const herr = (code) => JSON.stringify({ error: { code, message: 'm', correlation_id: '0123456789abcdef' } });
const ok = [201, { 'Content-Type': 'application/json' }, '{"id":"01M8D5450Z57W4W86TP58X3ZWB"}'];

test('Retry-After: HTTP date honoured, over the limit not waited for, absent means backoff', async () => {
  let s = await fakeHerald([[503, { 'Retry-After': new Date(Date.now() + 2000).toUTCString() }, herr('unavailable')], ok]);
  let t = Date.now();
  assert.equal((await new Herald({ url: s.url, apiKey: 'k' }).publish(n())).id.length, 26);
  assert.ok(Date.now() - t >= 900, `waited ${Date.now() - t} ms for an HTTP-date Retry-After`);
  await s.close();

  s = await fakeHerald([[429, { 'Retry-After': '3600' }, herr('rate_limited')], ok]);
  t = Date.now();
  await assert.rejects(new Herald({ url: s.url, apiKey: 'k' }).publish(n()), (e) => e.status === 429 && e.retryAfterMs === 3_600_000 && e.attempts === 1);
  assert.ok(Date.now() - t < 1000 && s.count() === 1);
  await s.close();

  s = await fakeHerald([[503, {}, herr('unavailable')]]);
  await assert.rejects(new Herald({ url: s.url, apiKey: 'k', retry: { maxAttempts: 3, baseDelayMs: 10 } }).publish(n()),
    (e) => e.status === 503 && e.code === 'unavailable' && e.attempts === 3 && e.correlationId === '0123456789abcdef');
  assert.equal(s.count(), 3);
  await s.close();
});

test('other statuses are not retried; foreign bodies are code http', async () => {
  for (const status of [400, 404, 409, 500, 502, 504]) {
    const s = await fakeHerald([[status, { 'Retry-After': '1' }, herr('x')], ok]);
    await assert.rejects(new Herald({ url: s.url, apiKey: 'k' }).publish(n()), (e) => e.status === status && e.attempts === 1);
    assert.equal(s.count(), 1, `${status} was retried`);
    await s.close();
  }
  const s = await fakeHerald([[502, { 'Content-Type': 'text/html' }, '<html>Bad Gateway</html>\n']]);
  await assert.rejects(new Herald({ url: s.url, apiKey: 'k' }).publish(n()),
    (e) => e instanceof HeraldError && e.status === 502 && e.code === 'http' && e.message === '<html>Bad Gateway</html>' && e.correlationId === undefined);
  await s.close();
});

test('parseRetryAfter', () => {
  const now = Date.parse('2026-12-06T07:00:00Z');
  assert.equal(parseRetryAfter('1', now), 1000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('99999999999', now), 86_400_000);
  assert.equal(parseRetryAfter(new Date(now + 90_000).toUTCString(), now), 90_000);
  assert.equal(parseRetryAfter(new Date(now - 90_000).toUTCString(), now), 0);
  for (const bad of [null, undefined, '', '-1', '1.5', 'soon']) assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
});
