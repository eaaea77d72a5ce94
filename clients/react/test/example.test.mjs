// The @herald/react example page in headless Chromium (playwright-core
// driving /usr/bin/chromium) against a real Herald: live list and badge,
// cross-tab read and delete, reconnect and resume after a Herald restart.
// Skips loudly when Chromium is missing, except in CI (CI=true), where it fails.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { API_KEY, Herald, SECRET, tempDir, waitFor } from '../../js/test/herald.mjs';
import { createExampleServer } from '../example/server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  const msg = `\n*** React example test SKIPPED: ${CHROMIUM} not found (apt-get install -y chromium) ***\n`;
  if (process.env.CI === 'true') throw new Error(msg + 'CI=true: Chromium is required');
  console.warn(msg);
}
const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url));

let herald;
let site;
let siteUrl;
let context;
let profile;

before(async () => {
  if (!haveChromium) return;
  herald = await Herald.start();
  site = createExampleServer({ secret: SECRET });
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  siteUrl = `http://127.0.0.1:${site.address().port}`;
  const { chromium } = await import('playwright-core');
  profile = tempDir('herald-react-chromium-');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: false, // the flags select the new headless mode explicitly
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 800, height: 700 },
  });
});

after(async () => {
  await context?.close();
  site?.close();
  await herald?.cleanup();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function open(user) {
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/ERR_CONNECTION_REFUSED|WebSocket/.test(m.text())) page.problems.push(m.text()); });
  await page.goto(`${siteUrl}/?user=${user}&herald=${encodeURIComponent(herald.base)}`);
  await page.locator('#state[data-state="live"]').waitFor({ timeout: 15_000 });
  return page;
}

const item = (page, title) => page.locator('#list li', { hasText: title });
const badge = (page) => page.locator('#badge');

async function publishToTenant(title) {
  const r = await fetch(`${herald.base}/v1/notifications`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ tenant: 'demo', to: { tenant: true }, type: 'announcement', title }),
  });
  assert.equal(r.status, 201);
}

test('React example: live list and badge, cross-tab read and delete, resume after a restart', { skip: !haveChromium && 'chromium missing', timeout: 90_000 }, async () => {
  const tabA = await open('alice');
  const tabB = await open('alice');
  await tabA.locator('#empty').waitFor();
  assert.equal(await badge(tabA).textContent(), '0');

  // Published by a backend: both tabs get it live, with the badge.
  await herald.publish(['alice'], { title: 'Invoice paid', body: 'INV-1 was paid' });
  for (const tab of [tabA, tabB]) {
    await item(tab, 'Invoice paid').waitFor();
    await waitFor(async () => (await badge(tab).textContent()) === '1', { what: 'badge 1' });
  }
  // Read in tab A: tab B follows.
  await item(tabA, 'Invoice paid').getByRole('button', { name: 'Mark read' }).click();
  await tabB.locator('#list li.read', { hasText: 'Invoice paid' }).waitFor();
  await waitFor(async () => (await badge(tabB).textContent()) === '0', { what: 'badge 0 in tab B' });

  // Tenant-wide, then deleted in tab B: gone from tab A.
  await publishToTenant('Maintenance at 02:00');
  await item(tabA, 'Maintenance at 02:00').waitFor();
  await item(tabB, 'Maintenance at 02:00').getByRole('button', { name: 'Delete' }).click();
  await item(tabA, 'Maintenance at 02:00').waitFor({ state: 'detached' });

  // Herald restarts: the pages reconnect by themselves and resume.
  await herald.stop('SIGTERM');
  await tabA.locator('#state:not([data-state="live"])').waitFor();
  await herald.run();
  await tabA.locator('#state[data-state="live"]').waitFor({ timeout: 30_000 });
  await tabB.locator('#state[data-state="live"]').waitFor({ timeout: 30_000 });
  await herald.publish(['alice'], { title: 'After the restart' });
  for (const tab of [tabA, tabB]) {
    await item(tab, 'After the restart').waitFor();
    assert.equal(await item(tab, 'Invoice paid').count(), 1, 'nothing twice');
    assert.equal(await item(tab, 'After the restart').count(), 1, 'nothing twice');
    await waitFor(async () => (await badge(tab).textContent()) === '1', { what: 'badge 1 after restart' });
  }
  // Mark all read from the header.
  await tabA.locator('#read-all').click();
  await waitFor(async () => (await badge(tabB).textContent()) === '0', { what: 'badge 0 after read-all' });
  await tabB.locator('#list li.unread').first().waitFor({ state: 'detached' });

  mkdirSync(artifacts, { recursive: true });
  await tabA.screenshot({ path: `${artifacts}react-inbox.png` });
  assert.deepEqual([...tabA.problems, ...tabB.problems], []);
});
