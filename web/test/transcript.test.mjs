// Unit tests of the web client's view model: `node --test web/test/`
// (run by web/web_test.go in `go test ./...`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transcript, replyText, turnSummary, duration, validUser, validWorkspace } from '../static/transcript.js';

let n = 0;
function ev(type, body, index) {
  const i = index ?? ++n;
  return { id: i + '.gen', eventIndex: i, sessionId: 'default', createdAt: 1000 * i, type, ...body };
}
const user = (userId, text, promptId) => ev('chat.user', { userId, text, promptId });
const status = (s, detail, i) => ev('session.status', { status: s, detail }, i);
const agent = (payload) => ev('session.event', { connectionId: 'c', sender: 'agent', payload });
const client = (payload) => ev('session.event', { connectionId: 'c', sender: 'client', payload });
const update = (u) => agent({ jsonrpc: '2.0', method: 'session/update', params: { sessionId: 's', update: u } });
const chunk = (text) => update({ sessionUpdate: 'agent_message_chunk', content: { type: 'text', text } });

function turn(promptId, who, text, chunks) {
  return [
    client({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }),
    user(who, text, promptId),
    status('turn_started', { promptId, userId: who, requestId: 7 }),
    client({ jsonrpc: '2.0', id: 7, method: 'session/prompt', params: { prompt: [{ type: 'text', text }] } }),
    ...chunks.map(chunk),
    agent({ jsonrpc: '2.0', id: 7, result: { stopReason: 'end_turn' } }),
    status('turn_ended', { promptId, stopReason: 'end_turn', requestId: 7 }),
  ];
}

test('a turn: the prompt with its sender, the reply assembled from chunks, its start and end', () => {
  n = 0;
  const t = new Transcript();
  const events = turn('p1', 'ann', 'hello', ['You s', 'aid: ', 'hello']);
  let runningSeen = false;
  for (const e of events) {
    assert.equal(t.apply(e).result, 'applied');
    if (t.running) runningSeen = true;
  }
  assert.ok(runningSeen, 'the turn was running between its start and end');
  assert.equal(t.running, null);
  assert.deepEqual(
    t.items.map((i) => i.kind),
    ['user', 'agent'],
    'client envelopes and agent responses are not chat',
  );
  const [u, a] = t.items;
  assert.equal(u.userId, 'ann');
  assert.equal(u.text, 'hello');
  assert.equal(u.promptId, 'p1');
  assert.equal(a.userId, 'ann');
  assert.equal(replyText(a), 'You said: hello');
  assert.equal(a.parts.length, 1, 'chunks are one text part');
  assert.equal(a.status, 'done');
  assert.equal(turnSummary(a), 'Done');
  assert.equal(duration(a), ((a.endedAt - a.startedAt) / 1000).toFixed(1) + ' s');
  assert.ok(t.hasPrompt('p1'));
  assert.equal(t.lastIndex, events.length);
  assert.equal(t.lastId, events.length + '.gen');
});

test('changes name what to add and what to update', () => {
  n = 0;
  const t = new Transcript();
  t.apply(user('ann', 'x', 'p1'));
  const s = t.apply(status('turn_started', { promptId: 'p1', userId: 'ann' }));
  assert.deepEqual(s.changes.map((c) => c.op), ['add']);
  const c1 = t.apply(chunk('a'));
  assert.deepEqual(c1.changes.map((c) => [c.op, c.item.kind]), [['update', 'agent']]);
  const v = c1.changes[0].item.parts[0].v;
  t.apply(chunk('b'));
  assert.equal(t.items[1].parts[0].v, v + 1, 'the text part version moves with each chunk');
});

test('duplicates are dropped and gaps refused', () => {
  n = 0;
  const t = new Transcript();
  const evs = turn('p1', 'ann', 'hi', ['a', 'b', 'c']);
  for (const e of evs) t.apply(e);
  const before = JSON.stringify(t.items);
  for (const e of evs) assert.equal(t.apply(e).result, 'duplicate');
  assert.equal(JSON.stringify(t.items), before);
  const far = user('bob', 'later', 'p9');
  far.eventIndex = t.lastIndex + 2;
  assert.equal(t.apply(far).result, 'gap');
  assert.equal(t.lastIndex, evs.length, 'a gap changes nothing');
  assert.equal(t.apply({ nope: 1 }).result, 'invalid');
});

test('history may start anywhere (trimmed), then continues without holes', () => {
  const t = new Transcript();
  assert.equal(t.apply(chunk_at(500, 'tail of a reply')).result, 'applied');
  assert.equal(t.items.length, 1);
  assert.equal(t.items[0].kind, 'agent');
  assert.equal(t.items[0].promptId, '');
  assert.equal(turnSummary(t.items[0]), '', 'loose output has no turn badge');
  const end = status('turn_ended', { promptId: 'gone', stopReason: 'end_turn' }, 501);
  assert.equal(t.apply(end).result, 'applied');
  assert.deepEqual([t.items.at(-1).kind, t.items.at(-1).text], ['notice', 'A turn ended (end_turn)'], 'the end of a turn whose start was trimmed');
  assert.equal(t.apply(chunk_at(503, 'x')).result, 'gap');
  assert.equal(t.apply(chunk_at(502, 'next')).result, 'applied');
  assert.equal(t.items.length, 3, 'output after the notice is a reply of its own');
});

function chunk_at(i, text) {
  const e = chunk(text);
  e.eventIndex = i;
  e.id = i + '.gen';
  return e;
}

test('tool calls and their updates; thoughts apart from the text', () => {
  n = 0;
  const t = new Transcript();
  t.apply(user('ann', 'x [tool]', 'p1'));
  t.apply(status('turn_started', { promptId: 'p1', userId: 'ann' }));
  t.apply(update({ sessionUpdate: 'tool_call', toolCallId: 'call_1', title: 'Mock tool', kind: 'other', status: 'pending' }));
  t.apply(update({ sessionUpdate: 'agent_thought_chunk', content: { type: 'text', text: 'hmm' } }));
  t.apply(update({ sessionUpdate: 'tool_call_update', toolCallId: 'call_1', status: 'completed', content: [{ type: 'content', content: { type: 'text', text: 'ok' } }] }));
  t.apply(chunk('done'));
  t.apply(update({ sessionUpdate: 'plan', entries: [] }));
  t.apply(update({ sessionUpdate: 'tool_call_update', toolCallId: 'call_2', status: 'failed', title: 'Other' }));
  const a = t.items[1];
  assert.deepEqual(
    a.parts.map((p) => [p.type, p.title ?? p.text, p.status ?? '']),
    [
      ['tool', 'Mock tool', 'completed'],
      ['thought', 'hmm', ''],
      ['text', 'done', ''],
      ['tool', 'Other', 'failed'],
    ],
  );
  assert.equal(replyText(a), 'done');
});

test('cancelled and failed turns; agent errors', () => {
  n = 0;
  const t = new Transcript();
  t.apply(user('ann', 'a', 'p1'));
  t.apply(status('turn_started', { promptId: 'p1', userId: 'ann' }));
  t.apply(chunk('partial'));
  t.apply(status('turn_ended', { promptId: 'p1', stopReason: 'cancelled' }));
  assert.equal(t.items[1].status, 'cancelled');
  assert.equal(turnSummary(t.items[1]), 'Cancelled');
  t.apply(user('bob', 'b', 'p2'));
  t.apply(status('turn_started', { promptId: 'p2', userId: 'bob' }));
  t.apply(agent({ jsonrpc: '2.0', id: 'tandem.dispatch.p2', error: { code: -32601, message: 'method not found: _tandem/dispatch' } }));
  t.apply(agent({ jsonrpc: '2.0', id: 9, error: { code: -32603, message: 'boom' } }));
  t.apply(status('turn_ended', { promptId: 'p2', stopReason: 'error', reason: 'the agent connection was lost' }));
  const b = t.items[3];
  assert.equal(b.status, 'error');
  assert.equal(turnSummary(b), 'Failed: the agent connection was lost');
  assert.deepEqual(b.parts, [{ type: 'error', text: 'Agent error: boom', v: 0 }]);
  t.apply(user('bob', 'c', 'p3'));
  t.apply(status('turn_started', { promptId: 'p3', userId: 'bob' }));
  t.apply(status('turn_ended', { promptId: 'p3', stopReason: 'max_tokens' }));
  assert.equal(turnSummary(t.items[5]), 'Stopped (max tokens)');
});

test('session.status notices', () => {
  n = 0;
  const t = new Transcript();
  t.apply(status('owner_changed', { node: 'n2', epoch: 3 }));
  t.apply(status('sandbox_unhealthy', { failures: 3, error: 'refused' }));
  t.apply(status('sandbox_recovered', null));
  t.apply(status('session_restored', { connectionId: 'c2' }));
  t.apply(status('session_destroyed'));
  t.apply(status('something_new', {}));
  assert.deepEqual(
    t.items.map((i) => [i.kind, i.level, i.text]),
    [
      ['notice', 'info', 'Node n2 now runs the session'],
      ['notice', 'warn', 'The sandbox is not responding (3 failed health checks); restarting it'],
      ['notice', 'ok', 'The sandbox is healthy again'],
      ['notice', 'warn', "The agent's connection was lost; the session was restored with its history"],
      ['notice', 'info', 'The session was ended'],
      ['notice', 'info', 'Session status: something_new'],
    ],
  );
});

test('a notice in the middle of a turn does not split its reply', () => {
  n = 0;
  const t = new Transcript();
  t.apply(user('ann', 'long', 'p1'));
  t.apply(status('turn_started', { promptId: 'p1', userId: 'ann' }));
  t.apply(chunk('one '));
  t.apply(status('owner_changed', { node: 'b', epoch: 2 }));
  t.apply(chunk('two'));
  t.apply(status('turn_ended', { promptId: 'p1', stopReason: 'end_turn' }));
  assert.deepEqual(t.items.map((i) => i.kind), ['user', 'agent', 'notice']);
  assert.equal(replyText(t.items[1]), 'one two');
  // Loose output after the notice starts a reply of its own.
  t.apply(chunk('stray'));
  t.apply(status('sandbox_recovered'));
  t.apply(chunk('again'));
  assert.deepEqual(t.items.map((i) => i.kind), ['user', 'agent', 'notice', 'agent', 'notice', 'agent']);
});

test('the same events in any number of batches fold to the same transcript', () => {
  n = 0;
  const evs = [...turn('p1', 'ann', 'a', ['x', 'y']), ...turn('p2', 'bob', 'b', ['z'])];
  const once = new Transcript();
  for (const e of evs) once.apply(e);
  // Overlapping replays (a reconnect that resends what was applied).
  const replayed = new Transcript();
  for (let i = 0; i < evs.length; i += 3) for (const e of evs.slice(Math.max(0, i - 4), i + 3)) replayed.apply(e);
  assert.equal(JSON.stringify(replayed.items), JSON.stringify(once.items));
  once.reset();
  assert.equal(once.items.length, 0);
  assert.equal(once.lastIndex, 0);
  assert.equal(once.apply(evs[5]).result, 'applied', 'after a reset any index starts it again');
});

test('ids', () => {
  assert.ok(validWorkspace('team-1.a_b'));
  assert.ok(!validWorkspace('a b'));
  assert.ok(!validWorkspace(''));
  assert.ok(!validWorkspace('x'.repeat(129)));
  assert.ok(validUser('ann@example.com'));
  assert.ok(!validUser('ann smith'));
});

test('a tool call keeps its diff (ACP content of type diff) with its kind and status', () => {
  const t = new Transcript();
  const up = (u, i) => ev('session.event', { sender: 'agent', payload: { method: 'session/update', params: { update: u } } }, i);
  t.apply(ev('session.status', { status: 'turn_started', detail: { promptId: 'p' } }, 1));
  t.apply(up({ sessionUpdate: 'tool_call', toolCallId: 'c1', title: 'Edit notes.md', kind: 'edit', status: 'in_progress' }, 2));
  t.apply(up({ sessionUpdate: 'tool_call_update', toolCallId: 'c1', status: 'completed', content: [{ type: 'diff', path: 'notes.md', oldText: 'a\n', newText: 'b\n' }] }, 3));
  const part = t.items[0].parts[0];
  assert.deepEqual([part.title, part.kind, part.status, part.diff], ['Edit notes.md', 'edit', 'completed', { path: 'notes.md', oldText: 'a\n', newText: 'b\n' }]);
});
