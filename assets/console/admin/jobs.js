// Jobs (jobs.read): the durable queue.  Counts per status and this
// node's counters from /api/v1/jobs/stats, the list filtered by status
// and kind, each job's details, and Retry for a dead job (jobs.manage):
// the row then follows the job (queued → running → done or dead again).
import { h, clear, field, fmtTime, fmtDuration, errorText, dialog } from '/js/dom.js';
import { qs } from '/js/api.js';

const STATUSES = ['queued', 'running', 'done', 'dead'];
const PILL = { queued: 'warn', running: '', done: 'ok', dead: 'bad' };
const FOLLOW_MS = 1000;
const FOLLOW_FOR_MS = 120000;

const when = (iso) => (iso ? h('time', { datetime: iso, title: iso }, fmtTime(iso)) : '—');

function stat(label, value, cls = '') {
  return h('div', { class: `stat ${cls}` }, h('dt', null, label), h('dd', null, value));
}

export function mount(root, ctx, params = {}) {
  const { api } = ctx;
  let alive = true;
  let cursor = null;
  const following = new Map();	// id -> {timer, until}
  const canRetry = ctx.can('jobs.manage');

  const status = h('p', { class: 'status-line error', role: 'alert' });
  const statsBox = h('dl', { class: 'cards', 'aria-label': 'Job counts', 'data-testid': 'job-stats' });
  const nodeBox = h('div');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'more-btn', hidden: true, on: { click: () => load(false) } }, 'Load more');
  const initial = STATUSES.includes(params.rest?.[0]) ? params.rest[0] : '';
  const statusSel = h('select', { name: 'status' }, h('option', { value: '' }, 'All'),
    STATUSES.map((s) => h('option', { value: s, selected: s === initial }, s)));
  const kindSel = h('select', { name: 'kind' }, h('option', { value: '' }, 'All kinds'));
  const refresh = h('button', { type: 'button', on: { click: () => { loadStats(); load(true); } } }, 'Refresh');
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter jobs', on: { submit: (e) => { e.preventDefault(); load(true); } } },
    field('Status', statusSel), field('Kind', kindSel), h('div', { class: 'buttons' }, refresh));
  statusSel.addEventListener('change', () => load(true));
  kindSel.addEventListener('change', () => load(true));

  root.append(h('div', { class: 'admin jobs' },
    h('div', { class: 'admin-head' }, h('h1', null, 'Jobs')),
    h('section', { class: 'admin-section', 'aria-label': 'Queue statistics' }, statsBox, nodeBox),
    filters, status,
    h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Jobs' },
      h('thead', null, h('tr', null, ['ID', 'Kind', 'Status', 'Attempts', 'Last error', 'Created', 'Started', 'Finished', 'Actions']
        .map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    more));

  async function loadStats() {
    try {
      const s = await api.get('/api/v1/jobs/stats');
      if (!alive) return;
      clear(statsBox);
      for (const st of STATUSES) {
        statsBox.append(stat(st[0].toUpperCase() + st.slice(1), String(s.counts?.[st] ?? 0), st === 'dead' && s.counts?.dead > 0 ? 'bad' : ''));
      }
      const n = s.node || {};
      clear(nodeBox);
      nodeBox.append(h('details', { class: 'plugin' },
        h('summary', null, 'This node’s counters and job kinds'),
        h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Node counters' },
          h('thead', null, h('tr', null, ['Enqueued', 'Claimed', 'Done', 'Retried', 'Dead', 'Failures', 'Reclaimed', 'Lost', 'Latency avg', 'Run avg']
            .map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', null, h('tr', null,
            ['enqueued', 'claimed', 'done', 'retried', 'dead', 'failures', 'reclaimed', 'lost'].map((k) => h('td', { class: 'num' }, String(n[k] ?? 0))),
            h('td', { class: 'num' }, n.latency_ms ? fmtDuration(n.latency_ms.avg / 1000) : '—'),
            h('td', { class: 'num' }, n.run_ms ? `${Math.round(n.run_ms.avg)} ms` : '—'))))),
        h('h3', null, 'Kinds'),
        h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Job kinds' },
          h('thead', null, h('tr', null, ['Kind', 'Plugin', 'Max attempts', 'Timeout', 'Backoff', 'Every', 'Runs here'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', null, (s.kinds || []).map((k) => h('tr', null,
            h('th', { scope: 'row' }, h('code', null, k.name)), h('td', null, k.plugin),
            h('td', { class: 'num' }, String(k.max_attempts)), h('td', { class: 'num' }, `${k.timeout_s} s`),
            h('td', { class: 'num' }, `${k.backoff_s} s`), h('td', { class: 'num' }, k.interval_s ? `${k.interval_s} s` : '—'),
            h('td', null, k.runs_here ? 'yes' : 'no'))))))));
      const have = new Set([...kindSel.options].map((o) => o.value));
      for (const k of s.kinds || []) {
        if (!have.has(k.name)) kindSel.append(h('option', { value: k.name }, k.name));
      }
    } catch (err) {
      if (alive) status.textContent = `Cannot load the job statistics: ${errorText(err)}`;
    }
  }

  function row(j) {
    const tr = h('tr', { 'data-job-id': j.id, 'data-status': j.status },
      h('th', { scope: 'row' }, String(j.id)),
      h('td', null, h('code', null, j.kind)),
      h('td', null, h('span', { class: `pill ${PILL[j.status] || ''}`, 'data-testid': 'job-status' }, j.status)),
      h('td', { class: 'num' }, `${j.attempts} / ${j.max_attempts}`),
      h('td', null, j.last_error ? h('span', { class: 'error-text', title: j.last_error },
        j.last_error.length > 120 ? `${j.last_error.slice(0, 120)}…` : j.last_error) : '—'),
      h('td', { class: 'nowrap' }, when(j.created_at)),
      h('td', { class: 'nowrap' }, when(j.started_at)),
      h('td', { class: 'nowrap' }, when(j.finished_at)),
      h('td', { class: 'actions-cell' },
        h('button', { type: 'button', 'aria-label': `Details of job ${j.id}`, on: { click: () => show(j.id) } }, 'Details'),
        j.status === 'dead' && canRetry
          ? h('button', { type: 'button', class: 'primary', 'aria-label': `Retry job ${j.id}`, on: { click: (e) => retry(j, e.currentTarget) } }, 'Retry')
          : null));
    return tr;
  }

  function replaceRow(j) {
    const old = tbody.querySelector(`tr[data-job-id="${j.id}"]`);
    if (old) old.replaceWith(row(j));
  }

  async function load(reset) {
    if (reset) cursor = null;
    more.disabled = true;
    status.textContent = '';
    try {
      const page = await api.get(`/api/v1/jobs${qs({ status: statusSel.value, kind: kindSel.value, cursor, limit: 50 })}`);
      if (!alive) return;
      if (reset) clear(tbody);
      for (const j of page.data) tbody.append(row(j));
      if (reset && page.data.length === 0) tbody.append(h('tr', { class: 'empty-row' }, h('td', { colspan: 9 }, 'No jobs match.')));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      if (alive) status.textContent = `Cannot load the jobs: ${errorText(err)}`;
    } finally {
      more.disabled = false;
    }
  }

  async function retry(j, btn) {
    btn.disabled = true;
    status.textContent = '';
    try {
      const fresh = await api.post(`/api/v1/jobs/${j.id}/retry`);
      if (!alive) return;
      ctx.toast(`Job ${j.id} queued again`);
      replaceRow(fresh);
      follow(fresh.id);
      loadStats();
    } catch (err) {
      if (!alive) return;
      btn.disabled = false;
      status.textContent = `Job ${j.id} cannot be retried: ${errorText(err)}`;
    }
  }

  // Follow a retried job until it settles (done or dead).
  function follow(id) {
    const until = Date.now() + FOLLOW_FOR_MS;
    const tick = async () => {
      if (!alive) return;
      try {
        const j = await api.get(`/api/v1/jobs/${id}`);
        if (!alive) return;
        replaceRow(j);
        if (j.status === 'done' || j.status === 'dead') {
          following.delete(id);
          loadStats();
          return;
        }
      } catch { /* try again at the next tick */ }
      if (Date.now() < until && alive) following.set(id, setTimeout(tick, FOLLOW_MS));
      else following.delete(id);
    };
    clearTimeout(following.get(id));
    following.set(id, setTimeout(tick, FOLLOW_MS / 2));
  }

  async function show(id) {
    try {
      const j = await api.get(`/api/v1/jobs/${id}`);
      const dl = (pairs) => h('dl', { class: 'kv' }, pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v ?? '—')]));
      dialog(`Job ${j.id}: ${j.kind}`, [
        dl([['Status', j.status], ['Attempts', `${j.attempts} / ${j.max_attempts}`], ['Priority', String(j.priority)],
          ['Idempotency key', j.idempotency_key], ['Run at', j.run_at], ['Created', j.created_at], ['Started', j.started_at],
          ['Finished', j.finished_at], ['Locked by', j.locked_by], ['Last error', j.last_error]]),
        h('h3', null, 'Payload'), h('pre', { class: 'json' }, JSON.stringify(j.payload, null, 2)),
        h('h3', null, 'Result'), h('pre', { class: 'json' }, JSON.stringify(j.result, null, 2)),
      ]);
    } catch (err) {
      if (alive) status.textContent = `Cannot load job ${id}: ${errorText(err)}`;
    }
  }

  loadStats();
  load(true);

  return () => {
    alive = false;
    for (const t of following.values()) clearTimeout(t);
    following.clear();
  };
}
