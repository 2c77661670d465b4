// app.js: Tandem's web client. `/` picks or creates a workspace; `/w/{ws}`
// is its room (room.js). No framework and no build step: ES modules served
// by the node under a strict Content-Security-Policy, talking to it through
// the JavaScript client (client.js; identity.js holds the page's one).

import { TandemError } from './client.js';
import { tandem, identity, whoAmI, storedName, setName, signIn, signOut, forgetUser, hue } from './identity.js';
import { Room, avatar, sessionOfPath } from './room.js';
import { validUser, validWorkspace } from './transcript.js';

const $ = (id) => document.getElementById(id);
const VIEWS = ['lobby', 'gate', 'room', 'problem'];
const RECENT_KEY = 'tandem.recent';

let room = null;

function show(view) {
  for (const v of VIEWS) $(v).hidden = v !== view;
  document.body.dataset.view = view;
}

// ---- fatal problems ----

function problem(title, detail, action) {
  $('problem-title').textContent = title;
  $('problem-detail').textContent = detail || '';
  const b = $('problem-action');
  b.hidden = !action;
  if (action) {
    b.textContent = action.label;
    b.onclick = action.run;
  }
  show('problem');
  document.title = title + ' · Tandem';
  (action ? b : $('problem-title')).focus?.();
}

function unreachable(e, retry) {
  problem('Tandem is not reachable', e && e.status ? e.message : 'The node did not answer. Check that it is running.', {
    label: 'Try again',
    run: retry,
  });
}

// ---- who are you ----

/** ensureIdentity resolves once the person has a name (none) or a token (jwt). */
function ensureIdentity() {
  if (identity.user) return Promise.resolve();
  return new Promise((resolve) => {
    show('gate');
    const jwt = identity.mode === 'jwt';
    const form = jwt ? $('token-form') : $('name-form');
    $('name-form').hidden = jwt;
    $('token-form').hidden = !jwt;
    const input = jwt ? $('gate-token') : $('gate-name');
    const err = jwt ? $('token-error') : $('name-error');
    err.textContent = '';
    input.value = jwt ? '' : storedName();
    input.focus();
    form.onsubmit = async (e) => {
      e.preventDefault();
      err.textContent = '';
      const v = input.value.trim();
      if (!jwt) {
        if (!validUser(v)) {
          err.textContent = 'Use 1 to 128 letters, digits or . _ @ + - (no spaces).';
          input.setAttribute('aria-invalid', 'true');
          input.focus();
          return;
        }
        input.removeAttribute('aria-invalid');
        setName(v);
        resolve();
        return;
      }
      if (!v) {
        err.textContent = 'Paste your access token.';
        input.focus();
        return;
      }
      try {
        await signIn(v);
        input.value = '';
        resolve();
      } catch (ex) {
        err.textContent = ex.status === 401 ? 'That token was not accepted: ' + ex.message : 'Could not sign in: ' + ex.message;
        input.focus();
      }
    };
  });
}

function renderMe() {
  $('me-name').textContent = identity.user;
  const a = $('me-avatar');
  a.className = 'avatar hue-' + hue(identity.user || '?');
  a.textContent = (identity.user[0] || '?').toUpperCase();
}

function wireMeDialog() {
  const dlg = $('me-dialog');
  const input = $('me-input');
  const err = $('me-error');
  $('me-button').addEventListener('click', () => {
    const jwt = identity.mode === 'jwt';
    $('me-name-field').hidden = jwt;
    $('me-save').hidden = jwt;
    $('me-signout').hidden = !jwt;
    $('me-jwt').hidden = !jwt;
    $('me-jwt').textContent = 'Signed in as ' + identity.user + (identity.role ? ' (' + identity.role + ')' : '') + '.';
    input.value = identity.user;
    err.textContent = '';
    dlg.showModal();
    (jwt ? $('me-signout') : input).focus();
  });
  $('me-close').addEventListener('click', () => dlg.close());
  $('me-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (!validUser(v)) {
      err.textContent = 'Use 1 to 128 letters, digits or . _ @ + - (no spaces).';
      input.focus();
      return;
    }
    dlg.close();
    if (v === identity.user) return;
    setName(v);
    renderMe();
    for (const li of document.querySelectorAll('#transcript .item.user')) {
      li.classList.toggle('mine', li.querySelector('.author')?.textContent === v);
    }
    room?.reconnect(); // presence follows the stream's user
  });
  $('me-signout').addEventListener('click', async () => {
    try {
      await signOut();
    } finally {
      location.assign('/');
    }
  });
}

// ---- the lobby: / ----

function recent() {
  try {
    const r = JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(r) ? r.filter(validWorkspace).slice(0, 8) : [];
  } catch {
    return [];
  }
}

function remember(ws) {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify([ws, ...recent().filter((w) => w !== ws)].slice(0, 8)));
  } catch {
    /* storage disabled */
  }
}

async function lobby() {
  if (identity.mode === 'jwt') await ensureIdentity();
  show('lobby');
  document.title = 'Tandem';
  const none = identity.mode === 'none';
  $('lobby-name-field').hidden = !none;
  $('lobby-who').hidden = none;
  $('lobby-who').textContent = none ? '' : 'Signed in as ' + identity.user + '.';
  const name = $('lobby-name');
  const wsIn = $('lobby-ws');
  name.value = identity.user || storedName();
  const list = recent();
  $('recent-nav').hidden = list.length === 0;
  $('recent').replaceChildren(
    ...list.map((ws) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = '/w/' + encodeURIComponent(ws);
      a.append(avatar(ws), document.createTextNode(ws));
      li.append(a);
      return li;
    }),
  );
  (none && !name.value ? name : wsIn).focus();
  const err = $('lobby-error');
  $('lobby-form').onsubmit = async (e) => {
    e.preventDefault();
    err.textContent = '';
    for (const i of [name, wsIn]) i.removeAttribute('aria-invalid');
    if (none && !validUser(name.value.trim())) {
      err.textContent = 'Your name: use 1 to 128 letters, digits or . _ @ + - (no spaces).';
      name.setAttribute('aria-invalid', 'true');
      name.focus();
      return;
    }
    const ws = wsIn.value.trim();
    if (!validWorkspace(ws)) {
      err.textContent = 'Workspace: use 1 to 128 letters, digits or . _ - (no spaces).';
      wsIn.setAttribute('aria-invalid', 'true');
      wsIn.focus();
      return;
    }
    if (none) setName(name.value.trim());
    const btn = $('lobby-open');
    btn.disabled = true;
    try {
      await openOrCreate(ws);
      location.assign('/w/' + encodeURIComponent(ws));
    } catch (ex) {
      err.textContent = ex.status === 403 ? 'Not allowed: ' + ex.message : 'Could not open it: ' + ex.message;
      btn.disabled = false;
    }
  };
}

/** openOrCreate makes sure workspace ws exists (creating it needs admin). */
async function openOrCreate(ws) {
  const w = tandem.workspace(ws);
  try {
    await w.info({ attempts: 1 });
  } catch (e) {
    if (e.status !== 404) throw e;
    await w.ensure(undefined, { attempts: 1 });
  }
}

// ---- the room: /w/{ws} ----

async function enterRoom(ws, sid = 'default') {
  await ensureIdentity();
  const w = tandem.workspace(ws);
  try {
    await w.info({ attempts: 1 }); // the page offers "Try again"
  } catch (e) {
    if (e.status === 401) {
      forgetUser();
      return enterRoom(ws, sid);
    }
    if (e.status === 404) {
      problem('No workspace “' + ws + '” yet', 'Create it, and share this page’s address with the people you work with.', {
        label: 'Create workspace',
        run: async () => {
          try {
            await w.ensure(undefined, { attempts: 1 });
            enterRoom(ws, sid);
          } catch (ex) {
            problem('Could not create “' + ws + '”', ex.message);
          }
        },
      });
      return;
    }
    if (e.status === 403) {
      problem('Not allowed', e.message);
      return;
    }
    unreachable(e, () => enterRoom(ws, sid));
    return;
  }
  remember(ws);
  renderMe();
  show('room');
  room?.stop();
  room = new Room(ws, sid, {
    onAuth: async () => {
      room.stop();
      forgetUser();
      await ensureIdentity();
      renderMe();
      show('room');
      room.reconnect();
    },
    onProblem: (e) => {
      if (e.status === 404) problem('Workspace “' + ws + '” is gone', e.message);
      else if (e.status === 403) problem('Not allowed', e.message);
      else problem('Something went wrong', e.message, { label: 'Reload', run: () => location.reload() });
    },
  });
  await room.start();
  $('prompt').focus();
}

// ---- start ----

async function main() {
  wireMeDialog();
  try {
    await whoAmI();
  } catch (e) {
    unreachable(e, () => location.reload());
    return;
  }
  const m = /^\/w\/([^/]+)(?:\/s\/([^/]+))?\/?$/.exec(location.pathname);
  if (!m) {
    await lobby();
    return;
  }
  let ws = '';
  try {
    ws = decodeURIComponent(m[1]);
  } catch {
    /* invalid escape: not a workspace id */
  }
  if (!validWorkspace(ws)) {
    problem('Not a workspace address', 'Workspace ids are 1 to 128 letters, digits or . _ -');
    return;
  }
  const sid = sessionOfPath(location.pathname);
  if (!sid) {
    problem('Not a session address', 'Session ids are 1 to 128 letters, digits or . _ -');
    return;
  }
  await enterRoom(ws, sid);
}

main().catch((e) => {
  console.error(e);
  problem('Something went wrong', e instanceof TandemError ? e.message : String(e), { label: 'Reload', run: () => location.reload() });
});
