// Real-browser test of Herald's SSE transport: headless Chromium driven by
// playwright-core (run by TestChromiumEventSource in internal/sse).
//
// argv[2] is a JSON object {allowed, denied, userDataDir}: two page URLs
// served by the Go test on different origins. Steps are printed as JSON
// lines; after each "wait" step the script reads one line from stdin (the
// Go test has published what the page should or should not receive).
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const proceed = async () => { await lines.next(); };

const ctx = await chromium.launchPersistentContext(cfg.userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--disable-background-networking'],
});
const results = (page) => page.evaluate(() => window.results);
async function waitFor(page, pred, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await results(page);
    if (pred(r)) return r;
    if (Date.now() > end) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}
try {
  const allowed = await ctx.newPage();
  await allowed.goto(cfg.allowed);
  let r = await waitFor(allowed, (r) => r.some((x) => x.kind === 'ready'), 15000);
  out({ step: 'allowed-ready', results: r });
  await proceed();
  r = await waitFor(allowed, (r) => r.some((x) => x.kind === 'notification'), 15000);
  out({ step: 'allowed-notification', results: r });

  const denied = await ctx.newPage();
  await denied.goto(cfg.denied);
  r = await waitFor(denied, (r) => r.some((x) => x.kind === 'fetch-error') && r.some((x) => x.kind === 'error'), 15000);
  out({ step: 'denied-refused', results: r });
  await proceed();
  await new Promise((res) => setTimeout(res, 1500));
  out({ step: 'denied-final', results: await results(denied) });
} finally {
  await ctx.close();
}
process.exit(0);
