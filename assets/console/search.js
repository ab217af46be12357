// Search (#/search): donor queries by text (donor, donor id, test or any
// message) and status, GET /api/v1/donor-queries?q=&status=, newest first.
import { h, clear, field, fmtTime, errorText } from '/js/dom.js';
import { qs } from '/js/api.js';

const STATUSES = ['IN_PROGRESS', 'TRANSFERRED', 'RESOLVED', 'CLOSED'];
const PAGE = 50;

// The last search survives leaving the screen (opening a result and
// coming back shows the same results).
let last = { q: '', status: '' };

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  let seq = 0;
  let cursor = null;
  let timer = null;

  const input = h('input', { type: 'search', name: 'q', maxlength: '200', autocomplete: 'off', value: last.q,
    placeholder: 'Donor, donor ID, test or message text' });
  const status = h('select', { name: 'status' },
    h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === last.status }, s)));
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Search');
  const form = h('form', { class: 'search-form row', role: 'search', 'aria-label': 'Query search',
    on: { submit: (e) => { e.preventDefault(); run(); } } },
  field('Search queries', input), field('Status', status), h('div', { class: 'search-submit' }, submit));
  const summary = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite', 'data-testid': 'search-summary' });
  const errorEl = h('p', { class: 'error', role: 'alert' });
  const tbody = h('tbody');
  const table = h('table', { 'data-testid': 'search-results' },
    h('caption', { class: 'sr-only' }, 'Matching queries, newest first'),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Query'), h('th', { scope: 'col' }, 'Donor'), h('th', { scope: 'col' }, 'Donor ID'),
      h('th', { scope: 'col' }, 'Test'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Opened'))),
    tbody);
  const wrap = h('div', { class: 'table-wrap', hidden: true }, table);
  const more = h('button', { type: 'button', hidden: true, on: { click: () => fetchPage(false) } }, 'Load more');

  root.append(h('section', { class: 'search-screen', 'aria-labelledby': 'search-title' },
    h('h1', { id: 'search-title' }, 'Search'), form, summary, errorEl, wrap, more));

  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(run, 350);
  });
  status.addEventListener('change', run);

  function run() {
    clearTimeout(timer);
    last = { q: input.value.trim(), status: status.value };
    fetchPage(true);
  }

  let shown = 0;
  async function fetchPage(reset) {
    const mySeq = ++seq;
    if (reset) cursor = null;
    errorEl.textContent = '';
    submit.disabled = true;
    more.disabled = true;
    table.setAttribute('aria-busy', 'true');
    try {
      const r = await api.get(`/api/v1/donor-queries${qs({ q: last.q, status: last.status, limit: PAGE, cursor })}`);
      if (!alive || mySeq !== seq) return;
      if (reset) { clear(tbody); shown = 0; }
      for (const q of r.data || []) tbody.append(row(q));
      shown += (r.data || []).length;
      cursor = r.next_cursor ?? null;
      more.hidden = !cursor;
      wrap.hidden = shown === 0;
      const what = last.q ? `matching “${last.q}”` : '';
      const st = last.status ? `with status ${last.status}` : '';
      summary.textContent = shown === 0 ? `No queries ${[what, st].filter(Boolean).join(' ') || 'yet'}.`
        : `${shown}${cursor ? '+' : ''} ${shown === 1 ? 'query' : 'queries'} ${[what, st].filter(Boolean).join(' ')}`.trim();
    } catch (e) {
      if (!alive || mySeq !== seq) return;
      errorEl.textContent = `The search failed: ${errorText(e)}`;
    } finally {
      if (alive && mySeq === seq) {
        submit.disabled = false;
        more.disabled = false;
        table.removeAttribute('aria-busy');
      }
    }
  }

  function row(q) {
    const pillKind = q.status === 'RESOLVED' ? 'ok' : q.status === 'CLOSED' ? '' : 'warn';
    return h('tr', { 'data-testid': 'search-result', 'data-query-id': String(q.id) },
      h('td', null, h('a', { href: `#/query/${q.id}` }, `#${q.id}`)),
      h('td', null, h('a', { href: `#/query/${q.id}` }, q.donor || '—')),
      h('td', null, q.donor_id || ''),
      h('td', null, q.test || ''),
      h('td', null, h('span', { class: `pill ${pillKind}` }, q.status)),
      h('td', null, h('time', { datetime: q.created_at }, fmtTime(q.created_at))));
  }

  fetchPage(true);
  input.focus();

  return () => {
    alive = false;
    clearTimeout(timer);
  };
}
