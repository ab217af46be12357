// Audit log (audit.read): the hash-chained records of the audit plugin,
// filtered by actor, action (exact, or a prefix ending in *), target and
// a time window, newest first with "Load more"; and "Verify chain",
// which walks the whole chain on the server (GET /api/v1/audit/verify).
import { h, clear, field, fmtTime, errorText, showErrors } from '/js/dom.js';
import { qs } from '/js/api.js';

// datetime-local -> RFC 3339 UTC ('' stays '').
function toUtc(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? v : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function actor(r) {
  const name = r.actor_name ?? (r.actor_type === 'anonymous' ? 'anonymous' : '');
  const bits = [r.actor_type];
  if (r.actor_id !== null && r.actor_id !== undefined) bits.push(`#${r.actor_id}`);
  if (r.donor_id) bits.push(`donor ${r.donor_id}`);
  return [h('div', null, name || '—'), h('small', { class: 'hint' }, bits.join(' '))];
}

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  let cursor = null;
  let filter = {};
  let seq = 0;

  const c = {
    actor_id: h('input', { name: 'actor_id', inputmode: 'numeric', autocomplete: 'off' }),
    action: h('input', { name: 'action', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' }),
    target: h('input', { name: 'target', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' }),
    from: h('input', { name: 'from', type: 'datetime-local', step: '1' }),
    to: h('input', { name: 'to', type: 'datetime-local', step: '1' }),
  };
  const formAlert = h('p', { class: 'error', role: 'alert' });
  const apply = h('button', { type: 'submit', class: 'primary' }, 'Apply');
  const form = h('form', { class: 'filters', 'aria-label': 'Filter the audit log', on: { submit: (e) => {
    e.preventDefault();
    filter = { actor_id: c.actor_id.value.trim(), action: c.action.value.trim(), target: c.target.value.trim(),
      from: toUtc(c.from.value), to: toUtc(c.to.value) };
    load(true);
  } } },
  field('Actor ID', c.actor_id), field('Action', c.action, 'e.g. users.created or auth.*'), field('Target', c.target, 'e.g. user:42'),
  field('From', c.from), field('To', c.to),
  h('div', { class: 'buttons' }, apply, h('button', { type: 'button', on: { click: () => {
    form.reset();
    filter = {};
    load(true);
  } } }, 'Clear')));

  const verifyBtn = h('button', { type: 'button', on: { click: verify } }, 'Verify chain');
  const verifyLine = h('p', { class: 'verify-line', 'data-testid': 'audit-verify', role: 'status', 'aria-live': 'polite' });
  const status = h('p', { class: 'status-line error', role: 'alert' });
  const tbody = h('tbody');
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'more-btn', hidden: true, on: { click: () => load(false) } }, 'Load more');

  root.append(h('div', { class: 'admin audit' },
    h('div', { class: 'admin-head' }, h('h1', null, 'Audit log'), h('div', { class: 'actions' }, verifyBtn)),
    verifyLine,
    form, formAlert, status, count,
    h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Audit records' },
      h('thead', null, h('tr', null, ['ID', 'Time', 'Actor', 'Action', 'Target', 'IP', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    more));

  function row(r) {
    const details = r.details === null || r.details === undefined ? '' : JSON.stringify(r.details);
    return h('tr', { 'data-audit-id': r.id, 'data-action': r.action },
      h('th', { scope: 'row', class: 'num' }, String(r.id)),
      h('td', { class: 'nowrap' }, h('time', { datetime: r.time, title: r.time }, fmtTime(r.time))),
      h('td', null, actor(r)),
      h('td', null, h('code', { 'data-testid': 'audit-action' }, r.action)),
      h('td', null, r.target ? h('code', null, r.target) : '—'),
      h('td', null, r.ip || '—'),
      h('td', null, details ? h('code', { class: 'json', title: details.length > 400 ? details : null },
        details.length > 400 ? `${details.slice(0, 400)}…` : details) : '—'));
  }

  let shown = 0;
  async function load(reset) {
    const my = ++seq;
    if (reset) { cursor = null; shown = 0; }
    more.disabled = true;
    apply.disabled = true;
    status.textContent = '';
    showErrors(form, formAlert, null);
    try {
      const page = await api.get(`/api/v1/audit${qs({ ...filter, cursor, limit: 50 })}`);
      if (!alive || my !== seq) return;
      if (reset) clear(tbody);
      for (const r of page.data) tbody.append(row(r));
      shown += page.data.length;
      if (reset && page.data.length === 0) tbody.append(h('tr', { class: 'empty-row' }, h('td', { colspan: 7 }, 'No record matches.')));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      count.textContent = `${shown} record${shown === 1 ? '' : 's'} shown${cursor ? ', more available' : ''}.`;
    } catch (err) {
      if (!alive || my !== seq) return;
      if (err.status === 400 || err.status === 422) showErrors(form, formAlert, err);
      else status.textContent = `Cannot load the audit log: ${errorText(err)}`;
    } finally {
      if (my === seq) { more.disabled = false; apply.disabled = false; }
    }
  }

  async function verify() {
    verifyBtn.disabled = true;
    verifyLine.className = 'verify-line';
    verifyLine.textContent = 'Verifying the chain…';
    try {
      const v = await api.get('/api/v1/audit/verify');
      if (!alive) return;
      if (v.ok) {
        verifyLine.classList.add('ok');
        verifyLine.textContent = `Chain intact: ${v.checked} records checked`;
      } else {
        verifyLine.classList.add('bad');
        verifyLine.textContent = `Chain broken at record ${v.first_bad_id} (${v.checked} records checked)`;
      }
      verifyLine.dataset.ok = String(!!v.ok);
      verifyLine.dataset.checked = String(v.checked);
    } catch (err) {
      if (!alive) return;
      verifyLine.classList.add('bad');
      verifyLine.textContent = `Cannot verify the chain: ${errorText(err)}`;
    } finally {
      verifyBtn.disabled = false;
    }
  }

  load(true);
  return () => { alive = false; };
}
