// Browser test of permission requests and the mode picker: two pages,
// ann's on node a and bob's on node b (run with `go test -run
// TestBrowserPermission ./internal/e2e`). Environment: TANDEM_ANN_URL,
// TANDEM_BOB_URL, TANDEM_WS, TANDEM_ARTIFACTS, TANDEM_CHROMIUM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(name + ' is not set: run these tests with `go test -run TestBrowserPermission ./internal/e2e`');
  return v;
}

const ANN = env('TANDEM_ANN_URL');
const BOB = env('TANDEM_BOB_URL');
const WS = env('TANDEM_WS');
const ART = env('TANDEM_ARTIFACTS');

let browser;
const problems = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.TANDEM_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  assert.deepEqual(problems, [], 'no page errors and no CSP violations');
});

async function enter(who, base, options = {}) {
  const ctx = await browser.newContext({ locale: 'en-GB', timezoneId: 'UTC', ...options });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => problems.push(who + ': ' + e.message));
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(who + ': ' + m.text());
  });
  await page.goto(base + '/w/' + WS);
  await page.getByRole('heading', { name: 'Who are you?' }).waitFor();
  const gate = page.locator('#name-form');
  await gate.getByLabel('Your name').fill(who);
  await gate.getByLabel('Your name').press('Enter');
  await page.waitForSelector('#conn[data-state="live"]');
  return page;
}

const card = '#transcript > li[data-kind="permission"]';

test('the agent asks; bob approves from his card; ann sees who chose what, live', { timeout: 120_000 }, async () => {
  const ann = await enter('ann', ANN, { viewport: { width: 1100, height: 760 } });
  const bob = await enter('bob', BOB, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, colorScheme: 'dark' });

  const box = ann.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.fill('please write the file [permission] [chunks=3] [delay=20ms]');
  await box.press('Enter');

  for (const page of [ann, bob]) {
    await page.waitForSelector(card + '[data-status="pending"]');
    const c = page.locator(card);
    assert.match(await c.locator('.perm-title').textContent(), /^Write \/tmp\/tandem-mock\//);
    assert.equal(await c.locator('.perm-kind').textContent(), 'edit');
    assert.match(await c.locator('.perm-path').textContent(), /\.txt$/);
    assert.equal(await c.locator('.perm-diff .add').textContent(), '+ hello\n');
    assert.deepEqual(await c.locator('.perm-option').allTextContents(), ['Allow once', 'Always allow', 'Reject', 'Always reject']);
  }
  await ann.screenshot({ path: path.join(ART, 'permission-pending-ann.png'), fullPage: true });

  // Ann's page records every state its card goes through.
  await ann.evaluate((sel) => {
    window.__states = [];
    const li = document.querySelector(sel);
    new MutationObserver(() => window.__states.push(li.dataset.status + ':' + li.querySelector('.perm-outcome').textContent)).observe(li, {
      subtree: true,
      attributes: true,
      childList: true,
      characterData: true,
    });
  }, card);

  await bob.locator(card).getByRole('button', { name: 'Always allow' }).click();

  for (const page of [bob, ann]) {
    await page.waitForSelector(card + '[data-status="resolved"]');
    assert.equal(await page.locator(card + ' .perm-outcome').textContent(), 'bob chose “Always allow”');
    const disabled = await page.locator(card + ' .perm-option').evaluateAll((bs) => bs.map((b) => b.disabled));
    assert.deepEqual(disabled, [true, true, true, true], 'no button is left to press');
    assert.equal(await page.locator(card + ' .perm-option.chosen').textContent(), 'Always allow');
    // The agent went on with exactly that option.
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#transcript > li[data-kind="agent"][data-status="done"] .parts > .text')].some((p) =>
        p.textContent.startsWith('permission: allow-always'),
      ),
    );
  }
  const states = await ann.evaluate(() => window.__states);
  assert.ok(states.includes('resolved:bob chose “Always allow”'), 'ann saw the resolution arrive live: ' + states.join(', '));
  await ann.screenshot({ path: path.join(ART, 'permission-resolved-ann.png'), fullPage: true });
  await bob.screenshot({ path: path.join(ART, 'permission-resolved-bob.png'), fullPage: true });

  // The mode picker: bob picks a mode, ann's header follows.
  for (const page of [ann, bob]) await page.waitForSelector('#mode-pick:not([hidden])');
  assert.equal(await ann.locator('#mode-select').inputValue(), 'ask');
  await bob.locator('#mode-select').selectOption('code');
  await ann.waitForFunction(() => document.getElementById('mode-select').value === 'code');
  await ann.waitForFunction(() =>
    [...document.querySelectorAll('#transcript > li[data-kind="notice"] .notice-text')].some((p) => p.textContent === 'bob set the mode to code'),
  );
  await ann.screenshot({ path: path.join(ART, 'permission-mode-ann.png'), fullPage: true });
});
