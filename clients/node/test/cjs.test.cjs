// The CommonJS build: require('@herald/node') works and publishes to a real Herald.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { Herald, HeraldError } = require('@herald/node');

test('require(@herald/node) publishes', async () => {
  assert.equal(typeof Herald, 'function');
  assert.equal(typeof HeraldError, 'function');
  const { startHerald, API_KEY } = await import('./helpers.mjs');
  const h = await startHerald();
  try {
    const { id } = await new Herald({ url: h.base, apiKey: API_KEY }).publish({ tenant: 'acme', to: { users: ['cjs'] }, type: 't', title: 'from CommonJS' });
    assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    await assert.rejects(new Herald({ url: h.base, apiKey: 'nope-0123456789abcdef' }).publish({ tenant: 'acme', to: { tenant: true }, type: 't', title: 'x' }),
      (e) => e instanceof HeraldError && e.status === 401 && e.code === 'unauthorized');
  } finally {
    await h.cleanup();
  }
});
