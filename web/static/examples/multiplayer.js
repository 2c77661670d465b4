// Sandbox Agent's multiplayer guide, its browser client, ported to
// @tandem-dev/client. The guide's lines are kept (as comments) above what
// replaces them; the rest only shows what arrives on the page. Served by
// every node at /static/examples/multiplayer.html.

// import { createClient } from "rivetkit/client";
import { Tandem } from '../client.js';

const q = new URLSearchParams(location.search);
const userId = q.get('user') || 'user-123';

// const client = createClient<typeof registry>({ endpoint: process.env.NEXT_PUBLIC_RIVET_ENDPOINT! });
const client = new Tandem({ user: userId }); // the node that served this page; X-User-Id for TANDEM_AUTH=none

const workspaceId = q.get('workspace') || 'workspace-42';
// const room = client.workspace.getOrCreate([workspaceId]);
const room = client.workspace(workspaceId);
await room.ensure();

const conn = room.connect();

conn.on('chat.user', (event) => {
  console.log('user message', event);
  show('chat.user', event.userId + ': ' + event.text);
});

conn.on('session.event', (event) => {
  console.log('sandbox event', event);
  const p = event.payload || {};
  show('session.event', event.sender + ' ' + (p.method || ('error' in p ? 'error' : 'result')) + (p.id !== undefined ? ' #' + p.id : ''));
});

// What the guide leaves to the actor: the stream's state and resets.
conn.on('state', (s) => (document.getElementById('status').value = s));
conn.on('reset', (r) => show('reset', r.reason));

await conn.prompt({
  userId,
  text: q.get('text') || 'Propose a refactor plan for auth middleware.',
});
show('prompt', 'accepted');

function show(type, text) {
  const line = document.createElement('div');
  line.dataset.type = type;
  line.textContent = type + ' ' + text;
  document.getElementById('log').append(line);
}
