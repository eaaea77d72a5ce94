// The artillery scenario's token path without artillery itself (which is
// too heavy to install in CI, see README): the plugin hands socket.io-client
// an auth function backed by the processor, and the tokens it mints, one
// new user per call, are accepted by a real Herald.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { Herald, SECRET } from '../../../clients/js/test/herald.mjs';

const require = createRequire(import.meta.url);
let herald;

before(async () => {
  process.env.JWT_SECRET = SECRET;
  herald = await Herald.start();
});
after(async () => { await herald?.cleanup(); });

test('plugin + processor: every CONNECT gets a fresh token that Herald accepts', async () => {
  const processor = require('../processor.cjs');
  const { Plugin } = require('../plugin-socketio-auth');
  const script = { config: { processor, plugins: { 'socketio-auth': {} }, socketio: { transports: ['websocket'] } } };
  Plugin(script);
  assert.deepEqual(script.config.socketio.transports, ['websocket']);
  assert.equal(typeof script.config.socketio.auth, 'function');

  const tokens = await Promise.all([1, 2].map(() => new Promise((resolve) => script.config.socketio.auth(({ token }) => resolve(token)))));
  const subs = tokens.map((t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()).sub);
  assert.notEqual(subs[0], subs[1], 'one user per virtual user');
  for (const token of tokens) {
    const r = await fetch(`${herald.base}/v1/me/unread-count`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, await r.text());
  }
  // In the launcher process config.processor is still a path: the plugin leaves the script alone.
  const launcher = { config: { processor: './processor.cjs', socketio: {} } };
  Plugin(launcher);
  assert.deepEqual(launcher.config.socketio, {});
});
