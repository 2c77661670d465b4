// What the web room needs of the client, on a fake fetch and EventSource:
// catching up from the paging route before the stream, filling a hole
// from it, errors that close the session, retrying at once when the
// browser is back online, prompts that say when they retry, sign-in by
// cookie, mode changes and one-shot reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tandem, TandemError } from '../src/index.js';

class FakeES {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.handlers = new Map();
    this.onopen = null;
    this.onerror = null;
    FakeES.all.push(this);
  }
  addEventListener(t, fn) {
    this.handlers.set(t, fn);
  }
  close() {
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  giveUp() {
    this.readyState = 2;
    this.onerror?.({});
  }
  send(type, data) {
    const fn = this.handlers.get(type);
    if (fn) fn({ data: JSON.stringify(data), lastEventId: data.id || '' });
  }
}

const ev = (i, type = 'chat.user', gen = 'g') => ({ id: `${i}.${gen}.t`, eventIndex: i, type, text: 't' + i });
const json = (status, body, headers = {}) => new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** fake is a fetch that answers from a function and records every request. */
function fake(answer) {
  const calls = [];
  const f = async (url, init) => {
    const u = new URL(url);
    const c = { method: init.method, path: u.pathname, query: Object.fromEntries(u.searchParams), headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(c);
    return answer(c, calls.length);
  };
  f.calls = calls;
  return f;
}

function client(fetch, extra = {}) {
  FakeES.all = [];
  return new Tandem({ baseUrl: 'http://127.0.0.1:1', EventSource: FakeES, fetch, reconnect: { baseDelayMs: 10, maxDelayMs: 20 }, retry: { baseDelayMs: 5, maxDelayMs: 10 }, ...extra });
}

test('connect({catchUp}): every page first, in order and with unknown types, then the stream after the last event; open means caught up', async () => {
  const fetch = fake((c) => {
    if (!c.query.cursor) return json(200, { items: [ev(1), ev(2, 'future.kind')], nextCursor: '2.g.t' });
    if (c.query.cursor === '2.g.t') return json(200, { items: [ev(3)] });
    return json(500, {});
  });
  const room = client(fetch).workspace('w');
  const got = [];
  const order = [];
  room.on('event', (e) => got.push(e.type + ':' + e.eventIndex));
  room.on('future.kind', () => order.push('future.kind'));
  room.on('open', () => order.push('open'));
  room.on('state', (s) => order.push(s));
  room.connect({ catchUp: true });
  assert.equal(room.state, 'connecting');
  room.connect(); // again while catching up: nothing more
  await tick();
  assert.deepEqual(got, ['chat.user:1', 'future.kind:2', 'chat.user:3']);
  assert.deepEqual(
    fetch.calls.map((c) => [c.path, c.query.cursor ?? '', c.query.limit]),
    [
      ['/v1/workspaces/w/sessions/default/events', '', '1000'],
      ['/v1/workspaces/w/sessions/default/events', '2.g.t', '1000'],
    ],
  );
  assert.equal(FakeES.all.length, 1, 'one stream');
  assert.match(FakeES.all[0].url, /\/events\/stream\?cursor=3\.g\.t$/);
  FakeES.all[0].open();
  FakeES.all[0].send('chat.user', ev(3)); // the stream's replay overlaps: dropped
  FakeES.all[0].send('chat.user', ev(4));
  room.close();
  assert.deepEqual(got, ['chat.user:1', 'future.kind:2', 'chat.user:3', 'chat.user:4']);
  assert.deepEqual(order, ['connecting', 'future.kind', 'live', 'open', 'closed'], 'caught up before open');
  assert.deepEqual(fetch.calls.map((c) => c.headers['X-Tandem-Csrf']), ['1', '1']);
});

test('a hole in the stream (a type nobody listens for) is filled from the paging route', async () => {
  const fetch = fake((c) => (c.query.cursor === '1.g.t' ? json(200, { items: [ev(2, 'future.kind'), ev(3)] }) : json(200, { items: [] })));
  const room = client(fetch).workspace('w');
  const got = [];
  room.on('event', (e) => got.push(e.eventIndex));
  room.connect();
  let es = FakeES.all[0];
  es.open();
  es.send('chat.user', ev(1));
  es.send('chat.user', ev(3)); // 2 was of a type this EventSource does not listen for
  assert.deepEqual(got, [1]);
  await tick();
  assert.deepEqual(got, [1, 2, 3]);
  es = FakeES.all.at(-1);
  assert.equal(FakeES.all.length, 2);
  assert.match(es.url, /cursor=3\.g\.t$/);
  room.close();
});

test('an error that retrying cannot fix closes the session before its listener runs; no retry', async () => {
  const fetch = fake(() => json(404, { type: 'urn:tandem:error:workspace_not_found', title: 'Not found', status: 404 }));
  const room = client(fetch).workspace('gone');
  const seen = [];
  room.on('error', (e) => seen.push([e instanceof TandemError && e.code, room.state]));
  room.connect({ catchUp: true });
  await tick(80);
  assert.deepEqual(seen, [['workspace_not_found', 'closed']]);
  assert.equal(fetch.calls.length, 1);
  assert.equal(FakeES.all.length, 0);
});

test('a 410 while catching up is a reset, then the history from its oldest event', async () => {
  const fetch = fake((c) =>
    c.query.cursor ? json(410, { type: 'urn:tandem:error:cursor_expired', status: 410, oldest: '7.h.t' }) : json(200, { items: [ev(7, 'chat.user', 'h')] }),
  );
  const room = client(fetch).workspace('w');
  const log = [];
  room.on('reset', (r) => log.push('reset ' + r.reason + ' ' + r.oldest));
  room.on('event', (e) => log.push(e.id));
  room.connect({ after: '3.g.t', catchUp: true });
  await tick();
  assert.deepEqual(log, ['reset cursor_expired 7.h.t', '7.h.t']);
  assert.match(FakeES.all[0].url, /cursor=7\.h\.t$/);
  room.close();
});

test('retryNow, and the browser going back online, reconnect at once instead of after the backoff', async (t) => {
  // A window: globalThis as an EventTarget, as in a browser.
  const target = new EventTarget();
  globalThis.addEventListener = target.addEventListener.bind(target);
  globalThis.removeEventListener = target.removeEventListener.bind(target);
  t.after(() => {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  });
  const fetch = fake(() => json(200, { items: [] }));
  const room = client(fetch, { reconnect: { baseDelayMs: 60_000, maxDelayMs: 60_000 } }).workspace('w');
  room.connect();
  FakeES.all[0].open();
  FakeES.all[0].giveUp(); // e.g. a proxy's 502: the next try is a minute away
  assert.equal(room.state, 'reconnecting');
  room.retryNow();
  await tick();
  assert.equal(FakeES.all.length, 2, 'retryNow reopened at once');
  FakeES.all[1].giveUp();
  target.dispatchEvent(new Event('online'));
  await tick();
  assert.equal(FakeES.all.length, 3, 'online reopened at once');
  room.close();
  FakeES.all[2].giveUp();
  target.dispatchEvent(new Event('online'));
  await tick();
  assert.equal(FakeES.all.length, 3, 'nothing after close');
});

test('connect({after}) while a retry is pending starts there at once', async () => {
  const fetch = fake(() => json(200, { items: [] }));
  const room = client(fetch, { reconnect: { baseDelayMs: 60_000, maxDelayMs: 60_000 } }).workspace('w');
  room.connect();
  FakeES.all[0].giveUp();
  room.connect({ after: '9.g.t' });
  assert.equal(FakeES.all.length, 2);
  assert.match(FakeES.all[1].url, /cursor=9\.g\.t$/);
  room.close();
});

test('prompt: onRetry says each retry; one Idempotency-Key', async () => {
  const fetch = fake((c, n) => (n < 3 ? json(503, { status: 503 }, n === 2 ? { 'Retry-After': '0' } : {}) : json(202, { id: 'p1', sessionId: 'default' })));
  const room = client(fetch, { user: 'ann' }).workspace('w');
  const retries = [];
  const acc = await room.prompt({ text: 'hi', onRetry: (e, attempt, delay) => retries.push([e.status, attempt, typeof delay]) });
  assert.equal(acc.id, 'p1');
  assert.deepEqual(retries, [
    [503, 1, 'number'],
    [503, 2, 'number'],
  ]);
  const keys = fetch.calls.map((c) => c.headers['Idempotency-Key']);
  assert.ok(keys[0] && keys.every((k) => k === keys[0]), 'one key: ' + keys);
  assert.deepEqual(fetch.calls.map((c) => c.headers['X-User-Id']), ['ann', 'ann', 'ann']);
});

test('reads take attempts: 1 (a page with its own "Try again")', async () => {
  const fetch = fake(() => json(503, { status: 503 }));
  const t = client(fetch);
  await assert.rejects(t.workspace('w').info({ attempts: 1 }), (e) => e.status === 503);
  await assert.rejects(t.me({ attempts: 1 }), (e) => e.status === 503);
  await assert.rejects(t.workspace('w').ensure(undefined, { attempts: 1 }), (e) => e.status === 503);
  assert.deepEqual(fetch.calls.map((c) => c.method + ' ' + c.path), ['GET /v1/workspaces/w', 'GET /v1/auth/me', 'PUT /v1/workspaces/w']);
});

test('signIn and signOut (the node keeps the token in its HttpOnly cookie); configure changes the mode', async () => {
  const fetch = fake((c) => {
    if (c.path === '/v1/auth/cookie' && c.method === 'POST') return json(200, { auth: 'jwt', userId: 'carol', role: 'member' });
    if (c.path === '/v1/auth/cookie') return json(204);
    return json(202, { id: 'c1', sessionId: 'default' });
  });
  const t = client(fetch);
  const me = await t.signIn('  tok.en.x \n');
  assert.equal(me.userId, 'carol');
  await t.signOut();
  const acc = await t.workspace('w').configure({ mode: 'code' });
  assert.equal(acc.id, 'c1');
  const [a, b, c] = fetch.calls;
  assert.equal(a.headers.Authorization, 'Bearer tok.en.x');
  assert.equal(a.headers['X-Tandem-Csrf'], '1', 'unsafe cookie requests need the CSRF header');
  assert.equal(b.method, 'DELETE');
  assert.deepEqual([c.method, c.path, c.body], ['PATCH', '/v1/workspaces/w/sessions/default', { mode: 'code' }]);
  assert.throws(() => t.signIn(''), TypeError);
});

test('the workspace stream: caught up from {ws}/events, then its own event types on the EventSource; withdraw, destroy and listSessions', async () => {
  const wev = (i, type, extra = {}) => ({ id: `${i}.g.t`, eventIndex: i, type, sessionId: 's1', ...extra });
  const fetch = fake((c) => {
    if (c.path === '/v1/workspaces/w/events') return json(200, { items: [wev(1, 'session.created', { agent: 'mock' })] });
    if (c.method === 'DELETE' && c.path === '/v1/workspaces/w/sessions/s1/prompts/p1') return new Response(null, { status: 204 });
    if (c.method === 'DELETE' && c.path === '/v1/workspaces/w/sessions/s1/prompts/p2') return json(409, { type: 'urn:tandem:error:prompt_dispatched', status: 409 });
    if (c.method === 'DELETE' && c.path === '/v1/workspaces/w/sessions/s1') return new Response(null, { status: 204 });
    if (c.path === '/v1/workspaces/w/sessions') return json(200, { items: [{ id: 's1', agent: 'mock' }] });
    if (c.path === '/v1/workspaces/w/typing') return new Response(null, { status: 204 });
    return json(500, {});
  });
  const room = client(fetch).workspace('w');
  const stream = room.events();
  assert.equal(room.events(), stream, 'one handle');
  const got = [];
  stream.on('event', (e) => got.push(e.type + ':' + e.eventIndex));
  stream.connect({ catchUp: true });
  await tick();
  assert.equal(FakeES.all.length, 1);
  assert.match(FakeES.all[0].url, /\/v1\/workspaces\/w\/events\/stream\?cursor=1\.g\.t$/);
  const es = FakeES.all[0];
  es.open();
  es.send('prompt.queued', wev(2, 'prompt.queued', { promptId: 'p1', position: 1 }));
  es.send('prompt.withdrawn', wev(3, 'prompt.withdrawn', { promptId: 'p1' }));
  es.send('session.status', wev(4, 'session.status', { running: false }));
  assert.deepEqual(got, ['session.created:1', 'prompt.queued:2', 'prompt.withdrawn:3', 'session.status:4'], 'no hole: it listens for the workspace types');
  assert.throws(() => stream.prompt('x'), TypeError);
  room.close();
  assert.equal(stream.state, 'closed');

  await room.session('s1').withdraw('p1', { userId: 'ann' });
  await assert.rejects(room.session('s1').withdraw('p2'), (e) => e instanceof TandemError && e.status === 409 && e.code === 'prompt_dispatched');
  assert.throws(() => room.session('s1').withdraw(''), TypeError);
  await room.session('s1').destroy();
  const page = await room.listSessions({ limit: 50 });
  assert.deepEqual(page.items.map((r) => r.id), ['s1']);
  const del = fetch.calls.filter((c) => c.method === 'DELETE');
  assert.deepEqual(del.map((c) => c.path), ['/v1/workspaces/w/sessions/s1/prompts/p1', '/v1/workspaces/w/sessions/s1/prompts/p2', '/v1/workspaces/w/sessions/s1']);
  assert.equal(del[0].headers['X-User-Id'], 'ann');
  assert.equal(fetch.calls.at(-1).query.limit, '50');
  await room.session('s1').typing();
  await room.session('s1').typing(false);
  assert.deepEqual(fetch.calls.slice(-2).map((c) => [c.method, c.path, c.body]), [
    ['POST', '/v1/workspaces/w/typing', { sessionId: 's1', typing: true }],
    ['POST', '/v1/workspaces/w/typing', { sessionId: 's1', typing: false }],
  ]);
});
