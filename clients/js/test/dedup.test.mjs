// The exactly-once rules on a fake EventSource: duplicates dropped, a hole
// makes the client catch up from the paging route and reopen after its
// cursor, a reset starts afresh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tandem } from '../src/index.js';

class FakeES {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.handlers = new Map();
    FakeES.all.push(this);
  }
  addEventListener(t, fn) {
    this.handlers.set(t, fn);
  }
  close() {
    this.readyState = 2;
  }
  send(type, data) {
    const fn = this.handlers.get(type);
    if (fn) fn({ data: JSON.stringify(data), lastEventId: data.id || '' });
  }
}

const ev = (i, gen = 'g') => ({ id: `${i}.${gen}.t`, eventIndex: i, type: 'chat.user', text: 't' + i });

test('dedup: duplicates dropped, a hole is filled from the paging route and the stream reopens after it, a reset starts afresh', async () => {
  FakeES.all = [];
  const fetch = async () => new Response('{"items":[]}', { status: 200 });
  const t = new Tandem({ baseUrl: 'http://127.0.0.1:1', EventSource: FakeES, fetch });
  const room = t.workspace('w');
  const got = [];
  const resets = [];
  room.on('chat.user', (e) => got.push(e.id));
  room.on('reset', (r) => resets.push(r.reason));
  room.connect();
  let es = FakeES.all[0];
  assert.ok(!es.url.includes('cursor='));
  es.send('chat.user', ev(1));
  es.send('chat.user', ev(2));
  es.send('chat.user', ev(2)); // duplicate
  es.send('chat.user', ev(1)); // older
  es.send('chat.user', ev(4)); // a hole: 3 is missing
  assert.deepEqual(got, ['1.g.t', '2.g.t']);
  assert.equal(es.readyState, 2, 'closed on the hole');
  await new Promise((r) => setTimeout(r, 50));
  es = FakeES.all.at(-1);
  assert.equal(FakeES.all.length, 2);
  assert.match(es.url, /cursor=2\.g\.t$/);
  es.send('chat.user', ev(3));
  es.send('chat.user', ev(4));
  es.send('reset', { reason: 'cursor_unknown', oldest: null });
  es.send('chat.user', ev(1, 'h')); // the new history, from its start
  es.send('chat.user', ev(2, 'h'));
  room.close();
  es.send('chat.user', ev(3, 'h')); // after close: nothing
  assert.deepEqual(got, ['1.g.t', '2.g.t', '3.g.t', '4.g.t', '1.h.t', '2.h.t']);
  assert.deepEqual(resets, ['cursor_unknown']);
  assert.equal(room.cursor, '2.h.t');
});
