// room.js: the room of a workspace. It follows the default session with
// the JavaScript client (client.js, @tandem-dev/client): connect({catchUp})
// delivers the history from the paging route, then follows the stream from
// the last event, and the room renders the transcript, presence and the
// connection state.
//
// The client owns resuming and exactly-once: the EventSource reconnects by
// itself with Last-Event-ID after a dropped connection; when it gives up
// (an HTTP error such as a proxy's 502 while a node is down) the client
// catches up from the paging route after a backoff and opens a new
// EventSource with ?cursor=<last id>; it passes every event on once, in
// eventIndex order. A `reset` (the cursor could not be resumed: trimmed, or
// Redis lost the stream) makes the room start over from the oldest event
// kept.

import { TandemError } from './client.js';
import { tandem, identity, hue } from './identity.js';
import { Transcript, turnSummary, duration, replyText } from './transcript.js';
import { renderPermission, updatePermission, resolutionText } from './permission.js';
import { ModePicker } from './session.js';
import { SessionList, renderSessions } from './sessions.js';
import { renderMarkdown } from './markdown.js';

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
   * @param {string} sid the session shown first
   * @param {{onAuth: () => void, onProblem: (e: TandemError) => void}} hooks
   */
  constructor(ws, sid, hooks) {
    this.ws = ws;
    this.hooks = hooks;
    this.room = tandem.workspace(ws);
    this.session = this.room.session(sid || 'default');
    this.offs = []; // the current session's listeners
    this.list = new SessionList();
    this.list.show(this.session.id);
    this.wsLive = false;
    this.stream = this.room.events();
    this.info = null;
    this.t = new Transcript();
    this.nodes = new Map(); // item key → <li>
    this.pending = new Map(); // inbox id or local key → <li>
    this.live = false; // caught up: announce new messages
    this.presenceSeq = 0;
    this.state = '';
    this.el = {
      conn: $('conn'),
      connLabel: $('conn-label'),
      transcript: $('transcript'),
      pending: $('pending'),
      queue: $('queue'),
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
      sessions: $('session-list'),
      typing: $('typing'),
    };
    this.people = [];
    this.unseen = 0; // news while the page was hidden
    this.lastNews = '';
    this.baseTitle = '';
    this.typingSent = 0;
    this.typingFor = null;
    this.modes = new ModePicker($('mode-pick'), $('mode-select'), (mode) => this.#setMode(mode));
    this.#wire();
    this.#wireSessions();
    this.#follow();
    this.#followWorkspace();
  }

  /** start shows the room and connects. */
  async start() {
    $('ws-title').textContent = this.ws;
    this.#title();
    this.#setState('connecting');
    this.#loadPresence();
    this.#reload();
    this.#loadSessions();
  }

  /** stop closes the streams (leaving the room, or signing out). */
  stop() {
    this.session.close();
    this.stream.close();
  }

  /** reconnect reopens the streams from their last events (a new name: presence). */
  reconnect() {
    this.session.close();
    this.#setState('connecting');
    this.session.connect({ catchUp: true });
    this.stream.connect({ catchUp: true });
  }

  /** sessionId is the session shown. */
  get sessionId() {
    return this.session.id;
  }

  /**
   * show switches the page to session sid: its own transcript, read from
   * its stream (history first), at its own address /w/{ws}/s/{sid} (push:
   * a new history entry; the back button comes here with push false).
   */
  show(sid, { push = true } = {}) {
    if (push) {
      const url = '/w/' + encodeURIComponent(this.ws) + (sid === 'default' ? '' : '/s/' + encodeURIComponent(sid));
      if (location.pathname !== url) history.pushState({ sid }, '', url);
    }
    if (sid === this.session.id) return;
    for (const off of this.offs) off();
    this.offs = [];
    this.session.close();
    this.session = this.room.session(sid);
    this.list.show(sid);
    for (const li of this.pending.values()) li.remove();
    this.pending.clear();
    this.modes.setRecord(null);
    this.el.error.textContent = '';
    this.#follow();
    this.#title();
    this.#renderSessions();
    this.#renderQueue();
    this.#renderTyping();
    this.#reload();
  }

  #title() {
    const sid = this.session.id;
    $('ws-title').textContent = this.ws + (sid === 'default' ? '' : ' / ' + sid);
    this.baseTitle = (sid === 'default' ? '' : sid + ' · ') + this.ws + ' · Tandem';
    document.title = this.unseen ? '(' + this.unseen + ') ' + this.lastNews + ' · ' + this.baseTitle : this.baseTitle;
  }

  /**
   * notify tells someone whose page is hidden (another tab, a locked
   * phone) that a turn ended or the agent asks for permission: the tab's
   * title counts and says it, and a desktop notification shows it when
   * the browser permits them. Seeing the page again clears the title.
   */
  #notify(text, body) {
    if (!document.hidden) return;
    this.unseen++;
    this.lastNews = text;
    this.#title();
    const N = globalThis.Notification;
    if (typeof N === 'function' && N.permission === 'granted') {
      try {
        const n = new N(text, { body: body || this.baseTitle, tag: 'tandem-' + this.ws + '-' + this.session.id });
        n.onclick = () => {
          window.focus();
          n.close();
        };
      } catch {
        /* some browsers allow them only from a service worker */
      }
    }
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

  /** follow wires the session's events into the room (once). */
  #follow() {
    const s = this.session;
    const on = (type, fn) => this.offs.push(s.on(type, fn));
    // Every persisted event, in order, whatever its type: the transcript
    // counts the ones it does not show.
    on('event', (ev) => this.#event(ev));
    on('presence', (p) => {
      this.presenceSeq++;
      this.#renderPresence(p);
    });
    on('reset', () => {
      this.#announce('The conversation was reloaded from the server.');
      this.#reload();
    });
    on('open', () => {
      if (!this.live) {
        // Caught up: from now on, new messages are announced.
        this.live = true;
        this.#updateEmpty();
        this.#scrollToEnd();
        this.#loadModes();
      }
    });
    on('state', (st) => {
      if (st === 'live' || st === 'reconnecting') this.#setState(st);
      else if (st === 'connecting' && !this.live) this.#setState('catching-up');
    });
    on('error', (e) => {
      if (!(e instanceof TandemError)) {
        queueMicrotask(() => {
          throw e; // a bug in a listener: let the page say so
        });
        return;
      }
      if (s.state !== 'closed') return; // the client retries
      if (e.status === 404 && s.id !== 'default') {
        // No such session (ended and gone, or a wrong address): back to the default one.
        this.#announce('No session “' + s.id + '”.');
        this.el.error.textContent = 'No session “' + s.id + '”: showing the default session.';
        this.show('default');
        return;
      }
      this.#setState('offline');
      if (e.status === 401) this.hooks.onAuth();
      else this.hooks.onProblem(e);
    });
  }

  // ---- the workspace stream: sessions and queues ----

  #followWorkspace() {
    const w = this.stream;
    w.on('event', (ev) => {
      if (this.list.apply(ev, this.wsLive)) {
        this.#renderSessions();
        if (ev.sessionId === this.session.id) this.#renderQueue();
      }
      if (ev.type === 'prompt.queued' && ev.sessionId === this.session.id) this.#settlePending(ev.promptId);
    });
    w.on('open', () => {
      this.wsLive = true;
    });
    w.on('presence', (p) => {
      this.presenceSeq++;
      this.#renderPresence(p);
    });
    w.on('reset', () => {
      this.list.reset();
      this.wsLive = false;
      this.#loadSessions();
    });
    w.on('error', (e) => {
      if (!(e instanceof TandemError)) queueMicrotask(() => {
        throw e;
      });
      // Otherwise the session's stream says what is wrong; the list waits.
    });
  }

  /** loadSessions reads the session records, then follows the workspace stream from its start. */
  async #loadSessions() {
    try {
      this.info = await this.room.info({ attempts: 3 });
      let cursor;
      for (let n = 0; n < 100; n++) {
        const page = await this.room.listSessions({ cursor, limit: 200, attempts: 3 });
        for (const r of page.items || []) this.list.addRecord(r);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
    } catch {
      /* the stream says what there is */
    }
    this.#renderSessions();
    this.stream.connect({ after: '', catchUp: true });
  }

  #canDestroy() {
    return identity.role === 'admin';
  }

  #renderSessions() {
    const list = this.list.list();
    if (!list.some((s) => s.id === this.session.id)) list.unshift({ id: this.session.id, agent: '', mode: '', running: false, pendingPermissions: 0, queued: 0, destroyed: false, unread: 0, createdAt: 0 });
    renderSessions(this.el.sessions, list, {
      ws: this.ws,
      current: this.session.id,
      canDestroy: this.#canDestroy(),
      onOpen: (sid) => this.show(sid),
      onDestroy: (sid, btn) => this.#destroy(sid, btn),
    });
  }

  async #destroy(sid, btn) {
    if (!confirm('End session “' + sid + '” for everyone?')) return;
    btn.disabled = true;
    try {
      await this.room.session(sid).destroy();
      this.#announce('Session ' + sid + ' ended.');
    } catch (e) {
      btn.disabled = false;
      this.el.error.textContent = 'Could not end the session: ' + e.message;
    }
  }

  /** renderQueue shows the prompts queued in the session shown, everyone's, with their positions. */
  #renderQueue() {
    const q = this.list.queued(this.session.id);
    const ul = this.el.queue;
    ul.replaceChildren(
      ...q.map((p) => {
        const li = el('li', 'item user queued');
        li.dataset.kind = 'queued';
        li.dataset.promptId = p.promptId;
        li.dataset.user = p.userId;
        const mine = p.userId === identity.user;
        if (mine) li.classList.add('mine');
        li.append(avatar(p.userId));
        const b = el('div', 'bubble');
        const meta = el('div', 'meta');
        const pos = el('span', 'queue-pos', 'Queued · #' + p.position);
        meta.append(el('span', 'author', p.userId), pos);
        b.append(meta, el('p', 'text', p.text));
        if (mine) {
          const w = el('button', 'withdraw', 'Withdraw');
          w.type = 'button';
          w.setAttribute('aria-label', 'Withdraw your queued prompt: ' + p.text.slice(0, 60));
          w.addEventListener('click', () => this.#withdraw(p.promptId, w));
          b.append(w);
        }
        li.append(b);
        return li;
      }),
    );
    this.#updateEmpty();
  }

  async #withdraw(promptId, btn) {
    btn.disabled = true;
    try {
      await this.session.withdraw(promptId);
    } catch (e) {
      btn.disabled = false;
      if (e instanceof TandemError && e.status === 409) {
        this.el.error.textContent = 'Too late: the agent already has that prompt.';
        return;
      }
      if (e instanceof TandemError && e.status === 404) return; // gone already
      this.el.error.textContent = 'Could not withdraw it: ' + e.message;
    }
  }

  #wireSessions() {
    document.addEventListener('visibilitychange', () => {
      if (document.hidden || !this.unseen) return;
      this.unseen = 0;
      this.#title();
    });
    window.addEventListener('popstate', () => {
      const sid = sessionOfPath(location.pathname);
      if (sid) this.show(sid, { push: false });
    });
    const dlg = $('new-session-dialog');
    const form = $('new-session-form');
    const idIn = $('new-session-id');
    const agent = $('new-session-agent');
    const mode = $('new-session-mode');
    const err = $('new-session-error');
    $('new-session').addEventListener('click', async () => {
      err.textContent = '';
      idIn.value = '';
      mode.value = '';
      idIn.removeAttribute('aria-invalid');
      const info = this.info || (await this.room.info({ attempts: 2 }).catch(() => null));
      const agents = info ? [info.agent, ...(info.agents || [])].filter((a, i, all) => a && all.indexOf(a) === i) : [];
      agent.replaceChildren(...agents.map((a) => Object.assign(document.createElement('option'), { value: a, textContent: a })));
      const modes = this.modes.modes;
      $('new-session-modes').replaceChildren(...modes.map((m) => Object.assign(document.createElement('option'), { value: m.id })));
      dlg.showModal();
      idIn.focus();
    });
    $('new-session-cancel').addEventListener('click', () => dlg.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const id = idIn.value.trim();
      if (id && !/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
        err.textContent = 'Name: use 1 to 128 letters, digits or . _ - (no spaces).';
        idIn.setAttribute('aria-invalid', 'true');
        idIn.focus();
        return;
      }
      const body = {};
      if (id) body.id = id;
      if (agent.value) body.agent = agent.value;
      if (mode.value.trim()) body.mode = mode.value.trim();
      const btn = $('new-session-create');
      btn.disabled = true;
      try {
        const s = await this.room.createSession(body);
        this.list.addRecord({ id: s.id, agent: body.agent || '', createdAt: Date.now() });
        dlg.close();
        this.show(s.id);
        this.el.prompt.focus();
      } catch (ex) {
        err.textContent = 'Could not create it: ' + ex.message;
      } finally {
        btn.disabled = false;
      }
    });
  }

  /**
   * reload starts from nothing: the transcript is emptied and the session
   * followed from its oldest event, history first.
   */
  #reload() {
    this.t.reset();
    this.nodes.clear();
    this.el.transcript.replaceChildren();
    this.live = false;
    this.#setState('catching-up');
    this.session.connect({ after: '', catchUp: true });
  }

  #event(ev) {
    const r = this.#apply(ev, this.live);
    if (r === 'gap') {
      // The client delivers in order; the transcript disagreeing is a bug.
      console.warn('tandem: gap before event', ev.eventIndex, 'after', this.t.lastIndex);
      this.#reload();
    }
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
    if (ev.type === 'chat.user' && ev.promptId) {
      this.#settlePending(ev.promptId);
      if (this.list.dispatched(ev.promptId)) this.#renderQueue();
    }
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
    else if (c.op === 'add' && it.kind === 'permission') {
      this.#announce('The agent asks: ' + it.title);
      this.#notify('The agent asks for permission', it.title);
    }
    else if (it.kind === 'permission' && it.status === 'resolved') this.#announce(resolutionText(it));
    else if (c.op === 'add' && it.kind === 'notice') this.#announce(it.text);
    else if (it.kind === 'agent' && it.status !== 'running' && it.endedAt && !it.announced) {
      it.announced = true;
      const text = replyText(it);
      this.#announce('Agent ' + turnSummary(it).toLowerCase() + (text ? ': ' + text.slice(0, 300) : ''));
      this.#notify('Agent ' + turnSummary(it).toLowerCase(), text.slice(0, 200));
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
    this.el.empty.hidden = this.t.items.length > 0 || this.pending.size > 0 || this.el.queue.childElementCount > 0;
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
      const p = await this.room.presence({ attempts: 1 });
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
      // No connection count: every page holds two streams (its session's
      // and the workspace's), so the node's count is not a count of tabs.
      li.title = u.userId;
      li.append(avatar(u.userId), el('span', 'person-name', u.userId));
      if (u.userId === identity.user) {
        li.classList.add('me');
        li.append(el('span', 'you', '(you)'));
      }
      return li;
    });
    this.el.people.replaceChildren(...lis);
    this.people = users;
    this.#renderTyping();
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
    prompt.addEventListener('input', () => {
      this.#grow();
      this.#typing(prompt.value.trim() !== '');
    });
    cancel.addEventListener('click', () => this.#cancel());
    jump.addEventListener('click', () => {
      this.#scrollToEnd();
      prompt.focus();
    });
    scroller.addEventListener('scroll', () => {
      if (this.#atEnd()) this.el.jump.hidden = true;
    });
    // Back online: the client reconnects at once by itself.
  }

  /**
   * typing tells the room that this person is typing (throttled: at most
   * one report every 2 s, each lasting a few seconds on the node) or
   * stopped (the prompt sent or emptied). Presence only: nothing of it is
   * persisted.
   */
  #typing(on) {
    const now = Date.now();
    if (on) {
      if (this.typingSent && now - this.typingSent < 2000 && this.typingFor === this.session) return;
      this.typingSent = now;
      this.typingFor = this.session;
    } else {
      if (!this.typingSent) return;
      this.typingSent = 0;
    }
    (this.typingFor || this.session).typing(on).catch(() => {
      /* presence is best effort */
    });
  }

  /** renderTyping shows, under the composer, who else is typing in the session shown. */
  #renderTyping() {
    const who = this.people.filter((u) => u.typing === this.session.id && u.userId !== identity.user).map((u) => u.userId);
    const t = this.el.typing;
    const text = who.length === 0 ? '' : who.length === 1 ? who[0] + ' is typing…' : who.length === 2 ? who[0] + ' and ' + who[1] + ' are typing…' : who.length + ' people are typing…';
    if (t.textContent !== text) t.textContent = text;
    t.dataset.users = who.join(' ');
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
    this.#typing(false);
    // Desktop notifications when the page is hidden: asked for once, on a
    // person's own gesture (sending), never on load.
    const N = globalThis.Notification;
    if (typeof N === 'function' && N.permission === 'default' && typeof N.requestPermission === 'function') {
      try {
        N.requestPermission().catch(() => {});
      } catch {
        /* an old browser's callback form */
      }
    }
    this.#send(text);
  }

  async #send(text) {
    const key = {}; // this prompt, until the node names it
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
    let acc;
    const session = this.session;
    try {
      // The client retries transient failures with one Idempotency-Key:
      // the prompt is accepted at most once.
      acc = await session.prompt({
        text,
        onRetry: () => {
          state.textContent = 'Retrying…';
        },
      });
    } catch (e) {
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
    this.pending.delete(key);
    if (this.session !== session) {
      li.remove(); // the page shows another session now
    } else if (this.t.hasPrompt(acc.id) || this.list.queue.has(acc.id) || this.list.gone.has(acc.id)) {
      li.remove(); // its chat.user (or its place in the queue) came first
    } else {
      this.pending.set(acc.id, li);
      li.dataset.promptId = acc.id;
      state.textContent = 'Waiting for the agent…';
    }
    this.#updateEmpty();
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
      await this.session.answer(requestId, optionId);
    } catch (e) {
      if (e instanceof TandemError && e.status === 409) return; // the card shows who answered
      throw e;
    }
  }

  /** loadModes shows the modes the agent offers in the header. */
  async #loadModes() {
    try {
      const rec = await this.session.info({ attempts: 1 });
      this.modes.setRecord(rec);
      if (this.t.mode) this.modes.setCurrent(this.t.mode);
    } catch {
      // No session yet (the first prompt creates it), or offline: no picker.
    }
  }

  async #setMode(mode) {
    try {
      await this.session.configure({ mode });
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
      await this.session.cancel();
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

/** sessionOfPath is the session an address shows: /w/{ws} the default one, /w/{ws}/s/{sid} sid ('' for no room address). */
export function sessionOfPath(path) {
  const m = /^\/w\/[^/]+(?:\/s\/([^/]+))?\/?$/.exec(path);
  if (!m) return '';
  if (!m[1]) return 'default';
  try {
    const sid = decodeURIComponent(m[1]);
    return /^[A-Za-z0-9._-]{1,128}$/.test(sid) ? sid : '';
  } catch {
    return '';
  }
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
  } else if (part.type === 'text') {
    pe = el('div', 'text md'); // Markdown, sanitised (markdown.js)
  } else {
    pe = el('p', part.type === 'thought' ? 'thought' : 'agent-error');
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
    if (part.diff && !pe.querySelector('.tool-diff')) pe.append(renderDiff(part.diff));
  } else if (part.type === 'text') {
    pe.replaceChildren(renderMarkdown(part.text));
  } else {
    pe.textContent = part.text;
  }
}

/** renderDiff shows a tool call's diff (ACP content of type diff): its path, the old lines and the new. */
function renderDiff(d) {
  const box = el('div', 'tool-diff');
  if (d.path) box.append(el('p', 'tool-diff-path', d.path));
  const pre = el('pre', 'perm-diff');
  for (const line of d.oldText ? d.oldText.split('\n') : []) if (line) pre.append(el('span', 'del', '- ' + line + '\n'));
  for (const line of d.newText ? d.newText.split('\n') : []) if (line) pre.append(el('span', 'add', '+ ' + line + '\n'));
  box.append(pre);
  return box;
}
