// identity.js on a fake fetch: the page's requests go through the
// JavaScript client (the node serves clients/js/src/index.js as
// /static/client.js; here a resolve hook maps the page's './client.js' to
// it), with X-Tandem-Csrf always and X-User-Id only in none mode.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';

const hook = `
export async function resolve(specifier, context, next) {
  if (specifier.endsWith('client.js') && context.parentURL) {
    const u = new URL(specifier, context.parentURL);
    if (u.pathname.endsWith('/web/static/client.js')) return next(new URL('../../clients/js/src/index.js', u).href, context);
  }
  return next(specifier, context);
}`;

const calls = [];
let answer = () => json(500, {});
const cookies = [];
const storage = new Map();

function json(status, body) {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

let id, client;

before(async () => {
  register('data:text/javascript,' + encodeURIComponent(hook));
  // What a page has: its origin, fetch, storage and cookies.
  globalThis.location = { origin: 'http://127.0.0.1:1' };
  globalThis.fetch = async (url, init) => {
    const u = new URL(url);
    const c = { method: init.method, path: u.pathname, headers: init.headers, credentials: init.credentials };
    calls.push(c);
    return answer(c);
  };
  globalThis.localStorage = {
    getItem: (k) => (storage.has(k) ? storage.get(k) : null),
    setItem: (k, v) => storage.set(k, String(v)),
    removeItem: (k) => storage.delete(k),
  };
  globalThis.document = {
    set cookie(v) {
      cookies.push(v);
    },
  };
  id = await import('../static/identity.js');
  client = await import('../static/client.js');
});

test('the page client is the JavaScript client, on the page origin', () => {
  assert.ok(id.tandem instanceof client.Tandem);
  assert.equal(id.tandem.baseUrl, 'http://127.0.0.1:1');
});

test('none mode: the stored name travels as X-User-Id and in the tandem_user cookie', async () => {
  storage.set('tandem.user', 'ann');
  calls.length = 0;
  answer = () => json(200, { auth: 'none', userId: 'ann', role: 'admin' });
  const me = await id.whoAmI();
  assert.deepEqual({ ...me }, { mode: 'none', user: 'ann', role: 'admin' });
  assert.equal(calls.length, 1);
  assert.equal(calls[0].path, '/v1/auth/me');
  assert.equal(calls[0].headers['X-User-Id'], 'ann');
  assert.equal(calls[0].headers['X-Tandem-Csrf'], '1');
  assert.equal(calls[0].credentials, 'same-origin');
  assert.match(cookies.at(-1), /^tandem_user=ann; Path=\/; SameSite=Strict/);
  id.setName('ann.b');
  assert.equal(id.tandem.user, 'ann.b');
  assert.equal(storage.get('tandem.user'), 'ann.b');
  assert.match(cookies.at(-1), /^tandem_user=ann\.b;/);
  assert.throws(() => id.setName('not valid'));
});

test('a name the node refuses (400) is forgotten', async () => {
  storage.set('tandem.user', 'bob');
  answer = () => json(400, { type: 'urn:tandem:error:invalid_user', status: 400 });
  const me = await id.whoAmI();
  assert.equal(me.user, '');
  assert.equal(storage.has('tandem.user'), false);
  assert.match(cookies.at(-1), /^tandem_user=; .*Max-Age=0/);
  assert.equal(id.tandem.user, '');
});

test('jwt mode: sign in by cookie, never X-User-Id; the node unreachable is a TandemError', async () => {
  storage.set('tandem.user', 'ann');
  answer = () => json(401, { type: 'urn:tandem:error:unauthenticated', status: 401 });
  let me = await id.whoAmI();
  assert.equal(me.mode, 'jwt');
  assert.equal(me.user, '');
  calls.length = 0;
  answer = (c) => (c.method === 'POST' ? json(200, { auth: 'jwt', userId: 'carol', role: 'member' }) : json(204));
  me = await id.signIn(' a.b.c ');
  assert.deepEqual({ ...me }, { mode: 'jwt', user: 'carol', role: 'member' });
  assert.equal(calls[0].path, '/v1/auth/cookie');
  assert.equal(calls[0].headers.Authorization, 'Bearer a.b.c');
  assert.equal(calls[0].headers['X-User-Id'], undefined, 'a JWT says who it is');
  assert.equal(calls[0].headers['X-Tandem-Csrf'], '1');
  await id.signOut();
  assert.equal(calls[1].method, 'DELETE');
  assert.equal(id.identity.user, '');
  answer = () => {
    throw new TypeError('fetch failed');
  };
  await assert.rejects(id.whoAmI(), (e) => e instanceof client.TandemError && e.status === 0);
  assert.equal(calls.filter((c) => c.path === '/v1/auth/me').length, 1, 'one attempt: the page offers "Try again"');
});

test('hue', () => {
  assert.equal(id.hue('ann'), id.hue('ann'));
  for (const u of ['a', 'bob', 'carol', '✦']) assert.ok(id.hue(u) >= 0 && id.hue(u) < 8);
});
