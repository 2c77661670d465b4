// Compiled by test/types.test.mjs with tsc --noEmit --strict: the seed's
// browser example, ported, and the rest of the API.
import { Tandem, TandemError, type TandemEvent, type ChatUserEvent } from '../../src/index.js';
import { EventSource } from 'eventsource';

async function main() {
  const client = new Tandem({ baseUrl: 'http://127.0.0.1:8080', EventSource, user: 'user-123' });
  const workspaceId = 'workspace-42';
  const room = client.workspace(workspaceId);
  const conn = room.connect();
  conn.on('chat.user', (event: ChatUserEvent) => {
    console.log('user message', event.userId, event.text);
  });
  const off = conn.on('session.event', (event) => {
    console.log('sandbox event', event.payload, event.sender);
  });
  conn.on('reset', (r) => console.log(r.reason, r.oldest));
  conn.on('error', (e) => {
    if (e instanceof TandemError) console.log(e.status, e.type, e.code, e.transient);
  });
  const acc = await conn.prompt({ userId: 'user-123', text: 'Propose a refactor plan for auth middleware.' });
  const id: string = acc.id;
  off();
  await room.ensure();
  await room.answer('perm-1', 'allow-once');
  await room.session('s2').cancel();
  for await (const ev of room.history({ after: id, types: ['chat.user'] })) {
    const e: TandemEvent | { type: 'reset' } = ev;
    console.log(e.type);
  }
  // What the web room uses.
  const me = await client.signIn('a.jwt.token');
  console.log(me.auth, me.userId);
  client.user = 'ann';
  await client.me({ attempts: 1 });
  await room.info({ attempts: 1 });
  const s = room.session('default').connect({ after: '', catchUp: true });
  s.on('open', () => console.log('caught up'));
  s.retryNow();
  await s.configure({ mode: 'code' });
  await room.prompt({ text: 'hi', onRetry: (e, attempt, delayMs) => console.log(e.status, attempt, delayMs) });
  await client.signOut();
  room.close();
}
void main;

export async function workspaceStream(client: Tandem) {
  const room = client.workspace('w');
  const stream = room.events();
  stream.on('event', (e) => console.log(e.type, e.sessionId, e.eventIndex));
  stream.connect({ catchUp: true });
  const page = await room.listSessions({ limit: 10 });
  for (const r of page.items) console.log(r.id, r.agent);
  await room.session('s1').withdraw('p1');
  await room.session('s1').typing();
  await room.session('s1').typing(false);
  await room.session('s1').destroy();
  stream.close();
}
