// Browser tests of the web client: playwright-core driving Debian's
// Chromium (headless) against the stack that internal/e2e/browser_test.go starts;
// run them with `go test -run TestBrowserRoom ./e2e`. The tests run in
// order and share the pages of ann and bob.
//
// Environment (set by the Go test): TANDEM_ANN_URL (node a2),
// TANDEM_BOB_URL (a proxy to node b1 that the control endpoint can move to
// a2), TANDEM_CONTROL_URL (POST /kill-b1, /switch-to-a2), TANDEM_WS,
// TANDEM_PROMPTn / TANDEM_REPLYn (the scripted agent's exact replies),
// TANDEM_JWT_URL, TANDEM_JWT_WS, TANDEM_JWT_TOKEN (a node with
// TANDEM_AUTH=jwt), TANDEM_ARTIFACTS (screenshots), TANDEM_CHROMIUM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(name + ' is not set: run these tests with `go test -run TestBrowserRoom ./e2e`');
  return v;
}

const ANN = env('TANDEM_ANN_URL');
const BOB = env('TANDEM_BOB_URL');
const CONTROL = env('TANDEM_CONTROL_URL');
const WS = env('TANDEM_WS');
const ART = env('TANDEM_ARTIFACTS');
const P1 = env('TANDEM_PROMPT1');
const R1 = env('TANDEM_REPLY1');
const P2 = env('TANDEM_PROMPT2');
const R2 = env('TANDEM_REPLY2');

let browser;
const problems = []; // uncaught page errors and CSP violations, any page
let ann; // ann's page: desktop, light, straight to node a2
let bob; // bob's page: phone-sized, dark, through the switchable proxy
const bob502 = [];
const annModules = []; // the scripts ann's page loaded
const bobPages = []; // bob's requests to the paging route

before(async () => {
  // Debian's Chromium, never a downloaded browser; launch() gives it a
  // fresh temporary profile (user-data-dir) and removes it on close.
  browser = await chromium.launch({
    executablePath: process.env.TANDEM_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  assert.deepEqual(problems, [], 'no page errors and no CSP violations');
});

async function newPage(who, options = {}) {
  const ctx = await browser.newContext({ locale: 'en-GB', timezoneId: 'UTC', ...options });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => problems.push(who + ': ' + e.message));
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(who + ': ' + m.text());
  });
  return page;
}

/** waitLive waits until the page's connection indicator says live. */
function waitLive(page, timeout = 20_000) {
  return page.waitForSelector('#conn[data-state="live"]', { timeout });
}

/** transcript is the conversation as the page shows it, item by item. */
function transcript(page) {
  return page.$$eval('#transcript > li', (lis) =>
    lis.map((li) => ({
      key: li.dataset.key,
      kind: li.dataset.kind,
      status: li.dataset.status || '',
      author: li.querySelector('.author')?.textContent ?? '',
      body:
        li.dataset.kind === 'agent'
          ? [...li.querySelectorAll('.parts > *')].map((p) => (p.classList.contains('tool') ? '[tool ' + p.textContent + ']' : p.textContent)).join('|')
          : (li.querySelector('.text, .notice-text')?.textContent ?? ''),
      badge: li.querySelector('.badge')?.textContent ?? '',
    })),
  );
}

/** waitReply waits until the page shows a finished agent reply with this text. */
function waitReply(page, reply, timeout = 30_000) {
  return page.waitForFunction(
    (want) =>
      [...document.querySelectorAll('#transcript > li[data-kind="agent"][data-status="done"]')].some(
        (li) => [...li.querySelectorAll('.parts > .text')].map((p) => p.textContent).join('') === want,
      ),
    reply,
    { timeout },
  );
}

function waitPresence(page, users) {
  return page.waitForFunction(
    (want) => want.every((u) => document.querySelector('#presence-list li[data-user="' + u + '"]')),
    users,
  );
}

function assertUnique(items, who) {
  const keys = items.map((i) => i.key);
  assert.equal(new Set(keys).size, keys.length, who + ': an item shown twice');
}

async function control(what) {
  const res = await fetch(CONTROL + '/' + what, { method: 'POST' });
  assert.equal(res.status, 200, 'control ' + what);
}

test('1. two people in one room see the same conversation, live, and each other', { timeout: 120_000 }, async () => {
  // Ann picks a name and the workspace on the start page.
  ann = await newPage('ann', { viewport: { width: 1100, height: 760 } });
  ann.on('request', (r) => {
    if (r.resourceType() === 'script') annModules.push(new URL(r.url()).pathname);
  });
  await ann.goto(ANN + '/');
  const lobby = ann.locator('#lobby-form');
  await lobby.getByLabel('Your name').fill('ann');
  await lobby.getByLabel('Workspace', { exact: true }).fill(WS);
  await ann.getByRole('button', { name: 'Open workspace' }).click();
  await ann.waitForURL('**/w/' + WS);
  await waitLive(ann);

  // Bob opens the room's address on a phone (dark mode) and is asked his name.
  bob = await newPage('bob', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, colorScheme: 'dark' });
  bob.on('response', (r) => {
    if (r.status() === 502) bob502.push(r.url());
  });
  bob.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.endsWith('/sessions/default/events')) bobPages.push(u.searchParams.get('cursor') || '');
  });
  await bob.goto(BOB + '/w/' + WS);
  await bob.getByRole('heading', { name: 'Who are you?' }).waitFor();
  const gate = bob.locator('#name-form');
  await gate.getByLabel('Your name').fill('bob');
  await gate.getByLabel('Your name').press('Enter');
  await waitLive(bob);

  await waitPresence(ann, ['ann', 'bob']);
  await waitPresence(bob, ['ann', 'bob']);
  assert.equal(await ann.locator('#presence-list li.me').getAttribute('data-user'), 'ann');
  assert.equal(await bob.locator('#presence-list li.me').getAttribute('data-user'), 'bob');

  // Shift+Enter is a new line, not a send.
  const box = ann.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.fill('line one');
  await box.press('Shift+Enter');
  await box.pressSequentially('line two');
  assert.equal(await box.inputValue(), 'line one\nline two');
  assert.equal(await ann.locator('#transcript > li').count(), 0, 'nothing was sent');

  // Bob's page records the reply's length as it grows.
  await bob.evaluate(() => {
    window.__lens = [];
    new MutationObserver(() => {
      const p = document.querySelector('#transcript > li[data-kind="agent"][data-status="running"] .parts');
      if (p) window.__lens.push(p.textContent.length);
    }).observe(document.getElementById('transcript'), { subtree: true, childList: true, characterData: true });
  });

  // Ann sends with Enter.
  await box.fill(P1);
  await box.press('Enter');
  assert.equal(await box.inputValue(), '', 'the prompt box is emptied');
  await Promise.all([waitReply(ann, R1), waitReply(bob, R1)]);

  const ta = await transcript(ann);
  const tb = await transcript(bob);
  assert.deepEqual(tb, ta, "bob's transcript is ann's");
  assertUnique(ta, 'ann');
  assert.deepEqual(
    ta.map((i) => [i.kind, i.author]),
    [
      ['user', 'ann'],
      ['agent', 'Agent'],
    ],
  );
  assert.equal(ta[0].body, P1);
  assert.equal(ta[1].body, '[tool Mock toolcompleted]|' + R1, 'the tool call, then the reply');
  assert.equal(ta[1].badge, 'Done');
  assert.match(await ann.locator('#transcript > li[data-kind="agent"] .for').textContent(), /replying to ann/);
  const lens = await bob.evaluate(() => window.__lens);
  assert.ok(new Set(lens).size >= 4, 'bob saw the reply grow chunk by chunk: ' + JSON.stringify(lens));
  assert.equal(await ann.locator('#cancel').isHidden(), true, 'no Stop button once the turn ended');
  assert.equal(await ann.locator('#pending > li').count(), 0, 'no prompt left pending');
  assert.equal(await ann.locator('[role="log"] > #transcript').count(), 1, 'the conversation is a log (of a list of messages)');
  // The page runs the JavaScript client the node serves, and no api.js of its own.
  assert.ok(annModules.includes('/static/client.js'), 'the page loaded /static/client.js: ' + annModules.join(' '));
  assert.ok(!annModules.some((m) => m.endsWith('/api.js')), 'no api.js: ' + annModules.join(' '));

  await ann.screenshot({ path: path.join(ART, 'room.png') });
  await bob.screenshot({ path: path.join(ART, 'room-phone-dark.png') });
});

test("2. bob's node dies mid-reply: bob reconnects and resumes, no gap, no duplicate", { timeout: 120_000 }, async () => {
  await bob.evaluate(() => {
    const conn = document.getElementById('conn');
    window.__states = [conn.dataset.state];
    new MutationObserver(() => window.__states.push(conn.dataset.state)).observe(conn, {
      attributes: true,
      attributeFilter: ['data-state'],
    });
  });
  const box = ann.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.fill(P2);
  await box.press('Enter');

  // The reply is streaming on bob's page; ann can stop it.
  await bob.waitForFunction(() => {
    const t = document.querySelector('#transcript > li[data-kind="agent"][data-status="running"] .parts > .text');
    return t && t.textContent.length >= 25;
  });
  assert.equal(await ann.getByRole('button', { name: 'Stop' }).isVisible(), true, 'Stop while the turn runs');

  // b1 (bob's node and the workspace's owner) dies; the proxy answers 502
  // for a while, so bob's EventSource gives up and the page takes over.
  await control('kill-b1');
  await bob.waitForSelector('#conn[data-state="reconnecting"]', { timeout: 10_000 });
  await bob.screenshot({ path: path.join(ART, 'room-phone-reconnecting.png') });
  await bob.waitForTimeout(3000);
  await control('switch-to-a2');
  await waitLive(bob, 30_000);
  await Promise.all([waitReply(ann, R2, 60_000), waitReply(bob, R2, 60_000)]);

  const ta = await transcript(ann);
  const tb = await transcript(bob);
  assert.deepEqual(tb, ta, "bob's transcript is ann's");
  assertUnique(tb, 'bob');
  assert.equal(ta.filter((i) => i.kind === 'user').length, 2);
  assert.equal(ta.filter((i) => i.kind === 'agent').length, 2);
  assert.ok(
    ta.some((i) => i.kind === 'notice' && /now runs the session/.test(i.body)),
    'the takeover is shown: ' + JSON.stringify(ta.map((i) => i.body)),
  );
  const states = await bob.evaluate(() => window.__states);
  const r = states.indexOf('reconnecting');
  assert.ok(r >= 0 && states.indexOf('live', r) > r, 'bob went reconnecting, then live: ' + states.join(' → '));
  assert.ok(bob502.length > 0, 'the proxy answered 502 while no node was behind it');
  assert.ok(bobPages.some((c) => c !== ''), 'the client caught up from the paging route after its cursor: ' + JSON.stringify(bobPages));
});

test('3. reloading the page shows the full history once', { timeout: 60_000 }, async () => {
  const want = await transcript(ann);
  await bob.reload();
  await waitLive(bob);
  const got = await transcript(bob);
  assert.deepEqual(got, want);
  assertUnique(got, 'bob after reload');
  await waitPresence(bob, ['ann', 'bob']);
});

test('4. a dropped connection: EventSource resumes by itself with Last-Event-ID', { timeout: 60_000 }, async () => {
  const box = ann.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.fill(env('TANDEM_PROMPT4'));
  await box.press('Enter');
  await Promise.all([waitReply(ann, env('TANDEM_REPLY4')), waitReply(bob, env('TANDEM_REPLY4'))]);

  const streams = []; // the session's stream
  const wsStreams = []; // the workspace's stream (the session list), on the same page
  const onRequest = (r) => {
    if (r.url().includes('/sessions/default/events/stream')) streams.push(r);
    else if (r.url().includes('/events/stream')) wsStreams.push(r);
  };
  bob.on('request', onRequest);
  await control('drop-bob');
  await bob.waitForSelector('#conn[data-state="reconnecting"]', { timeout: 10_000 });
  await waitLive(bob);
  bob.off('request', onRequest);
  assert.equal(streams.length, 1, 'one reconnect, by the browser itself');
  const sent = await streams[0].headerValue('last-event-id');
  assert.match(sent || '', /^\d+\.[0-9a-f]+(\.[0-9a-f]+)?$/, 'the browser sent Last-Event-ID');
  assert.ok(wsStreams.length <= 1, 'the workspace stream reconnected at most once: ' + wsStreams.length);
  if (wsStreams.length) assert.match((await wsStreams[0].headerValue('last-event-id')) || '', /^\d+\.[0-9a-f]+(\.[0-9a-f]+)?$/, 'the workspace stream too sent Last-Event-ID');
  const ta = await transcript(ann);
  assert.deepEqual(await transcript(bob), ta);
  assertUnique(ta, 'ann');
});

test('5. Redis lost the stream: both pages reset and show the new history once', { timeout: 60_000 }, async () => {
  await control('lose-stream');
  const box = ann.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.fill(env('TANDEM_PROMPT5'));
  await box.press('Enter');
  await Promise.all([waitReply(ann, env('TANDEM_REPLY5')), waitReply(bob, env('TANDEM_REPLY5'))]);
  await Promise.all([waitLive(ann), waitLive(bob)]);
  const ta = await transcript(ann);
  assert.deepEqual(await transcript(bob), ta);
  assertUnique(ta, 'ann');
  const users = ta.filter((i) => i.kind === 'user').map((i) => i.body);
  assert.deepEqual(users, [env('TANDEM_PROMPT5')], 'only the new history: ' + JSON.stringify(ta));
});

test('6. with JWTs the page asks for a token, keeps it in an HttpOnly cookie; Stop cancels a turn', { timeout: 60_000 }, async () => {
  const JWT = env('TANDEM_JWT_URL');
  const carol = await newPage('carol', { viewport: { width: 1100, height: 760 } });
  await carol.goto(JWT + '/w/' + env('TANDEM_JWT_WS'));
  await carol.getByRole('heading', { name: 'Sign in' }).waitFor();
  await carol.getByLabel('Access token').fill('not-a-token');
  await carol.getByRole('button', { name: 'Sign in' }).click();
  await carol.getByText('That token was not accepted').waitFor();
  await carol.screenshot({ path: path.join(ART, 'sign-in.png') });
  await carol.getByLabel('Access token').fill(env('TANDEM_JWT_TOKEN'));
  await carol.getByRole('button', { name: 'Sign in' }).click();
  await waitLive(carol);
  assert.equal(await carol.locator('#me-name').textContent(), 'carol');
  const cookie = (await carol.context().cookies()).find((c) => c.name === 'tandem_token');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'the token is in an HttpOnly SameSite=Strict cookie');
  await waitPresence(carol, ['carol']);
  // Sending is an unsafe request authenticated by the cookie: it carries
  // X-Tandem-Csrf, or the node would refuse it.
  const box = carol.getByRole('textbox', { name: 'Prompt for the agent' });
  await box.fill(env('TANDEM_PROMPT3'));
  await box.press('Enter');
  await waitReply(carol, env('TANDEM_REPLY3'));
  // Stop cancels the running turn (another unsafe request by cookie).
  await box.fill('a reply to stop [chunks=40] [delay=100ms]');
  await box.press('Enter');
  const stop = carol.getByRole('button', { name: 'Stop' });
  await stop.waitFor();
  await carol.waitForSelector('#transcript > li[data-kind="agent"][data-status="running"] .parts > .text');
  await stop.click();
  await carol.waitForSelector('#transcript > li[data-kind="agent"][data-status="cancelled"]');
  await stop.waitFor({ state: 'hidden' });
  const t = await transcript(carol);
  assert.deepEqual(
    t.map((i) => [i.kind, i.author, i.badge]),
    [
      ['user', 'carol', ''],
      ['agent', 'Agent', 'Done'],
      ['user', 'carol', ''],
      ['agent', 'Agent', 'Cancelled'],
    ],
  );
  await carol.context().close();
});
