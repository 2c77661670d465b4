// @tandem-dev/client: a client for Tandem, multiplayer Sandbox Agent
// sessions over HTTP and Server-Sent Events. No runtime dependencies: it
// uses the platform's fetch and EventSource (in Node, pass an EventSource
// implementation, such as the `eventsource` package's, as an option).
//
// What it owns for you:
//
//   - Cursors. Every persisted event carries its cursor as `id`; the client
//     remembers the last one it delivered. The EventSource resumes by itself
//     with Last-Event-ID after a dropped connection; when it gives up
//     (readyState CLOSED, e.g. a proxy's 502 while a node is down) the client
//     catches up from the paging route after a backoff (which also says the
//     status a browser's EventSource hides: 401, 404, 410…), then opens a new
//     EventSource with ?cursor=<last id>. In a browser, going back online
//     retries at once.
//   - Exactly once. An event whose eventIndex is not after the last delivered
//     one is dropped; one that would leave a hole makes the client fill it
//     from the paging route, so a consumer never sees a duplicate or a gap.
//   - Resets. When the server cannot resume a cursor exactly (trimmed, or
//     Redis lost the stream) it sends `reset {reason, oldest}` and continues
//     from the oldest retained event; the client passes it on as a `reset`
//     event and takes whatever comes next as the new start. A 410 on the
//     paging route is the same case.
//   - Prompts sent once. Each prompt gets its own Idempotency-Key, reused on
//     its retries after network errors, 429, 502, 503 and 504, with a backoff
//     that honours Retry-After.
//   - The CSRF header (X-Tandem-Csrf) on every request, and X-User-Id when a
//     user is named (for nodes running with TANDEM_AUTH=none).

const PERSISTED = ['chat.user', 'session.event', 'session.status', 'permission.requested', 'permission.resolved'];
// SSE event names listened for on every EventSource, besides the ones a
// listener asks for.
const STREAM_TYPES = [...PERSISTED, 'presence', 'reset', 'message'];
// The workspace stream's persisted types (GET /v1/workspaces/{ws}/events).
export const WORKSPACE_TYPES = ['session.created', 'session.destroyed', 'session.status', 'prompt.queued', 'prompt.dispatched', 'prompt.withdrawn'];
const WORKSPACE_STREAM_TYPES = [...WORKSPACE_TYPES, 'presence', 'reset', 'message'];
// Events of the client itself, never SSE event names.
const LOCAL_TYPES = new Set(['open', 'error', 'state', 'event']);
const ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const TRANSIENT = new Set([0, 429, 502, 503, 504]);

/** An error of the Tandem API (a problem+json body) or of the network (status 0). */
export class TandemError extends Error {
  /**
   * @param {number} status HTTP status; 0: the node could not be reached
   * @param {object|null} problem the problem+json body, when there was one
   * @param {{retryAfter?: number, cause?: unknown}} [extra]
   */
  constructor(status, problem, extra = {}) {
    const p = problem && typeof problem === 'object' ? problem : {};
    super(p.detail || p.title || (status ? 'HTTP ' + status : 'the server could not be reached'), extra.cause ? { cause: extra.cause } : undefined);
    this.name = 'TandemError';
    this.status = status;
    this.type = typeof p.type === 'string' ? p.type : '';
    this.title = typeof p.title === 'string' ? p.title : '';
    this.detail = typeof p.detail === 'string' ? p.detail : '';
    this.problem = problem && typeof problem === 'object' ? problem : null;
    this.retryAfter = Number(extra.retryAfter) > 0 ? Number(extra.retryAfter) : 0;
  }

  /** code is the type's last part: "cursor_expired" of "urn:tandem:error:cursor_expired". */
  get code() {
    const i = this.type.lastIndexOf(':');
    return i >= 0 ? this.type.slice(i + 1) : this.type;
  }

  /** transient: worth retrying (network error, rate limited, proxy or node briefly unavailable). */
  get transient() {
    return TRANSIENT.has(this.status);
  }
}

/** backoff is the delay before attempt n (0, 1, 2…): exponential with jitter, capped. */
function backoff(n, base, max) {
  const d = Math.min(max, base * 2 ** Math.min(n, 16));
  return Math.round(d / 2 + Math.random() * (d / 2));
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(signal.reason);
    const t = setTimeout(done, ms);
    function done() {
      if (signal) signal.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    if (signal) signal.addEventListener('abort', abort, { once: true });
  });
}

/** newKey makes an Idempotency-Key. */
export function newKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function checkId(kind, id) {
  if (typeof id !== 'string' || !ID_RE.test(id)) throw new TypeError(kind + ' id must be 1-128 characters of [A-Za-z0-9._-]: ' + JSON.stringify(id));
  return id;
}

/** indexOf reads the eventIndex out of a cursor `<index>.<gen>.<tag>` (null when it cannot). */
function indexOf(cursor) {
  const m = /^(\d+)\./.exec(cursor || '');
  return m ? Number(m[1]) : null;
}

/** The client: one per node (or load balancer) and identity. */
export class Tandem {
  /**
   * @param {import('./index').TandemOptions} [opts]
   */
  constructor(opts = {}) {
    const base = opts.baseUrl ?? (globalThis.location ? globalThis.location.origin : '');
    this.baseUrl = String(base).replace(/\/+$/, '');
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('no fetch: pass one as the fetch option');
    this.fetch = opts.fetch ? f : f.bind(globalThis);
    this.EventSource = opts.EventSource ?? globalThis.EventSource;
    this.headers = opts.headers ?? {};
    this.user = opts.user ?? '';
    this.token = opts.token ?? '';
    this.withCredentials = !!opts.withCredentials;
    this.retry = { attempts: 8, baseDelayMs: 250, maxDelayMs: 8000, ...(opts.retry || {}) };
    this.reconnect = { baseDelayMs: 500, maxDelayMs: 15000, ...(opts.reconnect || {}) };
    /** @type {Map<string, Workspace>} */
    this.rooms = new Map();
  }

  /** workspace returns the handle of a workspace (the same one for the same id). */
  workspace(id) {
    checkId('workspace', id);
    let w = this.rooms.get(id);
    if (!w) {
      w = new Workspace(this, id);
      this.rooms.set(id, w);
    }
    return w;
  }

  /** url makes an absolute (or, in a page with no baseUrl, origin-relative) URL. */
  url(path, query) {
    let u = this.baseUrl + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
      const s = q.toString();
      if (s) u += '?' + s;
    }
    return u;
  }

  /** requestHeaders are the headers of every request: CSRF, identity, the caller's own. */
  requestHeaders(extra) {
    const own = typeof this.headers === 'function' ? this.headers() : this.headers;
    const h = { 'X-Tandem-Csrf': '1' };
    if (this.user) h['X-User-Id'] = this.user;
    const token = typeof this.token === 'function' ? this.token() : this.token;
    if (token) h.Authorization = 'Bearer ' + token;
    return { ...h, ...(own || {}), ...(extra || {}) };
  }

  /** eventSourceFetch is the fetch an EventSource implementation that takes one (Node) uses: with our headers. */
  eventSourceFetch() {
    return (input, init = {}) => {
      const headers = { ...this.requestHeaders(), ...(init.headers || {}) };
      return this.fetch(input, { ...init, headers });
    };
  }

  /**
   * request makes one JSON request and returns the decoded answer (null
   * for an empty body). It throws TandemError.
   */
  async request(method, path, { body, headers, query, signal } = {}) {
    const h = this.requestHeaders({ Accept: 'application/json', ...(headers || {}) });
    const init = { method, headers: h, signal, cache: 'no-store', credentials: this.withCredentials ? 'include' : 'same-origin' };
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res, text;
    try {
      res = await this.fetch(this.url(path, query), init);
      text = await res.text();
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      if (signal && signal.aborted) throw signal.reason;
      throw new TandemError(0, null, { cause: e });
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null; // a proxy's HTML error page
      }
    }
    if (!res.ok) throw new TandemError(res.status, data, { retryAfter: res.headers.get('Retry-After') });
    return data;
  }

  /**
   * retrying is request with retries on transient errors (network, 429,
   * 502, 503, 504), waiting Retry-After when the server says, else a
   * backoff. Only for requests that are safe to send again.
   */
  async retrying(method, path, opts = {}) {
    const { baseDelayMs, maxDelayMs } = this.retry;
    const attempts = opts.attempts ?? this.retry.attempts;
    for (let n = 0; ; n++) {
      try {
        return await this.request(method, path, opts);
      } catch (e) {
        if (!(e instanceof TandemError) || !e.transient || n + 1 >= attempts) throw e;
        const wait = e.retryAfter ? Math.min(e.retryAfter * 1000, 60000) : backoff(n, baseDelayMs, maxDelayMs);
        // onRetry(error, attempt, delayMs): e.g. a page showing "Retrying…".
        if (typeof opts.onRetry === 'function') opts.onRetry(e, n + 1, wait);
        await sleep(wait, opts.signal);
      }
    }
  }

  /** me is GET /v1/auth/me: how the node authenticates and who the caller is. */
  me(opts = {}) {
    return this.retrying('GET', '/v1/auth/me', opts);
  }

  /**
   * signIn has the node keep a JWT in its HttpOnly cookie (POST
   * /v1/auth/cookie), which a browser then sends with every request, the
   * EventSource's included (it cannot send an Authorization header).
   * It resolves to the caller as GET /v1/auth/me says.
   */
  signIn(token, opts = {}) {
    if (typeof token !== 'string' || !token.trim()) throw new TypeError('signIn: token must be a non-empty string');
    return this.request('POST', '/v1/auth/cookie', { headers: { Authorization: 'Bearer ' + token.trim() }, signal: opts.signal });
  }

  /** signOut has the node forget the cookie signIn set. */
  async signOut(opts = {}) {
    await this.request('DELETE', '/v1/auth/cookie', { signal: opts.signal });
  }
}

/** A small event emitter: on() returns the unsubscribe function. */
class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
  }

  on(type, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    let s = this.listeners.get(type);
    if (!s) {
      s = new Set();
      this.listeners.set(type, s);
    }
    s.add(fn);
    this.listened(type);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const s = this.listeners.get(type);
    if (s) s.delete(fn);
  }

  once(type, fn) {
    const off = this.on(type, (...a) => {
      off();
      fn(...a);
    });
    return off;
  }

  listened() {}

  emit(type, ...args) {
    const s = this.listeners.get(type);
    if (!s) return;
    for (const fn of [...s]) {
      try {
        fn(...args);
      } catch (e) {
        // A listener's exception must not break the stream; report it.
        if (type !== 'error') this.emit('error', e);
        else queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

/** One session of a workspace: its stream, its prompts, its history. */
export class Session extends Emitter {
  constructor(room, id, path) {
    super();
    this.room = room;
    this.tandem = room.tandem;
    this.id = path ? id : checkId('session', id);
    this.path = path || room.path + '/sessions/' + encodeURIComponent(id);
    this.streamTypes = STREAM_TYPES;
    this.es = null;
    this.gen = 0; // bumped whenever the EventSource is torn down; stale callbacks check it
    this.attempt = 0;
    this.timer = null;
    this.wanted = false;
    this.lastId = ''; // the cursor of the last event delivered
    this.lastIndex = null; // its eventIndex; null: take whatever comes next
    this.esTypes = new Set();
    this._state = 'closed';
    this.onOnline = null;
    this.recovering = -1; // the gen of the catch-up under way
  }

  /** cursor is the id of the last event delivered ('' before any). */
  get cursor() {
    return this.lastId;
  }

  /** state: 'closed', 'connecting', 'live' or 'reconnecting'. */
  get state() {
    return this._state;
  }

  setState(s) {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
  }

  listened(type) {
    if (this.es && !LOCAL_TYPES.has(type)) this.listen(this.es, this.gen, type);
  }

  /**
   * connect follows the session's stream: from the start, after the given
   * cursor, or (when called again) from the last event delivered. With
   * catchUp, what is already there comes from the paging route first (in
   * pages of 1000), then the stream opens after it: an HTTP error (401,
   * 403, 404) is an `error` at once, where a browser's EventSource would
   * only say that it failed, and `open` means caught up.
   * @param {{after?: string, catchUp?: boolean}} [opts]
   */
  connect(opts = {}) {
    if (opts.after !== undefined) {
      // From the start (or a trimmed stream's oldest event) the first event
      // may have any index: null takes it.
      this.lastId = opts.after || '';
      this.lastIndex = this.lastId ? indexOf(this.lastId) : null;
    }
    if (opts.after !== undefined || opts.catchUp) this.teardown(); // a stream (or a pending retry) from elsewhere
    this.wanted = true;
    this.watchOnline(true);
    if (this.es || this.timer || this.recovering === this.gen) return this; // following already
    if (opts.catchUp) {
      this.setState('connecting');
      this.recover(this.gen);
    } else {
      this.open();
    }
    return this;
  }

  /** close stops following (the cursor is kept: connect() resumes there). */
  close() {
    this.wanted = false;
    this.watchOnline(false);
    this.teardown();
    this.setState('closed');
  }

  /**
   * retryNow reconnects at once when the stream is waiting to (after the
   * EventSource gave up), instead of at the end of the backoff. A browser
   * page's `online` event calls it while the session is connected.
   */
  retryNow() {
    if (!this.wanted || this.es || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.recover(this.gen);
  }

  watchOnline(on) {
    const g = globalThis;
    if (typeof g.addEventListener !== 'function') return; // not a browser
    if (on && !this.onOnline) {
      this.onOnline = () => this.retryNow();
      g.addEventListener('online', this.onOnline);
    } else if (!on && this.onOnline) {
      g.removeEventListener('online', this.onOnline);
      this.onOnline = null;
    }
  }

  teardown() {
    this.gen++;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.es) this.es.close();
    this.es = null;
  }

  open() {
    const ES = this.tandem.EventSource;
    if (typeof ES !== 'function') throw new TypeError('no EventSource: pass one as the EventSource option (in Node: the eventsource package)');
    this.teardown();
    const gen = this.gen;
    const url = this.tandem.url(this.path + '/events/stream', this.lastId ? { cursor: this.lastId } : null);
    this.setState(this.attempt ? 'reconnecting' : 'connecting');
    // A browser's EventSource takes only withCredentials; one that takes a
    // fetch (the eventsource package) sends our headers with it.
    const es = new ES(url, { withCredentials: this.tandem.withCredentials, fetch: this.tandem.eventSourceFetch() });
    this.es = es;
    this.esTypes = new Set();
    es.onopen = () => {
      if (gen !== this.gen) return;
      this.attempt = 0;
      this.setState('live');
      this.emit('open');
    };
    es.onerror = (e) => {
      if (gen !== this.gen) return;
      if (es.readyState === 2) {
        // It gave up (an HTTP error): find out why, then reopen ourselves.
        this.teardown();
        const status = e && typeof e.code === 'number' ? e.code : 0;
        this.emit('error', new TandemError(status, null, { cause: e }));
        this.scheduleRecover();
      } else {
        this.setState('reconnecting'); // it retries with Last-Event-ID by itself
      }
    };
    const types = new Set([...this.streamTypes, ...this.listeners.keys()]);
    for (const t of types) if (!LOCAL_TYPES.has(t)) this.listen(es, gen, t);
  }

  listen(es, gen, type) {
    if (this.esTypes.has(type)) return;
    this.esTypes.add(type);
    es.addEventListener(type, (m) => {
      if (gen !== this.gen) return;
      let data;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      this.deliver(type, data, m.lastEventId);
    });
  }

  /** deliver passes one event on, once and in order; false: a hole, being filled. */
  deliver(type, data, sseId) {
    if (type === 'reset') {
      // The cursor could not be resumed exactly: the stream goes on from the
      // oldest retained event, whatever its index.
      this.lastId = '';
      this.lastIndex = null;
      this.emit('reset', data);
      return true;
    }
    const id = (data && typeof data.id === 'string' && data.id) || '';
    if (!id || type === 'presence') {
      this.emit(type, data); // not persisted: no cursor, no order
      return true;
    }
    const idx = typeof data.eventIndex === 'number' ? data.eventIndex : indexOf(id);
    if (this.lastIndex !== null && idx !== null) {
      if (idx <= this.lastIndex) return true; // already delivered
      if (idx > this.lastIndex + 1) {
        // A hole (an event of a type nobody listens for on this
        // EventSource, or a bug): fill it from the paging route, which
        // has every type, then reopen after it.
        this.teardown();
        this.scheduleRecover(this.attempt ? undefined : 0);
        return false;
      }
    }
    this.lastId = id || sseId;
    this.lastIndex = idx;
    this.emit(type, data);
    this.emit('event', data);
    return true;
  }

  scheduleRecover(delay) {
    if (!this.wanted) return;
    this.setState('reconnecting');
    clearTimeout(this.timer);
    const { baseDelayMs, maxDelayMs } = this.tandem.reconnect;
    const d = delay ?? backoff(this.attempt, baseDelayMs, maxDelayMs);
    this.attempt++;
    const gen = this.gen;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (gen === this.gen && this.wanted) this.recover(gen);
    }, d);
  }

  /**
   * recover catches up from the paging route, delivering every event after
   * the cursor, then reopens the stream after the last one. The paging
   * route tells the status a browser's EventSource hides: a 410 when the
   * cursor is gone (a reset, then from the oldest event kept), a 401, 403
   * or 404 that retrying cannot fix (an error, and the session closes).
   */
  async recover(gen) {
    const live = () => gen === this.gen && this.wanted;
    this.recovering = gen;
    for (let pages = 0; pages < 100000; pages++) {
      let page;
      try {
        page = await this.tandem.request('GET', this.path + '/events', { query: { cursor: this.lastId, limit: 1000 } });
      } catch (e) {
        if (!live()) return;
        if (e instanceof TandemError && e.status === 410 && this.lastId) {
          this.lastId = '';
          this.lastIndex = null;
          this.emit('reset', { reason: e.code, oldest: e.problem && e.problem.oldest != null ? e.problem.oldest : null });
          if (!live()) return; // the listener took over
          continue;
        }
        if (e instanceof TandemError && !e.transient) {
          // Closed before the listener runs: it sees state 'closed'.
          this.wanted = false;
          this.watchOnline(false);
          this.teardown();
          this.setState('closed');
          this.emit('error', e);
          return;
        }
        this.scheduleRecover(e instanceof TandemError && e.retryAfter ? Math.min(e.retryAfter * 1000, 60000) : undefined);
        return;
      }
      if (!live()) return;
      const items = (page && Array.isArray(page.items) && page.items) || [];
      const from = this.lastId;
      for (const ev of items) {
        if (!ev || typeof ev !== 'object') continue;
        if (!this.deliver(ev.type, ev, '')) return; // a hole in a page: deliver scheduled another catch-up
        if (!live()) return; // a listener closed or reconnected
      }
      // The end, or a page that does not move the cursor on (the stream
      // takes it from there).
      if (!page || !page.nextCursor || !items.length || this.lastId === from) break;
    }
    this.open();
  }

  /**
   * prompt sends a prompt (202: it is in the inbox). It retries after
   * network errors and 429/502/503/504 with the same Idempotency-Key, so the
   * prompt is accepted at most once.
   * `onRetry(error, attempt, delayMs)` is called before each retry.
   * @param {string | {text: string, userId?: string, idempotencyKey?: string, signal?: AbortSignal, onRetry?: Function}} input
   */
  prompt(input) {
    const o = typeof input === 'string' ? { text: input } : input || {};
    if (typeof o.text !== 'string') throw new TypeError('prompt: text must be a string');
    const headers = { 'Idempotency-Key': o.idempotencyKey || newKey() };
    if (o.userId) headers['X-User-Id'] = o.userId;
    return this.tandem.retrying('POST', this.path + '/prompt', { body: { text: o.text }, headers, signal: o.signal, onRetry: o.onRetry });
  }

  /** cancel cancels the running turn (and its open permission requests). */
  async cancel(opts = {}) {
    await this.tandem.request('POST', this.path + '/cancel', { headers: opts.userId ? { 'X-User-Id': opts.userId } : undefined });
  }

  /**
   * answer answers a permission request with one of its options, or
   * `{outcome: "cancelled"}`. A later answer than the first is a
   * TandemError 409 (`permission_already_resolved`, with `problem.resolution`).
   */
  answer(requestId, option, opts = {}) {
    if (typeof requestId !== 'string' || !requestId) throw new TypeError('answer: requestId must be a string');
    const body = typeof option === 'string' ? { optionId: option } : option;
    return this.tandem.request('POST', this.path + '/permissions/' + encodeURIComponent(requestId), {
      body,
      headers: opts.userId ? { 'X-User-Id': opts.userId } : undefined,
    });
  }

  /**
   * configure changes the session's mode, model or config options (PATCH;
   * 202: the owner carries it out in inbox order, and everyone sees a
   * session.status mode_changed, model_changed, config_changed or
   * config_failed).
   * @param {{mode?: string, model?: string, configOptions?: Record<string, string>}} change
   */
  configure(change, opts = {}) {
    if (!change || typeof change !== 'object') throw new TypeError('configure: change must be an object');
    return this.tandem.request('PATCH', this.path, { body: change, headers: opts.userId ? { 'X-User-Id': opts.userId } : undefined, signal: opts.signal });
  }

  /** info is the SessionRecord. */
  info(opts = {}) {
    return this.tandem.retrying('GET', this.path, opts);
  }

  /**
   * withdraw withdraws a prompt not yet dispatched (its id: what prompt()
   * answered). A dispatched one is a TandemError 409 `prompt_dispatched`;
   * an unknown one 404 `prompt_not_found`; someone else's 403.
   */
  withdraw(promptId, opts = {}) {
    if (typeof promptId !== 'string' || !promptId) throw new TypeError('withdraw: promptId must be a string');
    return this.tandem.request('DELETE', this.path + '/prompts/' + encodeURIComponent(promptId), {
      headers: opts.userId ? { 'X-User-Id': opts.userId } : undefined,
      signal: opts.signal,
    });
  }

  /**
   * typing says the caller is typing in this session (on, the default) or
   * stopped: presence, shown to the room in the `presence` event
   * (`users[].typing` is the session), expiring a few seconds after the
   * last call. Call it at most every 2 s while the person types.
   */
  typing(on = true, opts = {}) {
    return this.tandem.request('POST', this.room.path + '/typing', { body: { sessionId: this.id, typing: !!on }, signal: opts.signal });
  }

  /** destroy ends the session (DELETE; the record keeps destroyedAt). */
  async destroy(opts = {}) {
    await this.tandem.request('DELETE', this.path, { signal: opts.signal });
  }

  /** page is one page of events strictly after `after`. */
  page({ after, limit, types, signal } = {}) {
    const query = { cursor: after, limit, type: types && types.length ? types.join(',') : undefined };
    return this.tandem.retrying('GET', this.path + '/events', { query, signal });
  }

  /**
   * history pages through the events after `after` (default: all), oldest
   * first, until the end. `types` filters by type (sent as ?type=, and
   * checked here too). A cursor the server no longer has (410) yields a
   * `{type: "reset", reason, oldest}` item and goes on from the oldest
   * retained event, as the stream does; `onReset: "throw"` throws instead.
   */
  async *history({ after, types, limit = 1000, signal, onReset = 'continue' } = {}) {
    const want = types && types.length ? new Set(types) : null;
    let cursor = after || '';
    for (let pages = 0; ; pages++) {
      let page;
      try {
        page = await this.page({ after: cursor, limit, types, signal });
      } catch (e) {
        if (e instanceof TandemError && e.status === 410 && cursor && onReset !== 'throw') {
          yield { type: 'reset', reason: e.code, oldest: e.problem && e.problem.oldest != null ? e.problem.oldest : null };
          cursor = '';
          continue;
        }
        throw e;
      }
      const items = (page && Array.isArray(page.items) && page.items) || [];
      for (const ev of items) if (!want || want.has(ev.type)) yield ev;
      const next = page && page.nextCursor;
      if (!next || !items.length || next === cursor) return;
      cursor = next;
    }
  }
}

/**
 * The workspace's own stream ({ws}/events): session.created,
 * session.destroyed, session.status summaries, prompt.queued,
 * prompt.dispatched, prompt.withdrawn, and presence. It is followed,
 * resumed and caught up exactly as a session's stream (connect, close,
 * `event`, `reset`, `state`…); it has no prompts.
 */
export class WorkspaceStream extends Session {
  constructor(room) {
    super(room, '~ws', room.path);
    this.streamTypes = WORKSPACE_STREAM_TYPES;
  }
}
for (const m of ['prompt', 'cancel', 'answer', 'configure', 'info', 'withdraw', 'destroy', 'typing']) {
  Object.defineProperty(WorkspaceStream.prototype, m, {
    value() {
      throw new TypeError(m + ': the workspace stream is no session');
    },
  });
}

/** A workspace: its sessions, and its default session's methods. */
export class Workspace {
  constructor(tandem, id) {
    this.tandem = tandem;
    this.id = id;
    this.path = '/v1/workspaces/' + encodeURIComponent(id);
    /** @type {Map<string, Session>} */
    this.sessions = new Map();
    this.default = this.session('default');
  }

  /** session returns the handle of a session (the same one for the same id). */
  session(id) {
    let s = this.sessions.get(id);
    if (!s) {
      s = new Session(this, id);
      this.sessions.set(id, s);
    }
    return s;
  }

  /** ensure creates the workspace, or updates it with body (PUT; no body: the node's sandbox and agent). */
  ensure(body, opts = {}) {
    return this.tandem.retrying('PUT', this.path, { ...opts, body });
  }

  /** info is GET /v1/workspaces/{ws}. */
  info(opts = {}) {
    return this.tandem.retrying('GET', this.path, opts);
  }

  /** events is the workspace's own stream (the same handle every time). */
  events() {
    if (!this.stream) this.stream = new WorkspaceStream(this);
    return this.stream;
  }

  /** listSessions is one page of the workspace's SessionRecords. */
  listSessions({ cursor, limit, ...opts } = {}) {
    return this.tandem.retrying('GET', this.path + '/sessions', { ...opts, query: { cursor, limit } });
  }

  /** presence is who is here now. */
  presence(opts = {}) {
    return this.tandem.retrying('GET', this.path + '/presence', opts);
  }

  /** createSession resumes or creates a session and returns its handle. */
  async createSession(opts = {}) {
    const rec = await this.tandem.request('POST', this.path + '/sessions', { body: opts });
    return this.session(rec.id);
  }

  /** close closes every session's stream of this workspace. */
  close() {
    for (const s of this.sessions.values()) s.close();
    if (this.stream) this.stream.close();
  }

  // The default session's methods.
  on(type, fn) {
    return this.default.on(type, fn);
  }
  off(type, fn) {
    this.default.off(type, fn);
  }
  once(type, fn) {
    return this.default.once(type, fn);
  }
  connect(opts) {
    this.default.connect(opts);
    return this;
  }
  prompt(input) {
    return this.default.prompt(input);
  }
  cancel(opts) {
    return this.default.cancel(opts);
  }
  answer(requestId, option, opts) {
    return this.default.answer(requestId, option, opts);
  }
  configure(change, opts) {
    return this.default.configure(change, opts);
  }
  retryNow() {
    this.default.retryNow();
  }
  page(opts) {
    return this.default.page(opts);
  }
  history(opts) {
    return this.default.history(opts);
  }
  get cursor() {
    return this.default.cursor;
  }
  get state() {
    return this.default.state;
  }
}

export default Tandem;
