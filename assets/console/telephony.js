// What the SMS (sms.js) and Calls (calls.js) screens share: the segment
// counter (the server's rule, plugins/telephony/segments.c), whether the
// voice routes are served, the statuses, and the statistics view drawn
// with /js/charts.js from GET /api/v1/sms/statistics and
// GET /api/v1/calls/statistics?group_by=day|provider.
import { h, clear, field, fmtDuration, errorText } from '/js/dom.js';
import { qs } from '/js/api.js';
import { barChart, lineChart } from '/js/charts.js';

/* ------------------------------------------------------------- segments */

// GSM 03.38: the basic table (one septet) and the extension table (two:
// escape + character), as the server has them.
const GSM_BASIC = new Set([...'@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5'
  + '\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9'
  + ' !"#\u00a4%&\'()*+,-./:;<=>?\u00a1\u00c4\u00d6\u00d1\u00dc\u00a7\u00bf\u00e4\u00f6\u00f1\u00fc\u00e0'
  + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789']);
const GSM_EXT = new Set([...'\f^{}\\[~]|\u20ac']);

export const MAX_SEGMENTS = 10;
export const MAX_CHARS = 1600;

// {segments, encoding, units, chars} for text: GSM-7 when every character
// is in either table (160 septets alone, 153 each of several), otherwise
// UCS-2 (70 units alone, 67 each; a character outside the BMP is two).
export function segments(text) {
  let septets = 0;
  let ucs2 = 0;
  let chars = 0;
  let gsm = true;
  for (const ch of text) {
    chars++;
    ucs2 += ch.codePointAt(0) > 0xffff ? 2 : 1;
    if (!gsm) continue;
    if (GSM_BASIC.has(ch)) septets += 1;
    else if (GSM_EXT.has(ch)) septets += 2;
    else gsm = false;
  }
  const units = gsm ? septets : ucs2;
  let n = 0;
  if (units > 0) n = gsm ? (units <= 160 ? 1 : Math.ceil(units / 153)) : (units <= 70 ? 1 : Math.ceil(units / 67));
  return { segments: n, encoding: gsm ? 'GSM-7' : 'UCS-2', units, chars };
}

/* ------------------------------------------------------------- statuses */

export const CALL_ENDED = new Set(['completed', 'busy', 'no-answer', 'failed', 'canceled']);
export const SMS_BAD = new Set(['failed', 'undelivered', 'unknown']);

// A call status as a pill: ok, bad or in between.
export function callPill(status) {
  const cls = status === 'completed' ? 'ok' : CALL_ENDED.has(status) ? 'bad' : 'warn';
  return h('span', { class: `pill ${cls}`, 'data-status': status }, status);
}

// The voice routes (/api/v1/calls/...) come with a later slice of the
// telephony plugin: the served routes are in the OpenAPI document, so the
// console asks it once instead of provoking a 404.
let voicePromise = null;
export function voiceAvailable(api) {
  if (!voicePromise) {
    voicePromise = api.get('/api/v1/openapi.json')
      .then((doc) => Object.keys(doc?.paths || {}).some((p) => p === '/api/v1/calls/initiate'))
      .catch(() => { voicePromise = null; return false; });
  }
  return voicePromise;
}

/* ----------------------------------------------------------------- tabs */

// A tablist of [{key, label}] over one tabpanel; select(key) is called
// with the chosen key (arrows, Home and End move between tabs).
export function tabs(name, items, select, idPrefix) {
  const list = h('div', { class: 'tel-tabs', role: 'tablist', 'aria-label': name });
  const panel = h('div', { id: `${idPrefix}-panel`, role: 'tabpanel', tabindex: '-1', class: 'tel-panel' });
  const buttons = items.map((t, i) => h('button', {
    type: 'button', role: 'tab', id: `${idPrefix}-tab-${t.key}`, 'aria-controls': panel.id, 'data-tab': t.key,
    on: {
      click: () => choose(i, false),
      keydown: (e) => {
        let j = null;
        if (e.key === 'ArrowRight' || e.key === 'ArrowDown') j = (i + 1) % items.length;
        else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') j = (i - 1 + items.length) % items.length;
        else if (e.key === 'Home') j = 0;
        else if (e.key === 'End') j = items.length - 1;
        if (j === null) return;
        e.preventDefault();
        choose(j, true);
      },
    },
  }, t.label));
  list.append(...buttons);
  function choose(i, focus) {
    buttons.forEach((b, k) => {
      b.setAttribute('aria-selected', String(k === i));
      b.tabIndex = k === i ? 0 : -1;
    });
    panel.setAttribute('aria-labelledby', buttons[i].id);
    if (focus) buttons[i].focus();
    select(items[i].key);
  }
  return { list, panel, choose };
}

/* ----------------------------------------------------------- statistics */

const DAY = 86400000;
const RANGE_DAYS = 14;
const utcDay = (t) => new Date(t).toISOString().slice(0, 10);
const num = (v) => (v === null || v === undefined ? null : Number(v));
const pct = (v) => (typeof v === 'number' ? `${Math.round(v * 1000) / 10} %` : '—');

function daysBetween(from, to) {
  const out = [];
  for (let t = Date.parse(`${from}T00:00:00Z`), end = Date.parse(`${to}T00:00:00Z`); t <= end && out.length < 400; t += DAY) {
    out.push(utcDay(t));
  }
  return out;
}

function card(label, value, sub) {
  return h('div', { class: 'stat' }, h('dt', null, label), h('dd', null, value, sub ? [' ', h('small', null, sub)] : null));
}

// The statistics view: a date range and the charts of what the user may
// read.  which: {sms, calls} (booleans).  Returns a cleanup function.
export function mountStats(root, ctx, which, idPrefix) {
  const { api } = ctx;
  let alive = true;
  let seq = 0;
  const fromIn = h('input', { name: 'from', type: 'date', required: true,
    value: utcDay(Date.now() - (RANGE_DAYS - 1) * DAY) });
  const toIn = h('input', { name: 'to', type: 'date', required: true, value: utcDay(Date.now()) });
  fromIn.id = `${idPrefix}-from`;
  toIn.id = `${idPrefix}-to`;
  const alertEl = h('p', { class: 'error', role: 'alert' });
  const apply = h('button', { type: 'submit', class: 'primary' }, 'Apply');
  const form = h('form', { class: 'filters dash-range', 'aria-label': 'Date range',
    on: { submit: (e) => { e.preventDefault(); load(); } } },
  field('From', fromIn), field('To', toIn), h('div', { class: 'buttons' }, apply),
  h('small', { class: 'hint' }, 'UTC days, both included'));
  const cards = h('dl', { class: 'cards', 'aria-label': 'Totals', 'data-testid': `${idPrefix}-cards` });
  const charts = h('div', { class: 'charts', 'data-testid': `${idPrefix}-charts`, 'aria-busy': 'true' });
  root.append(form, alertEl, cards, charts);

  const settle = async (p) => { try { return { ok: true, value: await p }; } catch (error) { return { ok: false, error }; } };

  async function load() {
    const my = ++seq;
    alertEl.textContent = '';
    const from = fromIn.value;
    const to = toIn.value;
    if (!from || !to || from > to) {
      alertEl.textContent = 'From must be a day on or before To.';
      return;
    }
    charts.setAttribute('aria-busy', 'true');
    apply.disabled = true;
    const range = { from, to };
    const [sms, byDay, byProvider] = await Promise.all([
      which.sms ? settle(api.get(`/api/v1/sms/statistics${qs(range)}`)) : null,
      which.calls ? settle(api.get(`/api/v1/calls/statistics${qs({ ...range, group_by: 'day' })}`)) : null,
      which.calls ? settle(api.get(`/api/v1/calls/statistics${qs({ ...range, group_by: 'provider' })}`)) : null,
    ]);
    if (!alive || my !== seq) return;
    apply.disabled = false;
    charts.setAttribute('aria-busy', 'false');
    const problems = [sms, byDay, byProvider].filter((r) => r && !r.ok).map((r) => errorText(r.error));
    alertEl.textContent = problems.length ? `Some statistics did not load: ${[...new Set(problems)].join('; ')}` : '';
    clear(cards);
    clear(charts);
    const days = daysBetween(from, to);
    const labels = days.map((d) => d.slice(5));
    if (sms?.ok) drawSms(sms.value, days, labels);
    if (byDay?.ok || byProvider?.ok) drawCalls(byDay?.ok ? byDay.value : null, byProvider?.ok ? byProvider.value : null, days, labels);
  }

  function drawSms(s, days, labels) {
    const t = s.totals || {};
    cards.append(card('SMS sent', String(t.sent ?? 0), `${t.received ?? 0} received`),
      card('SMS delivered', String(t.delivered ?? 0), `${pct(num(t.delivery_rate))} of sent`),
      card('SMS failed', String(t.failed ?? 0)));
    const byDay = new Map((s.by_day || []).map((d) => [d.day, d]));
    const v = (k) => days.map((d) => num(byDay.get(d)?.[k]) ?? 0);
    charts.append(barChart({ title: 'SMS per day', labelHeader: 'Day (UTC)', labels,
      series: [{ name: 'Sent', values: v('sent'), cls: 's0' }, { name: 'Delivered', values: v('delivered'), cls: 'ok' },
        { name: 'Failed', values: v('failed'), cls: 'bad' }, { name: 'Received', values: v('received'), cls: 's4' }] }));
    const prov = s.by_provider || [];
    charts.append(barChart({ title: 'SMS by provider', labelHeader: 'Provider', labels: prov.map((p) => p.provider),
      series: [{ name: 'Sent', values: prov.map((p) => num(p.sent) ?? 0), cls: 's0' },
        { name: 'Delivered', values: prov.map((p) => num(p.delivered) ?? 0), cls: 'ok' },
        { name: 'Failed', values: prov.map((p) => num(p.failed) ?? 0), cls: 'bad' }] }));
  }

  function drawCalls(dayStats, provStats, days, labels) {
    const t = dayStats?.totals || provStats?.totals || {};
    cards.append(card('Calls', String(t.total ?? 0), `${t.completed ?? 0} completed`),
      card('Call success', pct(num(t.success_rate)), `${t.failed ?? 0} failed · ${t.busy ?? 0} busy · ${t.no_answer ?? 0} no answer`),
      card('Call duration', fmtDuration(num(t.avg_duration_s)), `average · p90 ${fmtDuration(num(t.p90_duration_s))}`));
    if (dayStats) {
      const byDay = new Map((dayStats.groups || []).map((g) => [String(g.key).slice(0, 10), g]));
      const v = (k) => days.map((d) => num(byDay.get(d)?.[k]) ?? 0);
      charts.append(barChart({ title: 'Calls per day', labelHeader: 'Day (UTC)', labels,
        series: [{ name: 'Total', values: v('total'), cls: 's0' }, { name: 'Completed', values: v('completed'), cls: 'ok' },
          { name: 'Failed', values: v('failed'), cls: 'bad' }, { name: 'No answer', values: v('no_answer'), cls: 'warn' }] }));
      charts.append(lineChart({ title: 'Call success rate per day', labelHeader: 'Day (UTC)', labels, unit: '%',
        series: [{ name: 'Completed of total', values: days.map((d) => {
          const g = byDay.get(d);
          return g && num(g.total) > 0 ? Math.round(num(g.success_rate) * 1000) / 10 : null;
        }), cls: 's2' }] }));
    }
    if (provStats) {
      const g = provStats.groups || [];
      charts.append(barChart({ title: 'Calls by provider', labelHeader: 'Provider', labels: g.map((x) => String(x.key)),
        series: [{ name: 'Total', values: g.map((x) => num(x.total) ?? 0), cls: 's0' },
          { name: 'Completed', values: g.map((x) => num(x.completed) ?? 0), cls: 'ok' },
          { name: 'Failed', values: g.map((x) => num(x.failed) ?? 0), cls: 'bad' }] }));
    }
  }

  load();
  return { reload: load, stop: () => { alive = false; } };
}
