// transcript.js folds a session's events into the view model of the room:
// an ordered list of items (people's prompts, the agent's replies with
// their text and tool calls, notices) that the page renders. It has no DOM
// and no I/O, so it is tested with `node --test` (web/test/).
//
// Events are applied in eventIndex order, each exactly once: apply()
// refuses one it has already applied (a duplicate) and one that would leave
// a hole (a gap, which the page fills from the paging route first).

import { permissionItem, resolvePermission, configNotice } from './permission.js';

/** @typedef {{type:'text'|'thought', text:string, v:number} | {type:'tool', id:string, title:string, kind:string, status:string, diff?:{path:string, oldText:string, newText:string}, v:number} | {type:'error', text:string, v:number}} Part */

/**
 * An item of the transcript.
 * - user:   {kind:'user', key, eventIndex, userId, text, promptId, at}
 * - agent:  {kind:'agent', key, promptId, userId, status:'running'|'done'|'cancelled'|'error',
 *            stopReason, reason, startedAt, endedAt, parts: Part[], v}
 * - notice: {kind:'notice', key, status, level:'info'|'ok'|'warn'|'error', text, at}
 * - permission: the agent's permission request (see permission.js)
 */

export class Transcript {
  constructor() {
    this.reset();
  }

  /** reset forgets everything (a `reset` event: the page reloads history). */
  reset() {
    /** @type {any[]} */
    this.items = [];
    this.lastIndex = 0;
    this.lastId = '';
    /** turns by promptId */
    this.turns = new Map();
    /** the agent item receiving output now (a running turn, or loose output) */
    this.current = null;
    /** tool parts by toolCallId: {item, part} */
    this.tools = new Map();
    /** promptIds whose chat.user has been seen */
    this.prompts = new Set();
    /** permission items by requestId */
    this.perms = new Map();
    /** the session's mode as the last mode_changed said ('' before any) */
    this.mode = '';
  }

  /** running is the agent item of the turn in progress, if any. */
  get running() {
    for (let i = this.items.length - 1; i >= 0; i--) {
      const it = this.items[i];
      if (it.kind === 'agent' && it.status === 'running') return it;
    }
    return null;
  }

  /**
   * apply folds one persisted event in. It returns what happened:
   * {result:'applied', changes:[{op:'add'|'update', item}]} or
   * {result:'duplicate'} (eventIndex not after the last applied) or
   * {result:'gap'} (events are missing before it; nothing changed) or
   * {result:'invalid'} (not an event).
   */
  apply(ev) {
    if (!ev || typeof ev !== 'object' || !Number.isInteger(ev.eventIndex) || typeof ev.id !== 'string') {
      return { result: 'invalid', changes: [] };
    }
    if (ev.eventIndex <= this.lastIndex) return { result: 'duplicate', changes: [] };
    // The first event may be any index (history can be trimmed); after it,
    // indices follow one another without holes.
    if (this.lastIndex > 0 && ev.eventIndex !== this.lastIndex + 1) return { result: 'gap', changes: [] };
    this.lastIndex = ev.eventIndex;
    this.lastId = ev.id;
    const changes = [];
    switch (ev.type) {
      case 'chat.user':
        this.#user(ev, changes);
        break;
      case 'session.status':
        this.#status(ev, changes);
        break;
      case 'session.event':
        this.#sessionEvent(ev, changes);
        break;
      case 'permission.requested':
      case 'permission.resolved':
        this.#permission(ev, changes);
        break;
      default:
        break; // a type this client does not know: skipped, but counted
    }
    return { result: 'applied', changes };
  }

  /** hasPrompt reports whether the chat.user of an inbox id has arrived. */
  hasPrompt(promptId) {
    return this.prompts.has(promptId);
  }

  #add(item, changes) {
    // Loose agent output ends at the next prompt or notice.
    if (item.kind !== 'agent' && this.current && this.current.status !== 'running') this.current = null;
    this.items.push(item);
    changes.push({ op: 'add', item });
    return item;
  }

  #touch(item, changes) {
    item.v = (item.v || 0) + 1;
    if (!changes.some((c) => c.item === item)) changes.push({ op: 'update', item });
  }

  #user(ev, changes) {
    if (ev.promptId) this.prompts.add(ev.promptId);
    this.#add(
      {
        kind: 'user',
        key: 'u' + ev.eventIndex,
        eventIndex: ev.eventIndex,
        userId: str(ev.userId) || 'anonymous',
        text: str(ev.text),
        promptId: str(ev.promptId),
        at: ev.createdAt || 0,
      },
      changes,
    );
  }

  #status(ev, changes) {
    const d = ev.detail && typeof ev.detail === 'object' ? ev.detail : {};
    switch (ev.status) {
      case 'turn_started': {
        const item = this.#add(
          {
            kind: 'agent',
            key: 'a' + ev.eventIndex,
            promptId: str(d.promptId),
            userId: str(d.userId),
            status: 'running',
            stopReason: '',
            reason: '',
            startedAt: ev.createdAt || 0,
            endedAt: 0,
            parts: [],
            v: 0,
          },
          changes,
        );
        if (item.promptId) this.turns.set(item.promptId, item);
        this.current = item;
        return;
      }
      case 'turn_ended': {
        const item = (d.promptId && this.turns.get(d.promptId)) || (this.current && this.current.status === 'running' ? this.current : null);
        const stop = str(d.stopReason);
        if (!item) {
          // Its start was trimmed away: say that a turn ended.
          this.#notice(ev, 'info', 'A turn ended' + (stop ? ' (' + stop + ')' : ''), changes);
          return;
        }
        item.stopReason = stop;
        item.reason = str(d.reason);
        item.endedAt = ev.createdAt || 0;
        item.status = stop === 'cancelled' ? 'cancelled' : stop === 'error' ? 'error' : 'done';
        this.#touch(item, changes);
        if (this.current === item) this.current = null;
        return;
      }
      case 'owner_changed':
        this.#notice(ev, 'info', 'Node ' + (str(d.node) || '?') + ' now runs the session', changes);
        return;
      case 'sandbox_unhealthy': {
        let t = 'The sandbox is not responding';
        if (d.failures) t += ' (' + d.failures + ' failed health checks)';
        this.#notice(ev, 'warn', t + '; restarting it', changes);
        return;
      }
      case 'sandbox_recovered':
        this.#notice(ev, 'ok', 'The sandbox is healthy again', changes);
        return;
      case 'session_restored':
        this.#notice(ev, 'warn', "The agent's connection was lost; the session was restored with its history", changes);
        return;
      case 'session_destroyed':
        this.#notice(ev, 'info', 'The session was ended', changes);
        return;
      case 'mode_changed':
      case 'model_changed':
      case 'config_changed':
      case 'config_failed':
      case 'agent_error': {
        if (ev.status === 'mode_changed' && str(d.mode)) this.mode = str(d.mode);
        const n = configNotice(ev.status, d);
        this.#notice(ev, n.level, n.text, changes);
        return;
      }
      default:
        this.#notice(ev, 'info', 'Session status: ' + (str(ev.status) || 'unknown'), changes);
    }
  }

  #permission(ev, changes) {
    if (ev.type === 'permission.requested') {
      const item = permissionItem(ev);
      if (item.requestId) this.perms.set(item.requestId, item);
      // Asked before the turn said anything: shown before its reply.
      if (this.current && this.current.status === 'running' && this.current.parts.length === 0) item.before = this.current.key;
      this.#add(item, changes);
      return;
    }
    const item = this.perms.get(ev.requestId);
    if (!item) {
      // Its request was trimmed away: say how it was answered.
      this.#notice(ev, 'info', 'A permission request was answered by ' + (str(ev.by) || 'someone'), changes);
      return;
    }
    resolvePermission(item, ev);
    if (!changes.some((c) => c.item === item)) changes.push({ op: 'update', item });
  }

  #notice(ev, level, text, changes) {
    this.#add({ kind: 'notice', key: 'n' + ev.eventIndex, status: str(ev.status), level, text, at: ev.createdAt || 0 }, changes);
  }

  // #target is the agent item output goes to: the running turn, else a
  // loose reply (output outside any turn, e.g. after its start was trimmed).
  #target(ev, changes) {
    if (this.current) return this.current;
    const item = this.#add(
      {
        kind: 'agent',
        key: 'a' + ev.eventIndex,
        promptId: '',
        userId: '',
        status: 'done',
        stopReason: '',
        reason: '',
        startedAt: ev.createdAt || 0,
        endedAt: 0,
        parts: [],
        v: 0,
      },
      changes,
    );
    this.current = item;
    return item;
  }

  #sessionEvent(ev, changes) {
    // Only what the agent says is shown; the client's own envelopes
    // (initialize, session/new, session/prompt, session/cancel) are not chat.
    if (ev.sender !== 'agent') return;
    const p = ev.payload;
    if (!p || typeof p !== 'object') return;
    // The agent's answer to Tandem's own dispatch marker (an extension
    // request sent before each prompt) is not conversation.
    if (typeof p.id === 'string' && p.id.startsWith('tandem.')) return;
    if (p.error && typeof p.error === 'object') {
      const item = this.#target(ev, changes);
      item.parts.push({ type: 'error', text: 'Agent error: ' + (str(p.error.message) || 'code ' + p.error.code), v: 0 });
      this.#touch(item, changes);
      return;
    }
    if (p.method !== 'session/update') return;
    const u = p.params && p.params.update;
    if (!u || typeof u !== 'object') return;
    switch (u.sessionUpdate) {
      case 'agent_message_chunk':
      case 'agent_thought_chunk': {
        const text = contentText(u.content);
        if (!text) return;
        const type = u.sessionUpdate === 'agent_message_chunk' ? 'text' : 'thought';
        const item = this.#target(ev, changes);
        const last = item.parts[item.parts.length - 1];
        if (last && last.type === type) {
          last.text += text;
          last.v++;
        } else {
          item.parts.push({ type, text, v: 0 });
        }
        this.#touch(item, changes);
        return;
      }
      case 'tool_call':
      case 'tool_call_update': {
        const id = str(u.toolCallId);
        let t = id && this.tools.get(id);
        if (!t) {
          const item = this.#target(ev, changes);
          const part = { type: 'tool', id, title: '', kind: '', status: 'pending', v: 0 };
          item.parts.push(part);
          t = { item, part };
          if (id) this.tools.set(id, t);
        }
        if (typeof u.title === 'string' && u.title) t.part.title = u.title;
        if (typeof u.kind === 'string' && u.kind) t.part.kind = u.kind;
        if (typeof u.status === 'string' && u.status) t.part.status = u.status;
        if (Array.isArray(u.content)) {
          const d = u.content.find((c) => c && typeof c === 'object' && c.type === 'diff');
          if (d) t.part.diff = { path: str(d.path), oldText: str(d.oldText), newText: str(d.newText) };
        }
        t.part.v++;
        this.#touch(t.item, changes);
        return;
      }
      default:
        return; // plans, modes, commands, replayed user chunks: not shown
    }
  }
}

function str(v) {
  return typeof v === 'string' ? v : '';
}

// contentText is the text of an ACP content block (or of a list of them).
function contentText(c) {
  if (!c) return '';
  if (Array.isArray(c)) return c.map(contentText).join('');
  if (c.type === 'text' && typeof c.text === 'string') return c.text;
  return '';
}

/** replyText is the visible text of an agent item (its text parts). */
export function replyText(item) {
  return item.parts
    .filter((p) => p.type === 'text')
    .map((p) => p.text)
    .join('');
}

/** turnSummary describes how an agent item's turn went, for its badge. */
export function turnSummary(item) {
  switch (item.status) {
    case 'running':
      return 'Working…';
    case 'cancelled':
      return 'Cancelled';
    case 'error':
      return item.reason ? 'Failed: ' + item.reason : 'Failed';
    default:
      if (!item.promptId) return '';
      if (item.stopReason && item.stopReason !== 'end_turn') return 'Stopped (' + item.stopReason.replace(/_/g, ' ') + ')';
      return 'Done';
  }
}

/** duration formats the time a turn took ("4.2 s", "1 min 5 s"). */
export function duration(item) {
  if (!item.startedAt || !item.endedAt || item.endedAt < item.startedAt) return '';
  const ms = item.endedAt - item.startedAt;
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  const s = Math.round(ms / 1000);
  return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
}

/** validWorkspace reports whether s is a workspace id the API accepts. */
export function validWorkspace(s) {
  return typeof s === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(s);
}

/** validUser reports whether s is a user id the API accepts. */
export function validUser(s) {
  return typeof s === 'string' && /^[A-Za-z0-9._@+-]{1,128}$/.test(s);
}
