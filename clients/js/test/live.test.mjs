// The client against real Tandem nodes (test/harness.mjs starts Redis, the
// Sandbox Agent server with the scripted agent, and the nodes).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { Tandem, TandemError } from '../src/index.js';
import { Env, startProxy, forward, until, sleep } from './harness.mjs';

let env, a, b;

before(async () => {
  env = await Env.start();
  [a, b] = await Promise.all([env.node('a'), env.node('b')]);
});

after(async () => {
  if (env) await env.close();
});

function client(baseUrl, user = 'ann', extra = {}) {
  return new Tandem({ baseUrl, EventSource, user, reconnect: { baseDelayMs: 200, maxDelayMs: 1000 }, ...extra });
}

/** record follows a room (or session) and keeps every persisted event and reset it delivered, in order. */
function record(room) {
  const got = { events: [], resets: [], errors: [], states: [] };
  room.on('event', (ev) => got.events.push(ev));
  room.on('reset', (r) => got.resets.push({ ...r, at: got.events.length }));
  room.on('error', (e) => got.errors.push(e));
  room.on('state', (s) => got.states.push(s));
  return got;
}

const turnEnded = (got, n = 1) => got.events.filter((e) => e.type === 'session.status' && e.status === 'turn_ended').length >= n;

/** agentText is the agent's reply assembled from its message chunks. */
function agentText(events) {
  let s = '';
  for (const e of events) {
    const u = e.type === 'session.event' && e.payload && e.payload.method === 'session/update' && e.payload.params && e.payload.params.update;
    if (u && u.sessionUpdate === 'agent_message_chunk' && u.content && u.content.type === 'text') s += u.content.text;
  }
  return s;
}

async function all(it) {
  const out = [];
  for await (const x of it) out.push(x);
  return out;
}

function assertConsecutive(events, from = 1) {
  events.forEach((e, i) => assert.equal(e.eventIndex, from + i, 'eventIndex ' + e.eventIndex + ' at position ' + i + ': a gap or a duplicate'));
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no id twice');
}

test('prompt: chat.user, session.event and turn_ended arrive, in order', { timeout: 60_000 }, async () => {
  const tandem = client(a.url);
  const room = tandem.workspace('js-prompt');
  await room.ensure();
  const chats = [];
  const sessionEvents = [];
  const offChat = room.on('chat.user', (ev) => chats.push(ev));
  room.on('session.event', (ev) => sessionEvents.push(ev));
  const got = record(room);
  room.connect();
  const acc = await room.prompt({ text: 'hello from js [chunks=4] [delay=10ms]' });
  assert.equal(acc.sessionId, 'default');
  assert.ok(acc.id);
  await until('turn_ended', () => turnEnded(got));
  room.close();
  offChat();
  assert.equal(chats.length, 1);
  assert.equal(chats[0].userId, 'ann');
  assert.equal(chats[0].text, 'hello from js [chunks=4] [delay=10ms]');
  assert.equal(chats[0].promptId, acc.id, 'chat.user carries the prompt id the 202 answered');
  assert.ok(sessionEvents.length > 0);
  assert.equal(agentText(got.events), 'You said: hello from js');
  assertConsecutive(got.events);
  assert.equal(room.cursor, got.events.at(-1).id);
  assert.equal(room.state, 'closed');
  // A second user in the same room, with userId per prompt.
  const bob = client(a.url, '').workspace('js-prompt');
  const g2 = record(bob);
  bob.connect({ after: room.cursor });
  await bob.prompt({ userId: 'bob', text: 'and from bob [chunks=2] [delay=5ms]' });
  await until('the second turn', () => turnEnded(g2));
  bob.close();
  assert.equal(g2.events[0].eventIndex, got.events.at(-1).eventIndex + 1, 'connect({after}) starts right after the cursor');
  assert.equal(g2.events.find((e) => e.type === 'chat.user').userId, 'bob');
});

test('failover: follow through a proxy, SIGKILL the node, resume on a second node with no gap or duplicate', { timeout: 90_000 }, async () => {
  const proxy = await startProxy(a.url);
  try {
    await client(a.url).workspace('js-failover').ensure();
    const room = client(proxy.url).workspace('js-failover');
    const got = record(room);
    room.connect();
    await until('live', () => room.state === 'live');
    // The prompt goes in through node b; the follower reads through the proxy from a.
    const writer = client(b.url, 'bob').workspace('js-failover');
    await writer.prompt('tell a long story [chunks=40] [delay=100ms]');
    await until('the reply streaming', () => got.events.filter((e) => e.type === 'session.event').length >= 8);
    await a.kill();
    proxy.target = ''; // the load balancer answers 502 while it has no node
    await until('the EventSource gave up on the 502', () => got.errors.length > 0, 20000);
    await sleep(600);
    proxy.target = b.url;
    await until('turn_ended after the failover', () => turnEnded(got), 60000);
    room.close();
    assert.ok(got.states.includes('reconnecting'), 'it reconnected: ' + got.states.join(','));
    assert.ok(got.errors.some((e) => e instanceof TandemError && e.status === 502), 'the EventSource saw the 502: ' + got.errors.map((e) => e.status));
    const reopened = proxy.requests.filter((r) => r.url.includes('/events/stream') && r.url.includes('cursor='));
    assert.ok(reopened.length >= 1, 'a new EventSource resumed with ?cursor=');
    assertConsecutive(got.events);
    assert.deepEqual(got.resets, []);
    // What it received is the stream, byte for byte.
    const history = await all(client(b.url).workspace('js-failover').history());
    assert.deepEqual(got.events, history);
    assert.equal(agentText(got.events), 'You said: tell a long story');
  } finally {
    await proxy.close();
  }
});

test('reset: the stream lost from Redis is a reset event, then the new history once; 410 on pages likewise', { timeout: 60_000 }, async () => {
  const tandem = client(b.url);
  const room = tandem.workspace('js-reset');
  await room.ensure();
  const got = record(room);
  room.connect();
  await room.prompt('before the loss [chunks=3] [delay=5ms]');
  await until('the first turn', () => turnEnded(got));
  const oldCursor = room.cursor;
  const before = got.events.length;
  // As if Redis lost the session's stream.
  env.redisCli('DEL', '{ws:js-reset}:events:default', '{ws:js-reset}:events:default:state');
  await room.prompt('after the loss [chunks=3] [delay=5ms]');
  await until('the second turn', () => turnEnded(got, 2));
  room.close();
  assert.equal(got.resets.length, 1, 'one reset: ' + JSON.stringify(got.resets));
  assert.ok(['cursor_unknown', 'history_rewound', 'cursor_expired'].includes(got.resets[0].reason), got.resets[0].reason);
  assert.equal(got.resets[0].at, before, 'the reset came before any event of the new history');
  const after = got.events.slice(before);
  const history = await all(tandem.workspace('js-reset').history());
  assert.deepEqual(after, history, 'after the reset: the new history, once');
  assert.deepEqual(
    after.filter((e) => e.type === 'chat.user').map((e) => e.text),
    ['after the loss [chunks=3] [delay=5ms]'],
  );
  // Paging from the old cursor: 410, a reset item, then the history.
  const paged = await all(room.history({ after: oldCursor }));
  assert.equal(paged[0].type, 'reset');
  assert.ok(paged[0].reason, 'the reset says why');
  assert.deepEqual(paged.slice(1), history);
  await assert.rejects(all(room.history({ after: oldCursor, onReset: 'throw' })), (e) => e instanceof TandemError && e.status === 410 && e.type.startsWith('urn:tandem:error:'));
});

test('history: pages to the end, in pages of any size; types filter', { timeout: 60_000 }, async (t) => {
  const tandem = client(b.url);
  const room = tandem.workspace('js-history');
  await room.ensure();
  const got = record(room);
  room.connect();
  for (let i = 0; i < 3; i++) {
    await room.prompt(`turn ${i} [chunks=3] [delay=2ms]`);
    await until('turn ' + i, () => turnEnded(got, i + 1));
  }
  room.close();
  const whole = await room.page({ limit: 1000 });
  assert.deepEqual(whole.items, got.events);
  for (const limit of [1, 3, got.events.length, got.events.length + 1]) {
    assert.deepEqual(await all(room.history({ limit })), got.events, 'limit ' + limit);
  }
  const mid = got.events[4];
  assert.deepEqual(await all(room.history({ after: mid.id, limit: 2 })), got.events.slice(5));
  assert.deepEqual(await all(room.history({ after: got.events.at(-1).id })), [], 'after the last: nothing');
  const chats = await all(room.history({ types: ['chat.user'], limit: 2 }));
  assert.deepEqual(
    chats.map((e) => e.text),
    [0, 1, 2].map((i) => `turn ${i} [chunks=3] [delay=2ms]`),
  );
  const two = await all(room.history({ types: ['chat.user', 'session.status'] }));
  assert.deepEqual(two, got.events.filter((e) => e.type === 'chat.user' || e.type === 'session.status'));
  // What the server does with ?type= itself (the client filters either way).
  const raw = await room.page({ types: ['chat.user'], limit: 1000 });
  const serverFilters = raw.items.every((e) => e.type === 'chat.user');
  t.diagnostic('the server ' + (serverFilters ? 'filters by ?type=' : 'ignores ?type= (the client filters)') + '; nextCursor on the last page: ' + (whole.nextCursor ? 'present' : 'absent'));
});

test('permission: the agent asks, the client answers, everyone sees who chose what', { timeout: 60_000 }, async () => {
  const room = client(b.url, 'carol').workspace('js-permission');
  await room.ensure();
  const got = record(room);
  const asked = [];
  const resolved = [];
  room.on('permission.requested', (ev) => asked.push(ev));
  room.on('permission.resolved', (ev) => resolved.push(ev));
  room.connect();
  await room.prompt('write it [permission] [chunks=2] [delay=5ms]');
  await until('permission.requested', () => asked.length === 1);
  const req = asked[0];
  assert.ok(req.requestId);
  assert.ok(req.options.some((o) => o.optionId === 'allow-once'), JSON.stringify(req.options));
  const res = await room.answer(req.requestId, 'allow-once');
  assert.equal(res.optionId, 'allow-once');
  assert.equal(res.by, 'carol');
  await until('the turn after the answer', () => turnEnded(got));
  room.close();
  assert.equal(resolved.length, 1);
  assert.equal(resolved[0].requestId, req.requestId);
  assert.equal(resolved[0].optionId, 'allow-once');
  assert.match(agentText(got.events), /permission: allow-once/);
  await assert.rejects(
    room.answer(req.requestId, 'reject-once', { userId: 'dan' }),
    (e) => e instanceof TandemError && e.status === 409 && e.code === 'permission_already_resolved' && e.problem.resolution.by === 'carol',
  );
  assertConsecutive(got.events);
});

test('prompt: retried with the same Idempotency-Key after a lost answer and a 503, accepted once', { timeout: 60_000 }, async () => {
  const proxy = await startProxy(b.url);
  try {
    const posts = [];
    let firstId = '';
    proxy.hook = (req, res, p) => {
      if (req.method !== 'POST' || !req.url.endsWith('/prompt')) return false;
      posts.push(req.headers['idempotency-key']);
      if (posts.length === 1) {
        // The node accepts it, and the answer is lost on the way back.
        forward(p, req, res, (ur, r) => {
          let body = '';
          ur.on('data', (c) => (body += c));
          ur.on('end', () => {
            firstId = JSON.parse(body).id;
            r.destroy();
          });
          return true;
        });
        return true;
      }
      if (posts.length === 2) {
        res.writeHead(503, { 'Content-Type': 'application/problem+json', 'Retry-After': '1' });
        res.end(JSON.stringify({ type: 'urn:tandem:error:unavailable', title: 'Unavailable', status: 503 }));
        return true;
      }
      return false;
    };
    const room = client(proxy.url, 'erin', { retry: { baseDelayMs: 50 } }).workspace('js-retry');
    await room.ensure();
    const t0 = Date.now();
    const acc = await room.prompt('only once [chunks=1] [delay=1ms]');
    assert.ok(Date.now() - t0 >= 900, 'it waited the Retry-After second');
    assert.equal(posts.length, 3);
    assert.ok(posts[0] && posts.every((k) => k === posts[0]), 'one key for every attempt: ' + posts);
    assert.equal(acc.id, firstId, 'the retry answered the first prompt');
    const got = record(room);
    room.connect();
    await until('its turn', () => turnEnded(got));
    room.close();
    assert.equal(got.events.filter((e) => e.type === 'chat.user').length, 1);
    // Every request carried the CSRF header, the stream's included.
    assert.ok(proxy.requests.length > 3);
    for (const r of proxy.requests) assert.equal(r.headers['x-tandem-csrf'], '1', r.method + ' ' + r.url);
    assert.ok(proxy.requests.some((r) => r.url.includes('/events/stream') && r.headers['x-user-id'] === 'erin'), 'the stream carries the user');
  } finally {
    await proxy.close();
  }
});

test('errors: TandemError with status and the problem type', { timeout: 30_000 }, async () => {
  const tandem = client(b.url);
  await assert.rejects(tandem.workspace('js-nowhere').info(), (e) => e instanceof TandemError && e.status === 404 && e.code === 'workspace_not_found');
  await assert.rejects(tandem.workspace('js-prompt').page({ after: 'not-a-cursor' }), (e) => e instanceof TandemError && e.status === 400 && e.type === 'urn:tandem:error:cursor_malformed');
  await assert.rejects(tandem.workspace('js-prompt').session('nope').prompt(''), (e) => e instanceof TandemError && e.status >= 400);
  assert.throws(() => tandem.workspace('bad id!'), TypeError);
  // A node nobody listens on: status 0, transient, after the retries.
  const gone = new Tandem({ baseUrl: 'http://127.0.0.1:9', EventSource, retry: { attempts: 2, baseDelayMs: 10 } });
  await assert.rejects(gone.workspace('x').info(), (e) => e instanceof TandemError && e.status === 0 && e.transient);
  // A stream of a workspace that does not exist: an error event, and the session closes.
  const room = tandem.workspace('js-nowhere');
  const got = record(room);
  room.connect();
  await until('closed after the 404', () => room.state === 'closed' && got.errors.some((e) => e.status === 404), 15000);
});
