// session.js: the session header's mode picker. The modes come from the
// SessionRecord (what the agent's session/new offered); picking one asks
// the node (PATCH …/sessions/{sid} {"mode"}), and the current one follows
// the room's mode_changed events, whoever changed it. Option labels are set
// with textContent only.

export class ModePicker {
  /**
   * @param {HTMLElement} wrap shown when the agent offers modes
   * @param {HTMLSelectElement} select
   * @param {(mode: string) => Promise<void>} pick
   */
  constructor(wrap, select, pick) {
    this.wrap = wrap;
    this.select = select;
    this.current = '';
    this.modes = [];
    select.addEventListener('change', async () => {
      const want = select.value;
      if (!want || want === this.current) return;
      select.disabled = true;
      try {
        await pick(want);
      } catch {
        select.value = this.current; // refused: back to what it is
      } finally {
        select.disabled = false;
      }
    });
  }

  /** setRecord takes the modes of a SessionRecord. */
  setRecord(rec) {
    const m = rec && rec.modes && typeof rec.modes === 'object' ? rec.modes : null;
    const list = m && Array.isArray(m.availableModes) ? m.availableModes.filter((x) => x && typeof x.id === 'string' && x.id) : [];
    this.modes = list;
    this.select.replaceChildren();
    for (const x of list) {
      const o = document.createElement('option');
      o.value = x.id;
      o.textContent = typeof x.name === 'string' && x.name ? x.name : x.id;
      if (typeof x.description === 'string') o.title = x.description;
      this.select.append(o);
    }
    this.wrap.hidden = list.length === 0;
    if (m && typeof m.currentModeId === 'string') this.setCurrent(m.currentModeId);
  }

  /** setCurrent shows the session's current mode. */
  setCurrent(mode) {
    if (!mode) return;
    this.current = mode;
    this.select.value = mode;
    this.wrap.dataset.mode = mode;
  }
}
