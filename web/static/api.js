// api.js: calls to the node's HTTP API and who the caller is.
//
// Two modes, told by GET /v1/auth/me: "none" (the person names themselves:
// the X-User-Id header on fetches and the tandem_user cookie for
// EventSource, which cannot send headers) and "jwt" (a token in an
// HttpOnly cookie, set by POST /v1/auth/cookie). Every request carries
// X-Tandem-Csrf, which unsafe requests authenticated by the cookie need.

import { validUser } from './transcript.js';

const NAME_KEY = 'tandem.user';
const USER_COOKIE = 'tandem_user';

/** An API error: status 0 is a network error (the node could not be reached). */
export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    const p = problem && typeof problem === 'object' ? problem : {};
    super(p.detail || p.title || (status ? 'HTTP ' + status : 'The server could not be reached'));
    this.status = status;
    this.type = typeof p.type === 'string' ? p.type : '';
    this.title = typeof p.title === 'string' ? p.title : '';
    this.retryAfter = retryAfter ? Number(retryAfter) : 0;
  }

  /** transient: worth retrying (network error, overloaded or restarting node). */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/** The caller, once known: {mode:'none'|'jwt', user:string, role:string}. */
export const identity = { mode: 'none', user: '', role: '' };

/** api makes a JSON request to the node and returns the decoded answer. */
export async function api(method, path, { body, headers, signal } = {}) {
  const h = { Accept: 'application/json', 'X-Tandem-Csrf': '1', ...headers };
  if (identity.mode === 'none' && identity.user) h['X-User-Id'] = identity.user;
  const init = { method, headers: h, credentials: 'same-origin', cache: 'no-store', signal };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res, text;
  try {
    res = await fetch(path, init);
    text = await res.text();
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, null);
  }
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null; // a proxy's HTML error page
    }
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers.get('Retry-After'));
  return data;
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
}

function forgetName() {
  try {
    localStorage.removeItem(NAME_KEY);
  } catch {
    /* nothing to forget */
  }
  document.cookie = USER_COOKIE + '=; Path=/; SameSite=Strict; Max-Age=0';
  identity.user = '';
}

/**
 * whoAmI asks the node how it authenticates and who we are. It resolves to
 * identity with user '' when the person must pick a name (none) or sign in
 * (jwt); it throws ApiError when the node cannot be reached.
 */
export async function whoAmI() {
  const name = storedName();
  identity.mode = 'none';
  identity.user = name;
  if (name) setName(name); // refresh the cookie
  let me;
  try {
    me = await api('GET', '/v1/auth/me');
  } catch (e) {
    if (e.status === 401) {
      identity.mode = 'jwt';
      identity.user = '';
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
  return identity;
}

/** signIn stores a token in the node's HttpOnly cookie. */
export async function signIn(token) {
  const me = await api('POST', '/v1/auth/cookie', { headers: { Authorization: 'Bearer ' + token.trim() } });
  identity.mode = 'jwt';
  identity.user = me.userId || '';
  identity.role = me.role || '';
  return identity;
}

/** signOut forgets the token cookie. */
export async function signOut() {
  await api('DELETE', '/v1/auth/cookie');
  identity.user = '';
}

/** newKey is an Idempotency-Key: the same for every retry of one prompt. */
export function newKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** hue picks one of the page's 8 avatar colours for a user id. */
export function hue(id) {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % 8;
}
