// End-to-end test of the demo inbox page in headless Chromium (playwright-core
// driving the system's /usr/bin/chromium) against a real Herald in --dev mode.
// Skips loudly when Chromium is missing, except in CI (CI=true), where it fails.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Herald, artifactsDir, freePort, tempDir, waitFor } from './herald.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  const msg = `\n*** browser end-to-end test SKIPPED: ${CHROMIUM} not found (apt-get install -y chromium) ***\n`;
  if (process.env.CI === 'true') throw new Error(msg + 'CI=true: Chromium is required');
  console.warn(msg);
}

let herald;
let context;
let profile;
let t0 = Date.now();
/** Progress with timings, for CI logs. */
const mark = (what) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);

before(async () => {
  if (!haveChromium) return;
  t0 = Date.now();
  herald = await Herald.start({ dev: true });
  const { chromium } = await import('playwright-core');
  profile = tempDir('herald-chromium-');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: false, // the flags below select the new headless mode explicitly
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      // No calls home: this machine's network is closed.
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
    viewport: { width: 1100, height: 900 },
  });
});

after(async () => {
  await context?.close();
  await herald?.cleanup();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Opens the demo page for user and waits until it is live. */
async function openInbox(user) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|SyntaxError|TypeError|ReferenceError/.test(m.text())) problems.push(m.text());
  });
  page.problems = problems;
  await page.goto(`${herald.base}/?user=${user}`);
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15_000 });
  return page;
}

const item = (page, title) => page.locator('#list li', { hasText: title });
const badge = (page) => page.locator('#badge');

test('demo inbox: publish, live badge and list, cross-tab read, delete, resume after a restart', { skip: !haveChromium && 'chromium missing' }, async () => {
  mark('herald and chromium started');
  const tabA = await openInbox('alice');
  const tabB = await openInbox('alice');
  mark('tabs open');

  // Accessibility basics: labelled controls, a polite live region.
  for (const label of ['User id', 'Title', 'Body']) assert.equal(await tabA.getByLabel(label, { exact: true }).count(), 1, `label ${label}`);
  assert.equal(await tabA.locator('[aria-live="polite"]').count(), 1);
  assert.match(await tabA.locator('#bell').getAttribute('aria-label'), /0 unread/);

  // Publish from tab A's form: both tabs update live.
  await tabA.getByLabel('Title', { exact: true }).fill('First from the browser');
  await tabA.getByLabel('Body', { exact: true }).fill('Hello, Herald');
  await tabA.getByRole('button', { name: 'Publish to myself' }).click();
  for (const tab of [tabA, tabB]) {
    await item(tab, 'First from the browser').waitFor();
    await waitFor(async () => (await badge(tab).textContent()) === '1' && (await badge(tab).isVisible()), { what: 'badge 1' });
    assert.match(await item(tab, 'First from the browser').getAttribute('class'), /\bunread\b/);
  }
  await waitFor(async () => /New notification: First from the browser/.test(await tabB.locator('#announcer').textContent()), { what: 'announcement' });
  assert.match(await tabA.locator('#bell').getAttribute('aria-label'), /1 unread/);

  mark('published');
  // A live event from tab A's form reaches both tabs (topic demo.board) and
  // touches neither the inbox nor the badge.
  await tabA.getByLabel('Message', { exact: true }).fill('typing in tab A');
  await tabA.getByRole('button', { name: 'Send to everyone watching' }).click();
  for (const tab of [tabA, tabB]) {
    await tab.locator('#live-list li', { hasText: 'alice: typing in tab A' }).waitFor({ timeout: 10_000 });
  }
  assert.equal(await tabB.locator('#list li').count(), 1, 'a live event is not an inbox item');
  assert.equal(await badge(tabB).textContent(), '1');

  // Mark read in tab A: tab B shows it read and its badge disappears.
  await item(tabA, 'First from the browser').getByRole('button', { name: /^Mark .* read$/ }).click();
  await waitFor(async () => /\bread\b/.test(await item(tabB, 'First from the browser').getAttribute('class')), { what: 'read in tab B' });
  await waitFor(async () => !(await badge(tabB).isVisible()), { what: 'badge hidden in tab B' });

  // Two more; "Mark all read" operated with the keyboard.
  for (const title of ['Second', 'Third']) {
    await tabA.getByLabel('Title', { exact: true }).fill(title);
    await tabA.getByRole('button', { name: 'Publish to myself' }).click();
    await item(tabB, title).waitFor();
  }
  await waitFor(async () => (await badge(tabB).textContent()) === '2', { what: 'badge 2' });
  await tabB.locator('#mark-all').focus();
  await tabB.keyboard.press('Enter');
  await waitFor(async () => !(await badge(tabA).isVisible()) && (await tabA.locator('#list li.unread').count()) === 0, { what: 'all read in tab A' });

  // Delete in tab B: gone from tab A.
  await item(tabB, 'Second').getByRole('button', { name: /^Delete/ }).click();
  await waitFor(async () => (await item(tabA, 'Second').count()) === 0, { what: 'deleted in tab A' });

  // Kill the server. While it is down, another process on the same database
  // takes two publishes; then the server comes back on the same port and both
  // tabs resume from their last position and show what they missed.
  mark('before kill');
  await herald.stop('SIGKILL');
  await waitFor(async () => (await tabA.locator('#conn').getAttribute('data-state')) !== 'live', { what: 'tab A notices' });
  const side = await Herald.start({ database: herald.database, port: await freePort() });
  await side.publish(['alice'], { title: 'Missed while down 1' });
  await side.publish(['alice'], { title: 'Missed while down 2' });
  await side.stop('SIGTERM');
  mark('side done');
  await herald.run();
  mark('restarted');
  for (const tab of [tabA, tabB]) {
    await tab.locator('#conn[data-state="live"]').waitFor({ timeout: 20_000 });
    await item(tab, 'Missed while down 1').waitFor({ timeout: 10_000 });
    await item(tab, 'Missed while down 2').waitFor({ timeout: 10_000 });
    await waitFor(async () => (await badge(tab).textContent()) === '2', { what: 'badge 2 after restart' });
    assert.equal(await tab.locator('#list li').count(), 4, 'First, Third and the two missed ones; no duplicates');
  }
  await waitFor(async () => /Missed while down/.test(await tabA.locator('#announcer').textContent()), { what: 'missed announced' });

  mark('resumed');
  mkdirSync(artifactsDir, { recursive: true });
  const shot = join(artifactsDir, 'demo-inbox.png');
  await tabA.screenshot({ path: shot, fullPage: true });
  assert.ok(existsSync(shot));
  console.log(`screenshot: ${shot}`);

  assert.deepEqual([...tabA.problems, ...tabB.problems], []);
});

test('demo inbox: categories as tabs, the seen badge, archive, replacements and preferences, in sync across tabs', { skip: !haveChromium && 'chromium missing' }, async () => {
  const tabA = await openInbox('bea');
  const tabB = await openInbox('bea');
  const publish = async (title, category = '', key = '') => {
    await tabA.getByLabel('Title', { exact: true }).fill(title);
    await tabA.getByLabel('Category', { exact: true }).selectOption(category);
    await tabA.getByLabel('Collapse key', { exact: true }).fill(key);
    await tabA.getByRole('button', { name: 'Publish to myself' }).click();
    await waitFor(async () => (await tabA.locator('#publish-status').textContent()) === 'Published.', { what: `published ${title}` });
    await tabA.locator('#publish-status').evaluate((e) => { e.textContent = ''; });
  };
  const unseen = (page) => page.locator('#unseen');

  await publish('Invoice paid', 'billing');
  await publish('New follower', 'social');
  for (const tab of [tabA, tabB]) {
    await item(tab, 'New follower').waitFor();
    await waitFor(async () => (await unseen(tab).textContent()) === '2 new' && (await unseen(tab).isVisible()), { what: 'unseen 2' });
    await waitFor(async () => (await tab.locator('[data-tab="billing"] .tab-count').textContent()) === '(1)', { what: 'billing count' });
  }
  // Seen in tab A clears the badge in tab B; unread stays.
  await tabA.getByRole('button', { name: 'Mark seen' }).click();
  await waitFor(async () => !(await unseen(tabB).isVisible()), { what: 'unseen cleared in tab B' });
  assert.equal(await badge(tabB).textContent(), '2');

  // The billing tab lists billing only.
  await tabB.getByRole('tab', { name: /billing/ }).click();
  await waitFor(async () => (await tabB.locator('#list li').count()) === 1 && (await item(tabB, 'Invoice paid').count()) === 1, { what: 'billing tab' });
  await tabB.getByRole('tab', { name: 'All' }).click();
  await item(tabB, 'New follower').waitFor();

  // Archive in tab A: gone from tab B's inbox, listed under Archived, and back.
  await item(tabA, 'Invoice paid').getByRole('button', { name: /^Archive/ }).click();
  await waitFor(async () => (await item(tabB, 'Invoice paid').count()) === 0, { what: 'archived in tab B' });
  await waitFor(async () => (await badge(tabB).textContent()) === '1', { what: 'badge 1 after archive' });
  await tabB.getByRole('tab', { name: 'Archived' }).click();
  await item(tabB, 'Invoice paid').getByRole('button', { name: /^Unarchive/ }).click();
  await waitFor(async () => (await item(tabA, 'Invoice paid').count()) === 1, { what: 'unarchived in tab A' });
  await tabB.getByRole('tab', { name: 'All' }).click();

  // A replacement updates the item in place.
  await publish('Build 7 running', 'ci', 'build-7');
  await item(tabB, 'Build 7 running').waitFor();
  await publish('Build 7 passed', 'ci', 'build-7');
  for (const tab of [tabA, tabB]) {
    await item(tab, 'Build 7 passed').waitFor();
    await waitFor(async () => (await item(tab, 'Build 7 running').count()) === 0, { what: 'replaced in place' });
  }

  // Preferences: muting "social" in tab A shows in tab B, and social never arrives.
  await tabA.getByLabel('social', { exact: true }).check();
  await tabA.getByRole('button', { name: 'Save preferences' }).click();
  await waitFor(async () => await tabB.getByLabel('social', { exact: true }).isChecked(), { what: 'preferences synced' });
  await publish('Muted follower', 'social');
  await publish('After the mute');
  await item(tabB, 'After the mute').waitFor();
  assert.equal(await item(tabB, 'Muted follower').count(), 0);
  assert.deepEqual([...tabA.problems, ...tabB.problems], []);
});
