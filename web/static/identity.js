// identity.js: who the caller is, and the page's client of the node.
//
// Every HTTP request and event stream goes through the JavaScript client,
// @tandem-dev/client (clients/js), which the node serves as client.js: it
// sends X-Tandem-Csrf (which unsafe requests authenticated by the cookie
// need) and, when a user is named, X-User-Id.
//
// Two modes, told by GET /v1/auth/me: "none" (the person names themselves:
// X-User-Id on fetches and the tandem_user cookie for EventSource, which
// cannot send headers) and "jwt" (a token in an HttpOnly cookie, set by
// POST /v1/auth/cookie).

import { Tandem } from './client.js';
import { validUser } from './transcript.js';

const NAME_KEY = 'tandem.user';
const USER_COOKIE = 'tandem_user';

/**
 * tandem is the page's client of the node it was served by: a prompt is
 * tried up to 7 times (one Idempotency-Key), a stream the EventSource gave
 * up on is reopened after at most 8 s.
 */
export const tandem = new Tandem({ retry: { attempts: 7 }, reconnect: { baseDelayMs: 500, maxDelayMs: 8000 } });

/** The caller, once known: {mode:'none'|'jwt', user:string, role:string}. */
export const identity = { mode: 'none', user: '', role: '' };

/** sync names the user on the client's requests: in none mode only (a JWT says who it is). */
function sync() {
  tandem.user = identity.mode === 'none' ? identity.user : '';
}

/** storedName is the display name this browser chose (none mode). */
export function storedName() {
  let n = '';
  try {
    n = localStorage.getItem(NAME_KEY) || '';
  } catch {
    /* storage disabled */
  }
  return validUser(n) ? n : '';
}

/** setName keeps the display name and the cookie EventSource sends. */
export function setName(name) {
  if (!validUser(name)) throw new Error('invalid name');
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    /* storage disabled: the cookie still carries it */
  }
  document.cookie = USER_COOKIE + '=' + name + '; Path=/; SameSite=Strict; Max-Age=31536000';
  identity.user = name;
  sync();
}

function forgetName() {
  try {
    localStorage.removeItem(NAME_KEY);
  } catch {
    /* nothing to forget */
  }
  document.cookie = USER_COOKIE + '=; Path=/; SameSite=Strict; Max-Age=0';
  identity.user = '';
  sync();
}

/** forgetUser makes the page ask again who the person is (a 401: the token expired). */
export function forgetUser() {
  identity.user = '';
  sync();
}

/**
 * whoAmI asks the node how it authenticates and who we are. It resolves to
 * identity with user '' when the person must pick a name (none) or sign in
 * (jwt); it throws TandemError when the node cannot be reached.
 */
export async function whoAmI() {
  const name = storedName();
  identity.mode = 'none';
  identity.user = name;
  sync();
  if (name) setName(name); // refresh the cookie
  let me;
  try {
    me = await tandem.me({ attempts: 1 }); // the page offers "Try again"
  } catch (e) {
    if (e.status === 401) {
      identity.mode = 'jwt';
      forgetUser();
      return identity;
    }
    if (e.status === 400) {
      // A stored name or cookie the node refuses: ask again.
      forgetName();
      return identity;
    }
    throw e;
  }
  identity.role = me.role || '';
  if (me.auth === 'jwt') {
    identity.mode = 'jwt';
    identity.user = me.userId || '';
  } else {
    identity.mode = 'none';
    identity.user = name;
  }
  sync();
  return identity;
}

/** signIn has the node keep a token in its HttpOnly cookie. */
export async function signIn(token) {
  const me = await tandem.signIn(token);
  identity.mode = 'jwt';
  identity.user = me.userId || '';
  identity.role = me.role || '';
  sync();
  return identity;
}

/** signOut forgets the token cookie. */
export async function signOut() {
  await tandem.signOut();
  forgetUser();
}

/** hue picks one of the page's 8 avatar colours for a user id. */
export function hue(id) {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % 8;
}
