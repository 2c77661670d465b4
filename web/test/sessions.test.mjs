// The session list and queue of the room, folded from the workspace stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionList, sessionState } from '../static/sessions.js';

let n = 0;
const ev = (type, sessionId, extra = {}) => ({ id: ++n + '.g.t', eventIndex: n, type, sessionId, createdAt: n, ...extra });

test('sessions: created, summarized, destroyed; records fill in agent and mode', () => {
  const l = new SessionList();
  l.show('default');
  l.addRecord({ id: 'default', agent: 'mock', createdAt: 1, modes: { currentModeId: 'ask' } });
  assert.ok(l.apply(ev('session.created', 's2', { agent: 'mock', createdAt: 5 })));
  l.apply(ev('session.status', 's2', { agent: 'mock', running: true, pendingPermissions: 1, mode: 'code', queued: 2 }));
  const s2 = l.sessions.get('s2');
  assert.deepEqual([s2.running, s2.pendingPermissions, s2.mode, s2.queued], [true, 1, 'code', 2]);
  assert.equal(sessionState(s2), 'waiting for permission');
  assert.deepEqual(l.list().map((s) => s.id), ['default', 's2']);
  assert.equal(l.sessions.get('default').mode, 'ask');
  l.apply(ev('session.destroyed', 's2', { destroyedAt: 9 }));
  assert.deepEqual(l.list().map((s) => s.id), ['default'], 'an ended session leaves the list');
  l.show('s2');
  assert.deepEqual(l.list().map((s) => s.id), ['default', 's2'], 'unless it is shown');
  assert.equal(sessionState(l.sessions.get('s2')), 'ended');
  assert.equal(l.apply({ type: 'session.created' }), false, 'no session: ignored');
});

test('unread: live news of a session not shown (a prompt dispatched, a turn ended), not history; showing it reads it', () => {
  const l = new SessionList();
  l.show('default');
  l.apply(ev('prompt.dispatched', 's2', { promptId: 'old' }), false);
  l.apply(ev('session.status', 's2', { running: true }), false);
  l.apply(ev('session.status', 's2', { running: false }), false);
  assert.equal(l.sessions.get('s2').unread, 0, 'history is not unread');
  l.apply(ev('prompt.dispatched', 's2', { promptId: 'p1' }), true);
  l.apply(ev('session.status', 's2', { running: true }), true);
  l.apply(ev('session.status', 's2', { running: false }), true);
  l.apply(ev('prompt.dispatched', 'default', { promptId: 'p2' }), true);
  assert.equal(l.sessions.get('s2').unread, 2);
  assert.equal(l.sessions.get('default').unread, 0, 'the session shown has nothing unread');
  l.show('s2');
  assert.equal(l.sessions.get('s2').unread, 0);
});

test('queue: everyone sees queued prompts with their positions until dispatched or withdrawn', () => {
  const l = new SessionList();
  l.apply(ev('prompt.queued', 's', { promptId: 'a', userId: 'ann', text: 'first', position: 1 }));
  l.apply(ev('prompt.queued', 's', { promptId: 'b', userId: 'bob', text: 'second', position: 2 }));
  l.apply(ev('prompt.queued', 's', { promptId: 'c', userId: 'bob', text: 'third', position: 3 }));
  l.apply(ev('prompt.queued', 'other', { promptId: 'x', userId: 'ann', text: 'elsewhere', position: 1 }));
  assert.deepEqual(l.queued('s').map((q) => [q.promptId, q.position]), [['a', 1], ['b', 2], ['c', 3]]);
  l.apply(ev('prompt.dispatched', 's', { promptId: 'a' }));
  assert.deepEqual(l.queued('s').map((q) => [q.promptId, q.userId, q.text, q.position]), [['b', 'bob', 'second', 1], ['c', 'bob', 'third', 2]]);
  l.apply(ev('prompt.withdrawn', 's', { promptId: 'b', by: 'bob' }));
  assert.deepEqual(l.queued('s').map((q) => [q.promptId, q.position]), [['c', 1]]);
  assert.ok(l.dispatched('c'), 'its chat.user came before prompt.dispatched');
  l.apply(ev('prompt.dispatched', 's', { promptId: 'c' }));
  assert.deepEqual(l.queued('s'), []);
  l.apply(ev('prompt.queued', 's', { promptId: 'c', userId: 'bob', text: 'third' }));
  assert.deepEqual(l.queued('s'), [], 'a prompt that left does not come back');
  l.apply(ev('session.destroyed', 'other'));
  assert.deepEqual(l.queued('other'), [], 'an ended session has no queue');
});
