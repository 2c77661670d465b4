// The browser client of Sandbox Agent's multiplayer guide, ported to
// @tandem-dev/client and served by the node at
// /static/examples/multiplayer.html, run in headless Chromium (run with
// `go test -run TestBrowserExample ./internal/e2e`). It must receive the
// chat.user and the session.events of the prompt it sent. A second page
// with another user in the same workspace sees that prompt too, and its
// own. Environment: TANDEM_URL, TANDEM_PROMPT, TANDEM_REPLY (the scripted
// agent's exact reply), TANDEM_PROMPT2, TANDEM_REPLY2, TANDEM_ARTIFACTS,
// TANDEM_CHROMIUM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(name + ' is not set: run these tests with `go test -run TestBrowserExample ./internal/e2e`');
  return v;
}

const URL_ = env('TANDEM_URL');
const P1 = env('TANDEM_PROMPT');
const R1 = env('TANDEM_REPLY');
const P2 = env('TANDEM_PROMPT2');
const R2 = env('TANDEM_REPLY2');
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
  assert.deepEqual(problems, [], 'no page errors, console errors or CSP violations');
});

/**
 * open loads the example and records what its handlers log: the guide's
 * console.log("user message", event) and console.log("sandbox event", event).
 */
async function open(who, query) {
  const ctx = await browser.newContext({ locale: 'en-GB', timezoneId: 'UTC' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  const got = { chat: [], session: [], requests: [] };
  page.on('pageerror', (e) => problems.push(who + ': ' + e.message));
  page.on('console', async (m) => {
    if (m.type() === 'error' || /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(who + ': ' + m.text());
    const args = m.args();
    if (args.length !== 2) return;
    const label = await args[0].jsonValue();
    if (label === 'user message') got.chat.push(await args[1].jsonValue());
    if (label === 'sandbox event') got.session.push(await args[1].jsonValue());
  });
  page.on('request', (r) => got.requests.push({ method: r.method(), url: r.url(), headers: r.headers() }));
  await page.goto(URL_ + '/static/examples/multiplayer.html' + query);
  return { page, got };
}

/** reply is the agent's text in these session.events: its message chunks, in order. */
function reply(events) {
  let s = '';
  for (const e of events) {
    const u = e.sender === 'agent' && e.payload && e.payload.method === 'session/update' && e.payload.params && e.payload.params.update;
    if (u && u.sessionUpdate === 'agent_message_chunk' && u.content && u.content.type === 'text') s += u.content.text;
  }
  return s;
}

/** turn is the session.events between the session/prompt carrying text and the agent's answer to it. */
function turn(events, text) {
  const i = events.findIndex((e) => e.sender === 'client' && e.payload && e.payload.method === 'session/prompt' && JSON.stringify(e.payload.params).includes(JSON.stringify(text)));
  if (i < 0) return null;
  const id = events[i].payload.id;
  const j = events.findIndex((e, k) => k > i && e.sender === 'agent' && e.payload && e.payload.id === id && ('result' in e.payload || 'error' in e.payload));
  return j < 0 ? null : events.slice(i, j + 1);
}

async function until(what, pred, within = 30_000) {
  const deadline = Date.now() + within;
  while (Date.now() < deadline) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out waiting for ' + what);
}

function assertOnce(events, who) {
  const idx = events.map((e) => e.eventIndex);
  assert.equal(new Set(idx).size, idx.length, who + ': an event delivered twice');
  for (let i = 1; i < idx.length; i++) assert.ok(idx[i] > idx[i - 1], who + ': out of order');
}

test("the guide's browser example, ported: its prompt's chat.user and session.events arrive", { timeout: 90_000 }, async () => {
  // The guide's values: workspace-42, user-123, its prompt.
  const a = await open('user-123', '');
  await until('the chat.user of the prompt', () => a.got.chat.some((e) => e.text === P1));
  await until("the agent's reply in session.events", () => turn(a.got.session, P1) && reply(turn(a.got.session, P1)) === R1, 60_000);
  await a.page.waitForSelector('#log > [data-type="prompt"]');

  const [chat] = a.got.chat.filter((e) => e.text === P1);
  assert.equal(chat.type, 'chat.user');
  assert.equal(chat.userId, 'user-123', 'the prompt is user-123’s');
  assert.ok(chat.promptId, 'chat.user names the inbox entry of the prompt');
  const mine = turn(a.got.session, P1);
  assert.ok(mine.every((e) => e.type === 'session.event' && typeof e.id === 'string' && Number.isInteger(e.eventIndex)), 'SessionEvents with their cursors');
  assert.ok(mine[0].eventIndex > chat.eventIndex, 'the prompt went to the agent after its chat.user');
  assert.equal(reply(mine), R1);
  assertOnce([...a.got.chat, ...a.got.session].sort((x, y) => x.eventIndex - y.eventIndex), 'user-123');
  assert.equal(await a.page.locator('#status').textContent(), 'live');

  // It ran on the client the node serves, with the headers the node needs.
  const client = a.got.requests.find((r) => r.url.endsWith('/static/client.js'));
  assert.ok(client, 'the page loaded /static/client.js');
  const put = a.got.requests.find((r) => r.method === 'PUT' && r.url.endsWith('/v1/workspaces/workspace-42'));
  const post = a.got.requests.find((r) => r.method === 'POST' && r.url.endsWith('/v1/workspaces/workspace-42/sessions/default/prompt'));
  assert.ok(put && post, 'room.ensure() and conn.prompt()');
  assert.equal(post.headers['x-tandem-csrf'], '1');
  assert.equal(post.headers['x-user-id'], 'user-123');
  assert.match(post.headers['idempotency-key'] || '', /^[0-9a-f-]{32,36}$/);
  assert.ok(a.got.requests.some((r) => r.url.includes('/v1/workspaces/workspace-42/sessions/default/events/stream')), 'the EventSource');
  await a.page.screenshot({ path: path.join(ART, 'example-multiplayer.png'), fullPage: true });

  // A second person opens the same example: they get the history, then
  // their own prompt, and the first page sees it live.
  const b = await open('user-456', '?user=user-456&text=' + encodeURIComponent(P2));
  await until("user-456's prompt on both pages", () => [a, b].every((p) => p.got.chat.some((e) => e.text === P2 && e.userId === 'user-456')));
  await until("the reply to user-456 on both pages", () => [a, b].every((p) => turn(p.got.session, P2) && reply(turn(p.got.session, P2)) === R2), 60_000);
  assert.ok(b.got.chat.some((e) => e.text === P1 && e.userId === 'user-123'), 'the history came first');
  assertOnce([...b.got.chat, ...b.got.session].sort((x, y) => x.eventIndex - y.eventIndex), 'user-456');
  assertOnce([...a.got.chat, ...a.got.session].sort((x, y) => x.eventIndex - y.eventIndex), 'user-123');
  await a.page.context().close();
  await b.page.context().close();
});
