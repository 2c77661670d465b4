// sessions.js: the sessions of a room side by side, and the prompts queued
// in them, folded from the workspace stream (room.events() of the client:
// session.created, session.destroyed, session.status summaries,
// prompt.queued, prompt.dispatched, prompt.withdrawn) and the session
// records (GET …/sessions). The view model has no DOM and no I/O, so it is
// tested with `node --test` (web/test/); the rendering uses textContent
// only.

function str(v) {
  return typeof v === 'string' ? v : '';
}

/**
 * A session of the list:
 * {id, agent, mode, running, pendingPermissions, queued, destroyed, unread, createdAt}
 * A queued prompt: {promptId, sessionId, userId, text, queuedAt, order}
 */
export class SessionList {
  constructor() {
    this.reset();
    /** the session the page shows: its news is read, not unread */
    this.current = '';
  }

  /** reset forgets what the workspace stream said (a `reset`: it is read again from its start). */
  reset() {
    /** @type {Map<string, any>} */
    this.sessions = new Map();
    /** @type {Map<string, any>} queued prompts by promptId, not yet dispatched nor withdrawn */
    this.queue = new Map();
    /** promptIds that left the queue (dispatched, withdrawn, or seen in the transcript) */
    this.gone = new Set();
    this.seq = 0;
  }

  #entry(id) {
    let s = this.sessions.get(id);
    if (!s) {
      s = { id, agent: '', mode: '', running: false, pendingPermissions: 0, queued: 0, destroyed: false, unread: 0, createdAt: 0 };
      this.sessions.set(id, s);
    }
    return s;
  }

  /** addRecord takes a SessionRecord (GET …/sessions, POST …/sessions) in. */
  addRecord(rec) {
    if (!rec || typeof rec !== 'object' || !str(rec.id)) return;
    const s = this.#entry(rec.id);
    if (str(rec.agent)) s.agent = rec.agent;
    if (rec.createdAt) s.createdAt = Number(rec.createdAt) || s.createdAt;
    if (rec.destroyedAt) s.destroyed = true;
    const m = rec.modes && typeof rec.modes === 'object' ? str(rec.modes.currentModeId) : '';
    if (m && !s.mode) s.mode = m;
  }

  /**
   * apply folds one event of the workspace stream in; live: it happened
   * now (not history), so it counts as unread in a session not shown.
   * It returns whether the list or the queue changed.
   */
  apply(ev, live) {
    if (!ev || typeof ev !== 'object') return false;
    const sid = str(ev.sessionId);
    if (!sid) return false;
    switch (ev.type) {
      case 'session.created': {
        const s = this.#entry(sid);
        if (str(ev.agent)) s.agent = ev.agent;
        s.createdAt = Number(ev.createdAt) || s.createdAt;
        return true;
      }
      case 'session.destroyed': {
        this.#entry(sid).destroyed = true;
        for (const [id, q] of this.queue) if (q.sessionId === sid) this.#leave(id);
        return true;
      }
      case 'session.status': {
        const s = this.#entry(sid);
        const was = s.running;
        if (str(ev.agent)) s.agent = ev.agent;
        s.running = !!ev.running;
        s.pendingPermissions = Number(ev.pendingPermissions) || 0;
        if (typeof ev.mode === 'string') s.mode = ev.mode;
        s.queued = Number(ev.queued) || 0;
        if (ev.destroyed) s.destroyed = true;
        if (live && was && !s.running && sid !== this.current) s.unread++; // a turn ended
        return true;
      }
      case 'prompt.queued': {
        const id = str(ev.promptId);
        if (!id || this.gone.has(id)) return false;
        this.#entry(sid);
        this.queue.set(id, {
          promptId: id,
          sessionId: sid,
          userId: str(ev.userId) || 'anonymous',
          text: str(ev.text),
          queuedAt: Number(ev.queuedAt) || Number(ev.createdAt) || 0,
          order: ++this.seq,
        });
        return true;
      }
      case 'prompt.dispatched': {
        const id = str(ev.promptId);
        const s = this.#entry(sid);
        if (live && sid !== this.current) s.unread++; // a new message
        return this.#leave(id) || (live && sid !== this.current);
      }
      case 'prompt.withdrawn':
        return this.#leave(str(ev.promptId));
      default:
        return false;
    }
  }

  #leave(promptId) {
    if (!promptId) return false;
    this.gone.add(promptId);
    return this.queue.delete(promptId);
  }

  /** dispatched: the prompt's chat.user is in the transcript (it left the queue, whatever the workspace stream says yet). */
  dispatched(promptId) {
    return this.#leave(promptId);
  }

  /** queued is a session's queue, in order, each with its position (1, 2…). */
  queued(sessionId) {
    return [...this.queue.values()]
      .filter((q) => q.sessionId === sessionId)
      .sort((a, b) => a.order - b.order)
      .map((q, i) => ({ ...q, position: i + 1 }));
  }

  /** list is the sessions to show: not destroyed (the one shown always), oldest first. */
  list() {
    return [...this.sessions.values()]
      .filter((s) => !s.destroyed || s.id === this.current)
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** show makes sid the session shown: its news is read. */
  show(sid) {
    this.current = sid;
    const s = this.sessions.get(sid);
    if (s) s.unread = 0;
  }
}

/** sessionState says how a session is, for its list entry. */
export function sessionState(s) {
  if (s.destroyed) return 'ended';
  if (s.pendingPermissions) return 'waiting for permission';
  return s.running ? 'running' : 'idle';
}

// ---- rendering ----

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * renderSessions fills the list: a link per session (its address is
 * /w/{ws}/s/{sid}), with its agent, mode, state and counts, and a button
 * to end it when canDestroy.
 */
export function renderSessions(ul, list, { ws, current, canDestroy, onOpen, onDestroy }) {
  const lis = list.map((s) => {
    const li = el('li', 'session');
    li.dataset.session = s.id;
    li.dataset.state = sessionState(s);
    const a = el('a', 'session-link');
    a.href = '/w/' + encodeURIComponent(ws) + '/s/' + encodeURIComponent(s.id);
    if (s.id === current) a.setAttribute('aria-current', 'page');
    const dot = el('span', 'session-dot');
    dot.setAttribute('aria-hidden', 'true');
    const name = el('span', 'session-name', s.id);
    const meta = el('span', 'session-meta', [s.agent, s.mode].filter(Boolean).join(' · '));
    const state = el('span', 'session-state', sessionState(s));
    a.append(dot, name, meta, state);
    if (s.pendingPermissions) {
      const p = el('span', 'session-perms', '!' + s.pendingPermissions);
      p.title = s.pendingPermissions + ' permission request' + (s.pendingPermissions > 1 ? 's' : '') + ' waiting';
      p.setAttribute('aria-label', p.title);
      a.append(p);
    }
    if (s.unread) {
      const u = el('span', 'session-unread', String(s.unread));
      u.setAttribute('aria-label', s.unread + ' unread');
      a.append(u);
    }
    a.addEventListener('click', (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return; // a new tab: the browser's
      e.preventDefault();
      onOpen(s.id);
    });
    li.append(a);
    if (canDestroy && !s.destroyed) {
      const b = el('button', 'session-destroy', '×');
      b.type = 'button';
      b.title = 'End session ' + s.id;
      b.setAttribute('aria-label', 'End session ' + s.id);
      b.addEventListener('click', () => onDestroy(s.id, b));
      li.append(b);
    }
    return li;
  });
  ul.replaceChildren(...lis);
}
