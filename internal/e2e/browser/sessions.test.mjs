// Sessions side by side (internal/e2e/browser_sessions_test.go starts the
// stack): three pages, ann's on node a, bob's and cat's on node b. The
// tests run in order and share the pages.
//
// Environment: TANDEM_ANN_URL, TANDEM_BOB_URL, TANDEM_WS, TANDEM_PROMPT1 /
// TANDEM_REPLY1, TANDEM_ARTIFACTS, TANDEM_CHROMIUM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(name + ' is not set: run these tests with `go test -run TestBrowserSessions ./internal/e2e`');
  return v;
}

const ANN = env('TANDEM_ANN_URL');
const BOB = env('TANDEM_BOB_URL');
const WS = env('TANDEM_WS');
const ART = env('TANDEM_ARTIFACTS');

let browser;
const problems = [];
const pages = {};

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.TANDEM_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  assert.deepEqual(problems, [], 'no page errors and no CSP violations');
});

async function open(who, base, url, options = {}) {
  const ctx = await browser.newContext({ locale: 'en-GB', timezoneId: 'UTC', viewport: { width: 1100, height: 760 }, ...options });
  // Each person has a name already (none mode: the tandem_user cookie and localStorage).
  // The test hooks: a payload that ran would set window.__pwned; a CSP
  // violation is recorded in window.__csp (and reported on the console).
  await ctx.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
  });
  // A page can be hidden on demand (window.__hide(true)), and desktop
  // notifications are recorded in window.__notes (permission granted).
  await ctx.addInitScript(() => {
    let hidden = false;
    Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    window.__hide = (h) => {
      hidden = h;
      document.dispatchEvent(new Event('visibilitychange'));
    };
    window.__notes = [];
    window.Notification = class {
      static permission = 'granted';
      static requestPermission() {
        return Promise.resolve('granted');
      }
      constructor(title, opts) {
        window.__notes.push([title, (opts && opts.body) || '']);
      }
      close() {}
    };
  });
  await ctx.addInitScript((name) => {
    try {
      localStorage.setItem('tandem.user', name);
    } catch {}
    document.cookie = 'tandem_user=' + name + '; Path=/; SameSite=Strict';
  }, who);
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => problems.push(who + ': ' + e.message));
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(who + ': ' + m.text());
  });
  page.on('dialog', (d) => d.accept());
  await page.goto(base + url);
  await page.waitForSelector('#conn[data-state="live"]');
  return page;
}

/** transcript is the conversation as the page shows it. */
function transcript(page) {
  return page.$$eval('#transcript > li', (lis) =>
    lis.map((li) => ({
      key: li.dataset.key,
      kind: li.dataset.kind,
      status: li.dataset.status || '',
      author: li.querySelector('.author')?.textContent ?? '',
      body: li.dataset.kind === 'agent' ? [...li.querySelectorAll('.parts > *')].map((p) => p.textContent).join('|') : (li.querySelector('.text, .notice-text')?.textContent ?? ''),
    })),
  );
}

function waitReply(page, reply, timeout = 30_000) {
  return page.waitForFunction(
    (want) => [...document.querySelectorAll('#transcript > li[data-kind="agent"][data-status="done"]')].some((li) => [...li.querySelectorAll('.parts > .text')].map((p) => p.textContent).join('') === want),
    reply,
    { timeout },
  );
}

function entry(page, sid) {
  return page.locator('#session-list > li[data-session="' + sid + '"]');
}

async function send(page, text) {
  const box = page.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.fill(text);
  await box.press('Enter');
}

test('1. a session created on one page is in the others’ lists within a second; each switches to it and sees the same transcript', { timeout: 120_000 }, async () => {
  pages.ann = await open('ann', ANN, '/w/' + WS);
  pages.bob = await open('bob', BOB, '/w/' + WS);
  pages.cat = await open('cat', BOB, '/w/' + WS, { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
  const { ann, bob, cat } = pages;
  for (const p of [ann, bob, cat]) await entry(p, 'default').waitFor();
  assert.equal(await entry(ann, 'default').locator('a').getAttribute('aria-current'), 'page');

  // Ann creates session s2 (agent from the workspace's list).
  await ann.getByRole('button', { name: '+ New session' }).click();
  const dlg = ann.locator('#new-session-dialog');
  await dlg.getByLabel('Name').fill('s2');
  const agents = await dlg.locator('#new-session-agent option').allTextContents();
  assert.ok(agents.length >= 1, 'the agent list: ' + JSON.stringify(agents));
  await dlg.getByRole('button', { name: 'Create' }).click();
  await ann.waitForURL('**/w/' + WS + '/s/s2');
  const created = Date.now();
  // The others see it without reloading, within a second.
  await Promise.all([entry(bob, 's2').waitFor({ timeout: 1000 }), entry(cat, 's2').waitFor({ timeout: 1000 })]);
  const seenIn = Date.now() - created;
  assert.ok(seenIn <= 1000, 'seen in ' + seenIn + ' ms');
  assert.match(await entry(bob, 's2').textContent(), new RegExp(agents[0]), 'the list names the agent');
  assert.equal(await entry(ann, 's2').locator('a').getAttribute('aria-current'), 'page');
  assert.equal(await ann.locator('#ws-title').textContent(), WS + ' / s2');

  // Ann talks in s2; bob's list marks it unread and running.
  await send(ann, env('TANDEM_PROMPT1'));
  await waitReply(ann, env('TANDEM_REPLY1'));
  await bob.waitForFunction(() => document.querySelector('#session-list > li[data-session="s2"] .session-unread'));
  assert.equal(await bob.locator('#transcript > li').count(), 0, 'bob still shows the default session, which is empty');

  // Bob and cat switch to it: the same transcript, at the same address.
  for (const p of [bob, cat]) {
    await entry(p, 's2').locator('a').click();
    await p.waitForURL('**/w/' + WS + '/s/s2');
    await waitReply(p, env('TANDEM_REPLY1'));
  }
  const ta = await transcript(ann);
  assert.deepEqual(await transcript(bob), ta);
  assert.deepEqual(await transcript(cat), ta);
  assert.deepEqual(ta.map((i) => [i.kind, i.author]), [['user', 'ann'], ['agent', 'Agent']]);
  assert.equal(await entry(bob, 's2').locator('.session-unread').count(), 0, 'read once shown');

  // The address opens the same view in a new page; back goes to default.
  const dan = await open('dan', ANN, '/w/' + WS + '/s/s2');
  await waitReply(dan, env('TANDEM_REPLY1'));
  assert.deepEqual(await transcript(dan), ta);
  await dan.context().close();
  await bob.goBack();
  await bob.waitForURL('**/w/' + WS);
  await bob.waitForFunction(() => document.querySelectorAll('#transcript > li').length === 0 && document.querySelector('#session-list a[aria-current="page"]')?.closest('li')?.dataset.session === 'default');
  await bob.goForward();
  await waitReply(bob, env('TANDEM_REPLY1'));
  assert.deepEqual(await transcript(bob), ta, 'each session its own transcript, read again');

  await ann.screenshot({ path: path.join(ART, 'sessions.png') });
  await cat.screenshot({ path: path.join(ART, 'sessions-phone.png') });

  // An admin (everyone, without authentication) ends a session: it leaves every list.
  await ann.getByRole('button', { name: '+ New session' }).click();
  await dlg.getByLabel('Name').fill('scratch');
  await dlg.getByLabel('Mode').fill('code');
  await dlg.getByRole('button', { name: 'Create' }).click();
  await ann.waitForURL('**/s/scratch');
  await entry(cat, 'scratch').waitFor();
  // Created in the mode asked for: every list says so once the agent has it.
  await cat.waitForFunction(() => document.querySelector('#session-list > li[data-session="scratch"] .session-meta')?.textContent.endsWith('· code'), null, { timeout: 15_000 });
  await entry(cat, 'scratch').getByRole('button', { name: 'End session scratch' }).click();
  await Promise.all([entry(cat, 'scratch').waitFor({ state: 'detached' }), entry(bob, 'scratch').waitFor({ state: 'detached' })]);
  await ann.waitForSelector('#transcript > li[data-kind="notice"][data-status="session_destroyed"]');

  // A bad name is refused in the dialog, and nothing is created.
  await bob.getByRole('button', { name: '+ New session' }).click();
  await bob.locator('#new-session-dialog').getByLabel('Name').fill('no spaces');
  await bob.locator('#new-session-dialog').getByRole('button', { name: 'Create' }).click();
  await bob.getByText('Name: use 1 to 128 letters').waitFor();
  await bob.locator('#new-session-dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.deepEqual(await bob.$$eval('#session-list > li', (l) => l.map((x) => x.dataset.session)), ['default', 's2']);
});

/** queue is what a page shows queued in the session it shows: [user, text, position]. */
function queue(page) {
  return page.$$eval('#queue > li', (lis) => lis.map((li) => [li.dataset.user, li.querySelector('.text').textContent, li.querySelector('.queue-pos').textContent]));
}

function waitQueue(page, want, timeout = 5000) {
  return page.waitForFunction(
    (w) => JSON.stringify([...document.querySelectorAll('#queue > li')].map((li) => [li.dataset.user, li.querySelector('.text').textContent, li.querySelector('.queue-pos').textContent])) === JSON.stringify(w),
    want,
    { timeout },
  );
}

test('2. while a turn runs, the others’ prompts are queued on every page with their positions; the sender withdraws one and it is gone everywhere', { timeout: 120_000 }, async () => {
  const { ann, bob, cat } = pages;
  await entry(ann, 's2').locator('a').click();
  await ann.waitForURL('**/s/s2');
  await waitReply(ann, env('TANDEM_REPLY1'));
  const LONG = env('TANDEM_LONG');
  const QUEUED = env('TANDEM_QUEUED');
  const KEPT = env('TANDEM_KEPT');
  await send(ann, LONG);
  for (const p of [ann, bob, cat]) await p.waitForSelector('#transcript > li[data-kind="agent"][data-status="running"]');
  await cat.locator('#session-list > li[data-session="s2"][data-state="running"]').waitFor();

  await send(bob, QUEUED);
  const one = [['bob', QUEUED, 'Queued · #1']];
  await Promise.all([ann, bob, cat].map((p) => waitQueue(p, one)));
  await send(cat, KEPT);
  const two = [...one, ['cat', KEPT, 'Queued · #2']];
  await Promise.all([ann, bob, cat].map((p) => waitQueue(p, two)));
  assert.equal(await bob.locator('#pending > li').count(), 0, 'no second, local copy of bob’s prompt');
  // Only its sender may withdraw it.
  assert.equal(await ann.locator('#queue button.withdraw').count(), 0, 'ann has nothing to withdraw');
  assert.equal(await cat.locator('#queue > li[data-user="bob"] button.withdraw').count(), 0);
  await ann.screenshot({ path: path.join(ART, 'queue.png') });

  await bob.locator('#queue > li[data-user="bob"]').getByRole('button', { name: /Withdraw/ }).click();
  const left = [['cat', KEPT, 'Queued · #1']];
  await Promise.all([ann, bob, cat].map((p) => waitQueue(p, left)));

  // The turn ends; cat's prompt moves from the queue into the transcript.
  await Promise.all([ann, bob, cat].map((p) => waitReply(p, env('TANDEM_KEPT_REPLY'), 60_000)));
  await Promise.all([ann, bob, cat].map((p) => waitQueue(p, [])));
  const ta = await transcript(ann);
  assert.deepEqual(await transcript(bob), ta);
  assert.deepEqual(await transcript(cat), ta);
  const users = ta.filter((i) => i.kind === 'user').map((i) => [i.author, i.body]);
  assert.deepEqual(users, [['ann', env('TANDEM_PROMPT1')], ['ann', LONG], ['cat', KEPT]], 'the withdrawn prompt never reached the transcript');
  assert.equal(ta.filter((i) => i.kind === 'agent').length, 3);
});

test('3. answers are Markdown, sanitised: code block and table rendered, a tool call with its diff, nothing of the payloads runs, no CSP violation', { timeout: 60_000 }, async () => {
  const { ann, bob } = pages;
  const MD = env('TANDEM_MD');
  await send(ann, MD);
  const done = (p) => p.waitForSelector('#transcript > li[data-kind="agent"][data-status="done"] .parts > .text table', { timeout: 30_000 });
  await Promise.all([done(ann), done(bob)]);
  for (const [who, p] of [['ann', ann], ['bob', bob]]) {
    const got = await p.evaluate(() => {
      const li = [...document.querySelectorAll('#transcript > li[data-kind="agent"]')].at(-1);
      const md = li.querySelector('.parts > .text');
      const tool = li.querySelector('.parts > .tool');
      const user = [...document.querySelectorAll('#transcript > li[data-kind="user"]')].at(-1);
      return {
        code: md.querySelector('pre > code')?.textContent ?? null,
        codeClass: md.querySelector('pre > code')?.className ?? '',
        rows: [...md.querySelectorAll('table tr')].map((tr) => [...tr.children].map((c) => c.tagName + ':' + c.textContent)),
        items: [...md.querySelectorAll('ul > li')].map((x) => x.textContent),
        links: [...md.querySelectorAll('a')].map((a) => [a.textContent, a.getAttribute('href'), a.rel, a.target]),
        dangerous: document.querySelectorAll('#transcript script, #transcript img, #transcript iframe, #transcript [onerror], #transcript [onclick], #transcript [style]').length,
        tool: tool && { title: tool.querySelector('.tool-title').textContent, kind: tool.querySelector('.tool-kind').textContent, status: tool.dataset.status, del: [...tool.querySelectorAll('.del')].map((x) => x.textContent), add: [...tool.querySelectorAll('.add')].map((x) => x.textContent), path: tool.querySelector('.tool-diff-path')?.textContent },
        prompt: user.querySelector('.text').textContent,
        shown: md.textContent,
        pwned: window.__pwned ?? null,
        csp: window.__csp,
      };
    });
    assert.equal(got.code, 'const riders = 2;\n', who + ': the fenced code block');
    assert.equal(got.codeClass, 'language-js');
    assert.deepEqual(got.rows, [['TH:rider', 'TH:seat'], ['TD:ann', 'TD:front'], ['TD:bob', 'TD:back']], who + ': the table');
    assert.deepEqual(got.items, ['first', 'second'], who + ': the list');
    assert.deepEqual(got.links, [['the docs', 'https://example.com/docs', 'noopener noreferrer nofollow', '_blank'], ['bad link', null, '', '']], who + ': links, the javascript: one without its href');
    assert.equal(got.dangerous, 0, who + ': no script, image, handler or style made it into the page');
    assert.deepEqual(got.tool, { title: 'Edit notes.md', kind: 'edit', status: 'completed', del: ['- tandem: one rider\n'], add: ['+ tandem: two riders\n', '+ sharing one bicycle\n'], path: 'notes.md' }, who + ': the tool call and its diff');
    assert.equal(got.prompt, MD, who + ': the prompt is shown as written, as text');
    assert.ok(got.shown.includes("<script>window.__pwned = 'script'</script>") && got.shown.includes('<img src=x onerror='), who + ': the answer shows the HTML as text: ' + got.shown);
    assert.equal(got.pwned, null, who + ': no payload ran');
    assert.deepEqual(got.csp, [], who + ': no CSP violation');
  }
  await ann.screenshot({ path: path.join(ART, 'markdown.png') });
});

test('4. typing: shown under the composer on the other pages, gone within 5 s of stopping, never in a stream', { timeout: 60_000 }, async () => {
  const { ann, bob, cat } = pages;
  const box = bob.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.focus();
  await box.pressSequentially('still thinking about', { delay: 40 });
  const shown = (p) => p.waitForFunction(() => document.getElementById('typing').textContent === 'bob is typing…', null, { timeout: 5000 });
  await Promise.all([shown(ann), shown(cat)]);
  assert.equal(await bob.locator('#typing').textContent(), '', 'not one’s own typing');
  await ann.screenshot({ path: path.join(ART, 'typing.png') });
  // Keeps typing for a while: it stays shown (renewed, throttled).
  await box.pressSequentially(' the rear wheel', { delay: 250 });
  assert.equal(await ann.locator('#typing').textContent(), 'bob is typing…');
  const stopped = Date.now();
  const gone = (p) => p.waitForFunction(() => document.getElementById('typing').textContent === '', null, { timeout: 5000 });
  await Promise.all([gone(ann), gone(cat)]);
  const after = Date.now() - stopped;
  assert.ok(after <= 5000, 'gone ' + after + ' ms after stopping');
  console.log('typing gone ' + after + ' ms after bob stopped');
  await box.fill('');
});

/** axe runs axe-core in the page (evaluated through the DevTools protocol, which the CSP does not govern) and returns its serious and critical violations. */
async function axe(page) {
  const src = await readFile(path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  await page.evaluate(src);
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  return res.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

test('5. keyboard only, announced, usable at 375 px, light and dark: axe finds nothing serious; screenshots', { timeout: 120_000 }, async () => {
  const { ann, cat } = pages;
  // Keyboard only: Tab reaches "New session", Enter opens the dialog with
  // the focus in it, Escape closes it and gives the focus back.
  await ann.locator('#prompt').focus();
  let reached = false;
  for (let i = 0; i < 30 && !reached; i++) {
    await ann.keyboard.press('Shift+Tab');
    reached = await ann.evaluate(() => document.activeElement?.id === 'new-session');
  }
  assert.ok(reached, 'Shift+Tab from the prompt reaches “New session”');
  await ann.keyboard.press('Enter');
  await ann.locator('#new-session-dialog[open]').waitFor();
  assert.equal(await ann.evaluate(() => document.activeElement?.id), 'new-session-id', 'the focus is in the dialog');
  await ann.keyboard.press('Escape');
  await ann.locator('#new-session-dialog').waitFor({ state: 'hidden' });
  assert.equal(await ann.evaluate(() => document.activeElement?.id), 'new-session', 'Escape gives the focus back');
  // Create one with the keyboard alone: type a name, Enter.
  await ann.keyboard.press('Enter');
  await ann.keyboard.type('kbd');
  await ann.keyboard.press('Enter');
  await ann.waitForURL('**/s/kbd');
  assert.equal(await ann.evaluate(() => document.activeElement?.id), 'prompt', 'then the focus is in the prompt box');
  // Tab from the prompt box goes to Send; Enter sends, Shift+Enter is a new line.
  await ann.keyboard.type('first line');
  await ann.keyboard.press('Shift+Enter');
  await ann.keyboard.type('second line [chunks=2]');
  await ann.keyboard.press('Tab');
  assert.equal(await ann.evaluate(() => document.activeElement?.id), 'send');
  await ann.keyboard.press('Shift+Tab');
  await ann.keyboard.press('Enter');
  await waitReply(ann, 'You said: first line\nsecond line');
  // New messages are announced politely to the other pages' screen readers.
  await entry(cat, 'kbd').locator('a').click();
  await waitReply(cat, 'You said: first line\nsecond line');
  assert.equal(await cat.locator('#announcer').getAttribute('aria-live'), 'polite');
  await send(ann, 'announce me [chunks=1]');
  await cat.waitForFunction(() => [...document.querySelectorAll('#announcer p')].some((p) => p.textContent === 'ann said: announce me [chunks=1]'));
  await waitReply(cat, 'You said: announce me');

  // 375 and 1280 px, light and dark: no page wider than the screen, axe clean, screenshots.
  const found = [];
  for (const [w, h] of [[375, 740], [1280, 800]]) {
    for (const scheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ locale: 'en-GB', timezoneId: 'UTC', viewport: { width: w, height: h }, colorScheme: scheme, isMobile: w < 500, hasTouch: w < 500 });
      await ctx.addInitScript(() => {
        localStorage.setItem('tandem.user', 'eve');
        document.cookie = 'tandem_user=eve; Path=/; SameSite=Strict';
      });
      const p = await ctx.newPage();
      p.on('pageerror', (e) => problems.push('eve: ' + e.message));
      p.on('console', (m) => {
        if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push('eve: ' + m.text());
      });
      await p.goto(ANN + '/w/' + WS + '/s/s2');
      await p.waitForSelector('#conn[data-state="live"]');
      await p.waitForSelector('#transcript table');
      await p.waitForTimeout(300);
      const wide = await p.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(wide <= w, w + ' px ' + scheme + ': the page is ' + wide + ' px wide');
      await p.screenshot({ path: path.join(ART, `room-${w}-${scheme}.png`) });
      for (const v of await axe(p)) found.push(w + ' ' + scheme + ': ' + v.impact + ' ' + v.id + ' (' + v.help + ') ' + v.nodes.join(', '));
      await ctx.close();
    }
  }
  assert.deepEqual(found, [], 'axe: no serious or critical violations');
});

test('6. a hidden page says in its title (and a desktop notification) that a turn ended or the agent asks for permission', { timeout: 60_000 }, async () => {
  const { ann, cat } = pages;
  // Both show session kbd; cat's page is hidden.
  const base = await cat.title();
  await cat.evaluate(() => window.__hide(true));
  await send(ann, 'while cat is away [chunks=2]');
  await cat.waitForFunction(() => document.title.startsWith('(1) Agent done · '));
  await send(ann, 'may I [permission] [chunks=1]');
  await cat.waitForFunction(() => document.title.startsWith('(2) The agent asks for permission · '));
  assert.deepEqual(await cat.evaluate(() => window.__notes), [
    ['Agent done', 'You said: while cat is away'],
    ['The agent asks for permission', await ann.locator('#transcript .perm-title').last().textContent()],
  ]);
  assert.deepEqual(await ann.evaluate(() => window.__notes), [], 'a visible page is not notified');
  // Seen again: the title is the page's own.
  await cat.evaluate(() => window.__hide(false));
  await cat.waitForFunction((t) => document.title === t, base);
  await ann.locator('#transcript > li[data-kind="permission"]').last().locator('.perm-option[data-option-id="allow-once"]').click();
  await cat.waitForSelector('#transcript > li[data-kind="permission"][data-status="resolved"]');
});
