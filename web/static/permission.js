// permission.js: the agent's permission requests in the room. The view
// model part (permissionItem, resolvePermission, configNotice) has no DOM
// and is tested with `node --test` (web/test/); the rendering part builds
// the card with textContent only: nothing from the server is parsed as
// HTML.

/**
 * A permission item of the transcript:
 * {kind:'permission', key, before (the key of the agent item it is shown before, if any), requestId, title, toolKind, command, path, diff:{path, oldText, newText}|null,
 *  options:[{optionId, name, kind}], status:'pending'|'resolved', resolution:{optionId, outcome, by, at, reason}|null,
 *  requestedAt, expiresAt, v}
 */

function str(v) {
  return typeof v === 'string' ? v : '';
}

/** permissionItem makes the item of a permission.requested event. */
export function permissionItem(ev) {
  const tc = ev.toolCall && typeof ev.toolCall === 'object' ? ev.toolCall : {};
  const raw = tc.rawInput && typeof tc.rawInput === 'object' ? tc.rawInput : {};
  let diff = null;
  if (Array.isArray(tc.content)) {
    const d = tc.content.find((c) => c && c.type === 'diff');
    if (d) diff = { path: str(d.path), oldText: str(d.oldText), newText: str(d.newText) };
  }
  let command = str(raw.command);
  if (!command && Array.isArray(raw.command)) command = raw.command.filter((x) => typeof x === 'string').join(' ');
  const loc = Array.isArray(tc.locations) && tc.locations[0] && typeof tc.locations[0] === 'object' ? str(tc.locations[0].path) : '';
  const options = Array.isArray(ev.options)
    ? ev.options
        .filter((o) => o && typeof o === 'object' && typeof o.optionId === 'string' && o.optionId)
        .map((o) => ({ optionId: o.optionId, name: str(o.name) || o.optionId, kind: str(o.kind) }))
    : [];
  return {
    kind: 'permission',
    key: 'p' + ev.eventIndex,
    requestId: str(ev.requestId),
    title: str(tc.title) || 'The agent asks for permission',
    toolKind: str(tc.kind),
    command,
    path: str(raw.path) || str(raw.file_path) || (diff && diff.path) || loc,
    diff,
    options,
    status: 'pending',
    resolution: null,
    requestedAt: Number(ev.requestedAt) || ev.createdAt || 0,
    expiresAt: Number(ev.expiresAt) || 0,
    v: 0,
  };
}

/** resolvePermission takes a permission.resolved event into its item. */
export function resolvePermission(item, ev) {
  item.status = 'resolved';
  item.resolution = {
    optionId: str(ev.optionId),
    outcome: str(ev.outcome),
    by: str(ev.by),
    at: Number(ev.at) || ev.createdAt || 0,
    reason: str(ev.reason),
  };
  item.v++;
}

/** resolutionText says who chose what, for the card and announcements. */
export function resolutionText(item) {
  const r = item.resolution;
  if (!r) return '';
  let what;
  if (r.outcome === 'selected') {
    const o = item.options.find((x) => x.optionId === r.optionId);
    what = 'chose “' + (o ? o.name : r.optionId) + '”';
  } else {
    what = 'cancelled the request';
  }
  let who = r.by;
  if (r.by === 'policy') who = "The workspace's policy";
  else if (r.by === 'timeout') who = 'Nobody answered in time: Tandem';
  else if (r.by === 'tandem') who = 'Tandem';
  return who + ' ' + what + (r.reason ? ' (' + r.reason + ')' : '');
}

/** configNotice is the text and level of a session.status about the agent's configuration, or null. */
export function configNotice(status, d) {
  const by = str(d.by) || 'someone';
  const again = d.reason ? ' (' + str(d.reason) + ')' : '';
  switch (status) {
    case 'mode_changed':
      return { level: 'info', text: by + ' set the mode to ' + str(d.mode) + again };
    case 'model_changed':
      return { level: 'info', text: by + ' set the model to ' + str(d.model) + again };
    case 'config_changed':
      return { level: 'info', text: by + ' set ' + str(d.configId) + ' to ' + str(d.value) + again };
    case 'config_failed': {
      const e = d.error && typeof d.error === 'object' ? str(d.error.message) : '';
      return { level: 'warn', text: 'The agent refused a change by ' + by + (e ? ': ' + e : '') };
    }
    case 'agent_error':
      return { level: 'error', text: 'The agent could not start' + (d.message ? ': ' + str(d.message) : '') };
  }
  return null;
}

// ---- rendering ----

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * renderPermission builds the card of a permission item; answer(requestId,
 * optionId) is called when a button is pressed and returns a promise.
 */
export function renderPermission(item, answer) {
  const li = el('li', 'item permission');
  li.dataset.kind = 'permission';
  li.dataset.key = item.key;
  li.dataset.requestId = item.requestId;
  const card = el('div', 'perm-card');
  card.setAttribute('role', 'group');
  card.setAttribute('aria-label', 'Permission request: ' + item.title);
  const head = el('div', 'perm-head');
  head.append(el('span', 'perm-label', 'The agent asks'), el('span', 'perm-title', item.title));
  if (item.toolKind) head.append(el('span', 'perm-kind', item.toolKind));
  card.append(head);
  if (item.command) card.append(el('pre', 'perm-command', item.command));
  if (item.path) card.append(el('p', 'perm-path', item.path));
  if (item.diff) {
    const pre = el('pre', 'perm-diff');
    for (const line of item.diff.oldText ? item.diff.oldText.split('\n') : []) if (line) pre.append(el('span', 'del', '- ' + line + '\n'));
    for (const line of item.diff.newText ? item.diff.newText.split('\n') : []) if (line) pre.append(el('span', 'add', '+ ' + line + '\n'));
    card.append(pre);
  }
  const buttons = el('div', 'perm-options');
  for (const o of item.options) {
    const b = el('button', 'perm-option', o.name);
    b.type = 'button';
    b.dataset.optionId = o.optionId;
    b.dataset.optionKind = o.kind;
    b.addEventListener('click', async () => {
      for (const x of buttons.querySelectorAll('button')) x.disabled = true;
      err.textContent = '';
      try {
        await answer(item.requestId, o.optionId);
      } catch (e) {
        if (item.status === 'pending') {
          for (const x of buttons.querySelectorAll('button')) x.disabled = false;
          err.textContent = 'Could not answer: ' + e.message;
        }
      }
    });
    buttons.append(b);
  }
  const outcome = el('p', 'perm-outcome');
  outcome.setAttribute('role', 'status');
  const err = el('p', 'error perm-error');
  err.setAttribute('role', 'alert');
  card.append(buttons, outcome, err);
  li.append(card);
  updatePermission(li, item);
  return li;
}

/** updatePermission shows an item's state on its card. */
export function updatePermission(li, item) {
  li.dataset.status = item.status;
  const outcome = li.querySelector('.perm-outcome');
  outcome.textContent = item.status === 'resolved' ? resolutionText(item) : '';
  for (const b of li.querySelectorAll('.perm-option')) {
    b.disabled = item.status !== 'pending';
    b.classList.toggle('chosen', !!item.resolution && item.resolution.optionId === b.dataset.optionId);
  }
  if (item.status === 'resolved') li.querySelector('.perm-error').textContent = '';
}
