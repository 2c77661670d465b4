// The permission card's view model and the configuration notices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transcript } from '../static/transcript.js';
import { resolutionText } from '../static/permission.js';

let n = 0;
function ev(type, body) {
  n++;
  return { id: 'c' + n, eventIndex: n, sessionId: 'default', createdAt: 1000 * n, type, ...body };
}

const requested = () =>
  ev('permission.requested', {
    requestId: 'perm-1',
    toolCall: {
      toolCallId: 'call_1',
      title: 'Write /tmp/a.txt',
      kind: 'edit',
      rawInput: { path: '/tmp/a.txt' },
      content: [{ type: 'diff', path: '/tmp/a.txt', oldText: null, newText: 'hello\n' }],
    },
    options: [
      { optionId: 'allow-once', name: 'Allow once', kind: 'allow_once' },
      { optionId: 'reject-once', name: 'Reject', kind: 'reject_once' },
      { name: 'no id' },
    ],
    requestedAt: 5,
    expiresAt: 600005,
  });

test('a request becomes a pending card with its tool call and options; its resolution updates it', () => {
  n = 0;
  const t = new Transcript();
  const r = t.apply(requested());
  assert.equal(r.result, 'applied');
  const item = r.changes[0].item;
  assert.equal(item.kind, 'permission');
  assert.equal(item.status, 'pending');
  assert.equal(item.title, 'Write /tmp/a.txt');
  assert.equal(item.toolKind, 'edit');
  assert.equal(item.path, '/tmp/a.txt');
  assert.deepEqual(item.diff, { path: '/tmp/a.txt', oldText: '', newText: 'hello\n' });
  assert.deepEqual(
    item.options.map((o) => o.optionId),
    ['allow-once', 'reject-once'],
    'an option without an id is left out',
  );
  const r2 = t.apply(ev('permission.resolved', { requestId: 'perm-1', optionId: 'reject-once', outcome: 'selected', by: 'bob', at: 7 }));
  assert.deepEqual(r2.changes, [{ op: 'update', item }]);
  assert.equal(item.status, 'resolved');
  assert.equal(resolutionText(item), 'bob chose “Reject”');
});

test('resolutions by the policy, the timeout and Tandem say so', () => {
  n = 0;
  const t = new Transcript();
  const item = t.apply(requested()).changes[0].item;
  t.apply(ev('permission.resolved', { requestId: 'perm-1', outcome: 'cancelled', by: 'timeout', reason: 'nobody answered in time' }));
  assert.match(resolutionText(item), /^Nobody answered in time: Tandem cancelled the request/);
  item.resolution.by = 'policy';
  assert.match(resolutionText(item), /^The workspace's policy/);
});

test('a resolution whose request was trimmed is a notice; mode changes and agent errors are notices', () => {
  n = 10;
  const t = new Transcript();
  const r = t.apply(ev('permission.resolved', { requestId: 'perm-x', outcome: 'cancelled', by: 'ann' }));
  assert.equal(r.changes[0].item.kind, 'notice');
  const m = t.apply(ev('session.status', { status: 'mode_changed', detail: { mode: 'code', by: 'bob' } }));
  assert.equal(m.changes[0].item.text, 'bob set the mode to code');
  assert.equal(t.mode, 'code');
  const a = t.apply(ev('session.status', { status: 'agent_error', detail: { message: 'cwd is not a directory', code: -32602 } }));
  assert.equal(a.changes[0].item.level, 'error');
  assert.match(a.changes[0].item.text, /could not start: cwd is not a directory/);
});
