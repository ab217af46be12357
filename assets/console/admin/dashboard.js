// Dashboard (system.read): headline figures and charts from
//   GET /api/v1/stats           memory, database size, HTTP and per-plugin
//                               counters,
//   GET /api/v1/concierge/stats queries and messages per day, first-response
//                               and resolution median/p90, per agent (the
//                               From/To range, UTC days, default the
//                               last 14),
//   GET /api/v1/jobs/stats      jobs per status and this node's counters
//                               (only with jobs.read).
import { h, clear, field, fmtDuration, errorText } from '/js/dom.js';
import { qs } from '/js/api.js';
import { barChart, lineChart } from '/js/charts.js';

const DAY = 86400000;
const RANGE_DAYS = 14;

const utcDay = (t) => new Date(t).toISOString().slice(0, 10);
const short = (day) => day.slice(5);	// MM-DD under the axis

// Every UTC day from..to, both included.
function daysBetween(from, to) {
  const out = [];
  for (let t = Date.parse(`${from}T00:00:00Z`), end = Date.parse(`${to}T00:00:00Z`); t <= end && out.length < 400; t += DAY) {
    out.push(utcDay(t));
  }
  return out;
}

export function fmtBytes(n) {
  if (typeof n !== 'number' || n < 0) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${u[i]}`;
}

const minutes = (s) => (typeof s === 'number' ? Math.round((s / 60) * 10) / 10 : null);
const num = (v) => (v === null || v === undefined ? null : Number(v));

function card(label, value, sub, cls = '') {
  return h('div', { class: `stat ${cls}` }, h('dt', null, label), h('dd', null, value, sub ? [' ', h('small', null, sub)] : null));
}

function notice(title, text) {
  return h('figure', { class: 'chart card', 'data-chart': title }, h('figcaption', null, title), h('p', { class: 'muted' }, text));
}

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  let seq = 0;

  const today = utcDay(Date.now());
  const fromIn = h('input', { name: 'from', type: 'date', value: utcDay(Date.now() - (RANGE_DAYS - 1) * DAY), required: true });
  const toIn = h('input', { name: 'to', type: 'date', value: today, required: true });
  const rangeAlert = h('p', { class: 'error', role: 'alert' });
  const apply = h('button', { type: 'submit', class: 'primary' }, 'Apply');
  const range = h('form', { class: 'filters dash-range', 'aria-label': 'Date range', on: { submit: (e) => { e.preventDefault(); load(); } } },
    field('From', fromIn), field('To', toIn), h('div', { class: 'buttons' }, apply), h('small', { class: 'hint' }, 'UTC days, both included'));
  const refresh = h('button', { type: 'button', on: { click: () => load() } }, 'Refresh');
  const status = h('p', { class: 'status-line error', role: 'alert' });
  const cards = h('dl', { class: 'cards', 'aria-label': 'Headline figures', 'data-testid': 'dash-cards' });
  const charts = h('div', { class: 'charts', 'data-testid': 'dash-charts' });
  const agents = h('section', { class: 'admin-section', 'aria-labelledby': 'per-agent-title' });

  root.append(h('div', { class: 'admin dashboard', 'aria-busy': 'true' },
    h('div', { class: 'admin-head' }, h('h1', null, 'Dashboard'), h('div', { class: 'actions' }, refresh)),
    range, rangeAlert, status, cards, charts, agents));
  const box = root.firstChild;

  const settle = async (p) => { try { return { ok: true, value: await p }; } catch (error) { return { ok: false, error }; } };

  async function load() {
    const my = ++seq;
    rangeAlert.textContent = '';
    status.textContent = '';
    const from = fromIn.value;
    const to = toIn.value;
    if (!from || !to || from > to) {
      rangeAlert.textContent = 'From must be a day on or before To.';
      return;
    }
    box.setAttribute('aria-busy', 'true');
    apply.disabled = true;
    refresh.disabled = true;
    const toExclusive = utcDay(Date.parse(`${to}T00:00:00Z`) + DAY);
    const [stats, conc, jobs] = await Promise.all([
      settle(api.get('/api/v1/stats')),
      settle(api.get(`/api/v1/concierge/stats${qs({ from, to: toExclusive })}`)),
      ctx.can('jobs.read') ? settle(api.get('/api/v1/jobs/stats')) : Promise.resolve(null),
    ]);
    if (!alive || my !== seq) return;
    apply.disabled = false;
    refresh.disabled = false;
    box.setAttribute('aria-busy', 'false');
    const problems = [];
    if (!stats.ok) problems.push(`system statistics: ${errorText(stats.error)}`);
    if (!conc.ok && conc.error.status !== 404) {
      if (conc.error.status === 400) rangeAlert.textContent = errorText(conc.error);
      else problems.push(`query statistics: ${errorText(conc.error)}`);
    }
    if (jobs && !jobs.ok) problems.push(`job statistics: ${errorText(jobs.error)}`);
    status.textContent = problems.length ? `Cannot load the ${problems.join('; ')}` : '';
    draw(daysBetween(from, to), stats.ok ? stats.value : null, conc.ok ? conc.value : null,
      conc.ok ? null : conc.error, jobs?.ok ? jobs.value : null);
  }

  function draw(days, s, c, cErr, j) {
    clear(cards);
    clear(charts);
    clear(agents);

    // ---- headline figures
    if (c) {
      cards.append(
        card('Queries', String(c.counts?.total ?? 0), 'in range'),
        card('Open', String(c.counts?.open ?? 0), `${c.counts?.unassigned ?? 0} unassigned`, c.counts?.unassigned > 0 ? 'bad' : ''),
        card('Resolved', String(c.counts?.resolved ?? 0), `${c.counts?.closed ?? 0} closed by donors`),
        card('First response', fmtDuration(num(c.first_response?.median_s)), `median · p90 ${fmtDuration(num(c.first_response?.p90_s))}`),
        card('Resolution', fmtDuration(num(c.resolution?.median_s)), `median · p90 ${fmtDuration(num(c.resolution?.p90_s))}`));
    }
    if (j) {
      cards.append(card('Queued jobs', String(j.counts?.queued ?? 0), `${j.counts?.running ?? 0} running`),
        card('Dead jobs', String(j.counts?.dead ?? 0), 'need a look', j.counts?.dead > 0 ? 'bad' : ''));
    }
    if (s) {
      cards.append(
        card('Memory', fmtBytes(s.memory?.worker_max_rss_bytes), `max per worker · ${s.memory?.workers ?? '?'} workers`),
        card('Database', fmtBytes(s.db_size_bytes)),
        card('Uptime', fmtDuration(s.uptime_seconds), s.version ? `v${s.version}` : null),
        card('HTTP errors', String(s.http?.['5xx'] ?? 0), `5xx · ${s.http?.['4xx'] ?? 0} 4xx`, s.http?.['5xx'] > 0 ? 'bad' : ''));
    }

    const labels = days.map(short);

    // ---- queries per day
    if (c) {
      const byDay = new Map((c.per_day || []).map((d) => [d.day, d]));
      charts.append(barChart({
        title: 'Queries per day', labelHeader: 'Day (UTC)', labels,
        series: [
          { name: 'Created', values: days.map((d) => num(byDay.get(d)?.created) ?? 0), cls: 's0' },
          { name: 'Resolved', values: days.map((d) => num(byDay.get(d)?.resolved) ?? 0), cls: 's2' },
        ],
      }));
    } else {
      charts.append(notice('Queries per day', cErr?.status === 404 ? 'The concierge plugin is not enabled.' : 'Not available.'));
    }

    // ---- messages per day (the concierge's threads, by sender)
    if (c?.messages_per_day) {
      const byDay = new Map(c.messages_per_day.map((d) => [d.day, d]));
      charts.append(barChart({ title: 'Messages per day', labelHeader: 'Day (UTC)', labels,
        series: [
          { name: 'From donors', values: days.map((d) => num(byDay.get(d)?.donor) ?? 0), cls: 's1' },
          { name: 'From staff', values: days.map((d) => num(byDay.get(d)?.staff) ?? 0), cls: 's0' },
          { name: 'System', values: days.map((d) => num(byDay.get(d)?.system) ?? 0), cls: 's4' },
        ] }));
    } else {
      charts.append(notice('Messages per day', cErr?.status === 404 ? 'The concierge plugin is not enabled.' : 'Not available.'));
    }

    // ---- response and resolution time
    if (c) {
      const byDay = new Map((c.per_day || []).map((d) => [d.day, d]));
      const pick = (d, k, p) => minutes(num(byDay.get(d)?.[k]?.[p]));
      charts.append(lineChart({
        title: 'Response and resolution time', labelHeader: 'Day (UTC)', labels, unit: 'minutes',
        desc: `Per day, in minutes: first response median ${fmtDuration(num(c.first_response?.median_s))}, p90 ${fmtDuration(num(c.first_response?.p90_s))}; resolution median ${fmtDuration(num(c.resolution?.median_s))}, p90 ${fmtDuration(num(c.resolution?.p90_s))} over the range.`,
        series: [
          { name: 'First response, median', values: days.map((d) => pick(d, 'first_response', 'median_s')), cls: 's0' },
          { name: 'First response, p90', values: days.map((d) => pick(d, 'first_response', 'p90_s')), cls: 's1' },
          { name: 'Resolution, median', values: days.map((d) => pick(d, 'resolution', 'median_s')), cls: 's2' },
          { name: 'Resolution, p90', values: days.map((d) => pick(d, 'resolution', 'p90_s')), cls: 's3' },
        ],
      }));
    }

    // ---- jobs
    if (j) {
      const st = ['queued', 'running', 'done', 'dead'];
      charts.append(barChart({ title: 'Jobs by status', labelHeader: 'Status', labels: st,
        series: [{ name: 'Jobs', values: st.map((k) => num(j.counts?.[k]) ?? 0), classes: ['warn', 's0', 'ok', 'bad'] }] }));
      const n = j.node || {};
      const ks = ['enqueued', 'done', 'retried', 'failures', 'dead', 'reclaimed'];
      charts.append(barChart({ title: 'Job throughput on this node', labelHeader: 'Counter', labels: ks,
        desc: 'Jobs handled by this node since it started.',
        series: [{ name: 'Since start', values: ks.map((k) => num(n[k]) ?? 0), classes: ['s0', 'ok', 'warn', 'bad', 'bad', 's4'] }] }));
    }

    // ---- per plugin
    if (s?.plugins?.length) {
      charts.append(barChart({ title: 'Requests per plugin', labelHeader: 'Plugin', labels: s.plugins.map((p) => p.name),
        desc: 'Requests routed to each plugin since this node started.',
        series: [{ name: 'Requests', values: s.plugins.map((p) => num(p.requests) ?? 0),
          classes: s.plugins.map((p) => (p.state === 'ready' ? 's0' : 'bad')) }] }));
    }

    // ---- per agent
    if (c) {
      agents.append(h('h2', { id: 'per-agent-title' }, 'Per agent'));
      if (!c.per_agent?.length) {
        agents.append(h('p', { class: 'muted' }, 'No agent handled a query in this range.'));
      } else {
        agents.append(h('div', { class: 'table-wrap' }, h('table', { 'aria-labelledby': 'per-agent-title' },
          h('thead', null, h('tr', null, ['Agent', 'Open, assigned', 'Resolved', 'First response median', 'First response p90',
            'Resolution median', 'Resolution p90'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', null, c.per_agent.map((a) => h('tr', null,
            h('th', { scope: 'row' }, a.name || a.username || `#${a.user_id}`, a.username ? h('small', { class: 'hint' }, a.username) : null),
            h('td', { class: 'num' }, String(a.open_assigned ?? 0)),
            h('td', { class: 'num' }, String(a.resolved ?? 0)),
            h('td', { class: 'num' }, fmtDuration(num(a.first_response?.median_s))),
            h('td', { class: 'num' }, fmtDuration(num(a.first_response?.p90_s))),
            h('td', { class: 'num' }, fmtDuration(num(a.resolution?.median_s))),
            h('td', { class: 'num' }, fmtDuration(num(a.resolution?.p90_s)))))))));
      }
    }
  }

  load();
  return () => { alive = false; };
}
