// room.js: the room of a workspace. It loads the default session's history
// from the paging route, then follows the stream with the browser's
// EventSource from the last event it applied, and renders the transcript,
// presence and the connection state.
//
// Resuming: EventSource reconnects by itself with Last-Event-ID after a
// dropped connection; when it gives up (readyState CLOSED: an HTTP error
// such as a proxy's 502 while a node is down) the room catches up from the
// paging route after a backoff and opens a new EventSource with
// ?cursor=<last id>. Every event is applied once: one whose eventIndex is
// not after the last applied is dropped, and one that would leave a hole
// makes the room fill the hole from the paging route first.

import { api, ApiError, identity, newKey, hue } from './api.js';
import { Transcript, turnSummary, duration, replyText, backoff } from './transcript.js';
import { renderPermission, updatePermission, resolutionText } from './permission.js';
import { ModePicker } from './session.js';

const $ = (id) => document.getElementById(id);

const STATES = {
  connecting: 'Connecting…',
  'catching-up': 'Catching up…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

export class Room {
  /**
   * @param {string} ws the workspace id
   * @param {{onAuth: () => void, onProblem: (e: ApiError) => void}} hooks
   */
  constructor(ws, hooks) {
    this.ws = ws;
    this.hooks = hooks;
    this.sid = 'default';
    this.base = '/v1/workspaces/' + encodeURIComponent(ws);
    this.eventsPath = this.base + '/sessions/' + this.sid + '/events';
    this.t = new Transcript();
    this.nodes = new Map(); // item key → <li>
    this.pending = new Map(); // inbox id or local key → <li>
    this.es = null;
    this.gen = 0; // bumped whenever the stream is torn down; stale callbacks check it
    this.attempt = 0;
    this.timer = 0;
    this.live = false; // after the first catch-up: announce new messages
    this.presenceSeq = 0;
    this.state = '';
    this.el = {
      conn: $('conn'),
      connLabel: $('conn-label'),
      transcript: $('transcript'),
      pending: $('pending'),
      scroller: $('scroller'),
      empty: $('empty'),
      jump: $('jump'),
      people: $('presence-list'),
      count: $('presence-count'),
      form: $('composer'),
      prompt: $('prompt'),
      send: $('send'),
      cancel: $('cancel'),
      error: $('composer-error'),
      announcer: $('announcer'),
    };
    this.modes = new ModePicker($('mode-pick'), $('mode-select'), (mode) => this.#setMode(mode));
    this.#wire();
  }

  /** start shows the room and connects. */
  async start() {
    $('ws-title').textContent = this.ws;
    document.title = this.ws + ' · Tandem';
    this.#setState('connecting');
    this.#loadPresence();
    await this.#reload();
  }

  /** stop closes the stream (leaving the room, or signing out). */
  stop() {
    this.gen++;
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.es = null;
  }

  /** reconnect reopens the stream from the last event (a new name: presence). */
  reconnect() {
    this.stop();
    const gen = this.gen;
    this.#setState('connecting');
    this.#recover(gen);
  }

  // ---- connection ----

  #setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.el.conn.dataset.state = s;
    this.el.connLabel.textContent = STATES[s];
    this.el.conn.title = s === 'live' ? 'Connected and caught up: new events appear as they happen' : STATES[s];
    document.body.dataset.conn = s;
  }

  /** reload starts from nothing: history, then the stream. */
  async #reload() {
    this.stop();
    const gen = this.gen;
    this.t.reset();
    this.nodes.clear();
    this.el.transcript.replaceChildren();
    this.live = false;
    this.#setState('catching-up');
    try {
      await this.#catchUp(gen);
    } catch (e) {
      if (gen === this.gen) this.#failed(e, gen);
      return;
    }
    if (gen !== this.gen) return;
    this.#open(gen);
    this.#loadModes();
  }

  /** catchUp applies every page of events after the last applied one. */
  async #catchUp(gen) {
    for (let pages = 0; pages < 10000; pages++) {
      const q = new URLSearchParams({ limit: '1000' });
      if (this.t.lastId) q.set('cursor', this.t.lastId);
      const page = await api('GET', this.eventsPath + '?' + q);
      if (gen !== this.gen) return;
      const atEnd = !this.live || this.#atEnd();
      const from = this.t.lastId;
      const items = page.items || [];
      for (const ev of items) this.#apply(ev, false);
      if (atEnd) this.#scrollToEnd();
      if (!page.nextCursor || !items.length) break;
      // A page that does not move us on cannot be followed: start over.
      if (this.t.lastId === from) throw new ApiError(410, { detail: 'history does not follow on' });
    }
    this.#updateEmpty();
  }

  #open(gen) {
    if (gen !== this.gen) return;
    this.live = true; // from now on, new messages are announced
    let url = this.eventsPath + '/stream';
    if (this.t.lastId) url += '?cursor=' + encodeURIComponent(this.t.lastId);
    const es = new EventSource(url);
    this.es = es;
    const on = (type, fn) =>
      es.addEventListener(type, (m) => {
        if (gen !== this.gen) return;
        let data;
        try {
          data = JSON.parse(m.data);
        } catch {
          return;
        }
        fn(data);
      });
    es.onopen = () => {
      if (gen !== this.gen) return;
      this.attempt = 0;
      this.#setState('live');
    };
    es.onerror = () => {
      if (gen !== this.gen) return;
      if (es.readyState === EventSource.CLOSED) {
        // EventSource gave up (an HTTP error): catch up and reopen ourselves.
        this.stop();
        this.#scheduleRecover(this.gen);
      } else {
        this.#setState('reconnecting'); // it retries with Last-Event-ID
      }
    };
    for (const type of ['chat.user', 'session.event', 'session.status', 'permission.requested', 'permission.resolved']) on(type, (ev) => this.#live(ev));
    on('presence', (p) => {
      this.presenceSeq++;
      this.#renderPresence(p);
    });
    on('reset', () => {
      // The cursor could not be resumed exactly (trimmed, or Redis lost the
      // stream): start over from the oldest event kept.
      this.#announce('The conversation was reloaded from the server.');
      this.#reload();
    });
  }

  #live(ev) {
    const r = this.#apply(ev, this.live);
    if (r === 'gap') {
      // Never expected; fill the hole from the paging route and reopen.
      console.warn('tandem: gap before event', ev.eventIndex, 'after', this.t.lastIndex);
      this.stop();
      this.#recover(this.gen);
    }
  }

  #scheduleRecover(gen) {
    this.#setState('reconnecting');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.#recover(gen), backoff(this.attempt++));
  }

  async #recover(gen) {
    if (gen !== this.gen) return;
    try {
      await this.#catchUp(gen);
    } catch (e) {
      if (gen === this.gen) this.#failed(e, gen);
      return;
    }
    this.#open(gen);
  }

  #failed(e, gen) {
    if (!(e instanceof ApiError) || e.transient) {
      this.#scheduleRecover(gen);
      return;
    }
    if (e.status === 410) {
      this.#reload(); // the cursor expired: start over
      return;
    }
    this.stop();
    this.#setState('offline');
    if (e.status === 401) this.hooks.onAuth();
    else this.hooks.onProblem(e);
  }

  // ---- events into the DOM ----

  #apply(ev, announce) {
    const atEnd = announce && this.#atEnd();
    const r = this.t.apply(ev);
    if (r.result !== 'applied') return r.result;
    for (const c of r.changes) {
      if (c.op === 'add') {
        const li = c.item.kind === 'permission' ? renderPermission(c.item, (rid, opt) => this.#answer(rid, opt)) : renderItem(c.item);
        this.nodes.set(c.item.key, li);
        const before = c.item.before && this.nodes.get(c.item.before);
        if (before) before.before(li);
        else this.el.transcript.append(li);
      } else {
        const li = this.nodes.get(c.item.key);
        if (li && c.item.kind === 'permission') updatePermission(li, c.item);
        else if (li) updateAgent(li, c.item);
      }
      if (announce) this.#announceChange(c);
    }
    if (ev.type === 'chat.user' && ev.promptId) this.#settlePending(ev.promptId);
    if (ev.type === 'session.status' && ev.status === 'mode_changed') {
      if (this.modes.modes.length) this.modes.setCurrent(this.t.mode);
      else if (this.live) this.#loadModes();
    }
    this.#updateControls();
    if (announce) {
      this.#updateEmpty();
      if (atEnd) this.#scrollToEnd();
      else if (r.changes.length) this.el.jump.hidden = false;
    }
    return r.result;
  }

  #announceChange(c) {
    const it = c.item;
    if (c.op === 'add' && it.kind === 'user') this.#announce(it.userId + ' said: ' + it.text);
    else if (c.op === 'add' && it.kind === 'permission') this.#announce('The agent asks: ' + it.title);
    else if (it.kind === 'permission' && it.status === 'resolved') this.#announce(resolutionText(it));
    else if (c.op === 'add' && it.kind === 'notice') this.#announce(it.text);
    else if (it.kind === 'agent' && it.status !== 'running' && it.endedAt && !it.announced) {
      it.announced = true;
      const text = replyText(it);
      this.#announce('Agent ' + turnSummary(it).toLowerCase() + (text ? ': ' + text.slice(0, 300) : ''));
    }
  }

  #announce(text) {
    const p = document.createElement('p');
    p.textContent = text;
    this.el.announcer.append(p);
    while (this.el.announcer.childElementCount > 5) this.el.announcer.firstElementChild.remove();
  }

  #updateControls() {
    const running = this.t.running;
    this.el.cancel.hidden = !running;
    if (!running) {
      this.el.cancel.disabled = false;
      this.el.cancel.textContent = 'Stop';
    }
  }

  #updateEmpty() {
    this.el.empty.hidden = this.t.items.length > 0 || this.pending.size > 0;
  }

  #atEnd() {
    const s = this.el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 96;
  }

  #scrollToEnd() {
    const s = this.el.scroller;
    s.scrollTop = s.scrollHeight;
    this.el.jump.hidden = true;
  }

  // ---- presence ----

  async #loadPresence() {
    const seq = this.presenceSeq;
    try {
      const p = await api('GET', this.base + '/presence');
      if (seq === this.presenceSeq) this.#renderPresence(p); // no fresher event came meanwhile
    } catch {
      /* the stream brings it */
    }
  }

  #renderPresence(p) {
    const users = (p && Array.isArray(p.users) ? p.users : []).filter((u) => u && typeof u.userId === 'string');
    const lis = users.map((u) => {
      const li = el('li', 'person');
      li.dataset.user = u.userId;
      const n = Number(u.connections) || 1;
      li.title = u.userId + (n > 1 ? ' · ' + n + ' connections' : '');
      li.append(avatar(u.userId), el('span', 'person-name', u.userId));
      if (u.userId === identity.user) {
        li.classList.add('me');
        li.append(el('span', 'you', '(you)'));
      }
      if (n > 1) {
        const c = el('span', 'conns', '×' + n);
        c.setAttribute('aria-label', n + ' connections');
        li.append(c);
      }
      return li;
    });
    this.el.people.replaceChildren(...lis);
    this.el.count.textContent = users.length ? '(' + users.length + ')' : '';
  }

  // ---- sending ----

  #wire() {
    const { form, prompt, cancel, jump, scroller } = this.el;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#submit();
    });
    prompt.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        this.#submit();
      }
    });
    prompt.addEventListener('input', () => this.#grow());
    cancel.addEventListener('click', () => this.#cancel());
    jump.addEventListener('click', () => {
      this.#scrollToEnd();
      prompt.focus();
    });
    scroller.addEventListener('scroll', () => {
      if (this.#atEnd()) this.el.jump.hidden = true;
    });
    window.addEventListener('online', () => {
      if (!this.es && this.state === 'reconnecting') {
        clearTimeout(this.timer);
        this.#recover(this.gen);
      }
    });
  }

  #grow() {
    const p = this.el.prompt;
    p.style.height = 'auto';
    p.style.height = Math.min(p.scrollHeight + 2, 240) + 'px';
  }

  #submit() {
    const text = this.el.prompt.value;
    if (!text.trim()) {
      this.el.prompt.focus();
      return;
    }
    this.el.error.textContent = '';
    this.el.prompt.value = '';
    this.#grow();
    this.#send(text);
  }

  async #send(text) {
    const key = newKey();
    const li = el('li', 'item user mine pending');
    li.dataset.kind = 'pending';
    li.append(avatar(identity.user || 'anonymous'));
    const b = el('div', 'bubble');
    const meta = el('div', 'meta');
    const state = el('span', 'pending-state', 'Sending…');
    meta.append(el('span', 'author', identity.user || 'anonymous'), state);
    b.append(meta, el('p', 'text', text));
    li.append(b);
    this.pending.set(key, li);
    this.el.pending.append(li);
    this.#updateEmpty();
    this.#scrollToEnd();
    for (let attempt = 0; ; attempt++) {
      try {
        const acc = await api('POST', this.base + '/sessions/' + this.sid + '/prompt', {
          body: { text },
          headers: { 'Idempotency-Key': key },
        });
        this.pending.delete(key);
        if (this.t.hasPrompt(acc.id)) {
          li.remove(); // its chat.user came first
        } else {
          this.pending.set(acc.id, li);
          li.dataset.promptId = acc.id;
          state.textContent = 'Waiting for the agent…';
        }
        this.#updateEmpty();
        return;
      } catch (e) {
        // The same Idempotency-Key makes a retry safe: at most one prompt.
        if (e instanceof ApiError && e.transient && attempt < 6) {
          state.textContent = 'Retrying…';
          await sleep(e.retryAfter ? e.retryAfter * 1000 : backoff(attempt));
          continue;
        }
        this.pending.delete(key);
        li.remove();
        this.#updateEmpty();
        this.el.error.textContent = 'Not sent: ' + (e.message || 'error');
        if (!this.el.prompt.value) {
          this.el.prompt.value = text;
          this.#grow();
        }
        if (e.status === 401) this.hooks.onAuth();
        return;
      }
    }
  }

  #settlePending(promptId) {
    const li = this.pending.get(promptId);
    if (!li) return;
    li.remove();
    this.pending.delete(promptId);
  }

  /** answer answers a permission request; someone else answering first is no error. */
  async #answer(requestId, optionId) {
    try {
      await api('POST', this.base + '/sessions/' + this.sid + '/permissions/' + encodeURIComponent(requestId), { body: { optionId } });
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) return; // the card shows who answered
      throw e;
    }
  }

  /** loadModes shows the modes the agent offers in the header. */
  async #loadModes() {
    try {
      const rec = await api('GET', this.base + '/sessions/' + this.sid);
      this.modes.setRecord(rec);
      if (this.t.mode) this.modes.setCurrent(this.t.mode);
    } catch {
      // No session yet (the first prompt creates it), or offline: no picker.
    }
  }

  async #setMode(mode) {
    try {
      await api('PATCH', this.base + '/sessions/' + this.sid, { body: { mode } });
    } catch (e) {
      this.el.error.textContent = 'Could not change the mode: ' + e.message;
      throw e;
    }
  }

  async #cancel() {
    const c = this.el.cancel;
    c.disabled = true;
    c.textContent = 'Stopping…';
    try {
      await api('POST', this.base + '/sessions/' + this.sid + '/cancel');
    } catch (e) {
      this.el.error.textContent = 'Could not stop the turn: ' + e.message;
      c.disabled = false;
      c.textContent = 'Stop';
    }
  }
}

// ---- rendering (textContent only: nothing from the server is parsed as HTML) ----

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function avatar(id, extra) {
  const a = el('span', 'avatar hue-' + hue(id) + (extra ? ' ' + extra : ''), (id[0] || '?').toUpperCase());
  a.setAttribute('aria-hidden', 'true');
  return a;
}

function time(ms) {
  const t = el('time', 'at');
  if (ms) {
    const d = new Date(ms);
    t.dateTime = d.toISOString();
    t.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    t.title = d.toLocaleString();
  }
  return t;
}

function renderItem(item) {
  const li = el('li', 'item ' + item.kind);
  li.dataset.kind = item.kind;
  li.dataset.key = item.key;
  if (item.kind === 'user') {
    if (item.userId === identity.user) li.classList.add('mine');
    const b = el('div', 'bubble');
    const meta = el('div', 'meta');
    meta.append(el('span', 'author', item.userId), time(item.at));
    b.append(meta, el('p', 'text', item.text));
    li.append(avatar(item.userId), b);
    return li;
  }
  if (item.kind === 'notice') {
    li.dataset.level = item.level;
    li.dataset.status = item.status;
    const p = el('p', 'notice-body');
    p.append(el('span', 'notice-text', item.text), time(item.at));
    li.append(p);
    return li;
  }
  // agent
  const b = el('div', 'bubble');
  const meta = el('div', 'meta');
  meta.append(el('span', 'author', 'Agent'));
  if (item.userId) meta.append(el('span', 'for', 'replying to ' + item.userId));
  meta.append(el('span', 'badge'), el('span', 'dur'), time(item.startedAt));
  const parts = el('div', 'parts');
  const typing = el('div', 'typing');
  typing.setAttribute('aria-hidden', 'true');
  typing.append(el('span'), el('span'), el('span'));
  b.append(meta, parts, typing);
  li.append(avatar('✦', 'agent-avatar'), b);
  li._parts = [];
  updateAgent(li, item);
  return li;
}

function updateAgent(li, item) {
  li.dataset.status = item.status;
  li.setAttribute('aria-busy', item.status === 'running' ? 'true' : 'false');
  li.querySelector('.badge').textContent = turnSummary(item);
  li.querySelector('.dur').textContent = duration(item);
  const box = li.querySelector('.parts');
  item.parts.forEach((part, i) => {
    let pe = li._parts[i];
    if (!pe) {
      pe = renderPart(part);
      li._parts[i] = pe;
      box.append(pe);
    } else if (pe._v !== part.v) {
      fillPart(pe, part);
    }
  });
  li.querySelector('.typing').hidden = !(item.status === 'running' && !item.parts.some((p) => p.type === 'text'));
}

function renderPart(part) {
  let pe;
  if (part.type === 'tool') {
    pe = el('div', 'tool');
    const icon = el('span', 'tool-icon');
    icon.setAttribute('aria-hidden', 'true');
    pe.append(icon, el('span', 'tool-title'), el('span', 'tool-kind'), el('span', 'tool-status'));
  } else {
    pe = el('p', part.type === 'thought' ? 'thought' : part.type === 'error' ? 'agent-error' : 'text');
  }
  fillPart(pe, part);
  return pe;
}

function fillPart(pe, part) {
  pe._v = part.v;
  if (part.type === 'tool') {
    pe.dataset.status = part.status;
    pe.querySelector('.tool-title').textContent = part.title || 'Tool call';
    pe.querySelector('.tool-kind').textContent = part.kind && part.kind !== 'other' ? part.kind : '';
    pe.querySelector('.tool-status').textContent = part.status.replace(/_/g, ' ');
  } else {
    pe.textContent = part.text;
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
