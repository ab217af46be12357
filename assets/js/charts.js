// Small SVG charts for the console, no library: a (grouped) bar chart and
// a line chart of labelled series.  Each chart is a <figure class="chart">
// holding a visible caption, an <svg role="img"> with its own <title> and
// <desc>, a legend, and a visually hidden data table with the same
// figures for screen readers and anyone who wants the numbers.  Text is
// always set as text; colours come from classes (console.css, admin.css).
//
//   barChart({ title: 'Queries per day', labels: ['05-01', ...],
//     series: [{ name: 'Created', values: [3, 1, ...] }, ...],
//     format: (v) => String(v), desc: 'optional sentence' })
//   lineChart({ same options; null values leave gaps })
//
// A series may carry `cls` ('alt', 'bad', 'ok', 'warn', or 's0'..'s5')
// and a bar series `classes` (one class per value).

const NS = 'http://www.w3.org/2000/svg';
const W = 520;
const H = 240;
const M = { top: 16, right: 22, bottom: 30, left: 48 };
let uid = 0;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function html(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const finite = (v) => typeof v === 'number' && Number.isFinite(v);

// A round axis maximum at or above max, and its tick step.
export function niceScale(max, ticks = 4) {
  if (!finite(max) || max <= 0) return { max: ticks, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  return { max: step * Math.ceil(max / step - 1e-9), step };
}

const defaultFormat = (v) => (finite(v) ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : '—');

function seriesClass(s, i) {
  return s.cls || `s${i % 6}`;
}

// What the <desc> says when the caller gives nothing: the extent of the
// data in one sentence.
function describe(labels, series, format) {
  if (!labels.length) return 'No data.';
  const parts = series.map((s) => {
    const vals = s.values.filter(finite);
    if (!vals.length) return `${s.name}: no values`;
    const total = vals.reduce((a, b) => a + b, 0);
    return `${s.name}: from ${format(Math.min(...vals))} to ${format(Math.max(...vals))}` +
      (s.sum ? `, ${format(total)} in all` : '');
  });
  return `${labels.length} points from ${labels[0]} to ${labels.at(-1)}. ${parts.join('; ')}.`;
}

// The hidden table: one row per label, one column per series.
function dataTable(title, labels, series, format, labelHeader) {
  // (The wrapper is what is hidden: a table ignores a 1px width.)
  return html('div', { class: 'sr-only' }, html('table', { class: 'chart-data' },
    html('caption', null, `${title} (data)`),
    html('thead', null, html('tr', null, html('th', { scope: 'col' }, labelHeader),
      series.map((s) => html('th', { scope: 'col' }, s.name)))),
    html('tbody', null, labels.map((l, i) => html('tr', null, html('th', { scope: 'row' }, l),
      series.map((s) => html('td', null, format(s.values[i]))))))));
}

function legend(series, kind) {
  if (series.length < 2 && kind === 'bar') return null;
  return html('ul', { class: 'chart-legend', 'aria-hidden': 'true' },
    series.map((s, i) => html('li', null,
      html('span', { class: `swatch ${kind} ${seriesClass(s, i)}` }), s.name)));
}

// Axis, grid lines and x labels shared by both kinds; returns the scale.
function frame(g, labels, max, format, band) {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const { max: top, step } = niceScale(max);
  const y = (v) => M.top + plotH - (v / top) * plotH;
  for (let v = 0; v <= top + 1e-9; v += step) {
    g.append(svg('line', { class: 'grid', x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    g.append(svg('text', { class: 'tick', x: M.left - 6, y: y(v) + 3, 'text-anchor': 'end' }, format(v)));
  }
  const n = Math.max(labels.length, 1);
  const xStep = band ? plotW / n : (n > 1 ? plotW / (n - 1) : 0);
  const x = (i) => (band ? M.left + xStep * i + xStep / 2 : M.left + (n > 1 ? xStep * i : plotW / 2));
  // At most ~8 labels under the axis, evenly spaced and ending with the
  // last one; the table has all of them.
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((l, i) => {
    if ((labels.length - 1 - i) % every !== 0) return;
    g.append(svg('text', { class: 'tick', x: x(i), y: H - M.bottom + 14, 'text-anchor': 'middle' }, l));
  });
  g.append(svg('line', { class: 'axis', x1: M.left, x2: W - M.right, y1: y(0), y2: y(0) }));
  return { y, x, xStep, plotH, top };
}

function figure(opts, kind, draw) {
  const { title, labels = [], series = [], format = defaultFormat, labelHeader = 'Label', unit } = opts;
  const id = `chart${++uid}`;
  const desc = opts.desc || describe(labels, series, format);
  const empty = !labels.length || !series.some((s) => s.values.some(finite));
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-t`, 'aria-describedby': `${id}-d`,
    preserveAspectRatio: 'xMidYMid meet', class: `chart-svg chart-${kind}` },
  svg('title', { id: `${id}-t` }, title),
  svg('desc', { id: `${id}-d` }, desc));
  const g = svg('g');
  chart.append(g);
  if (empty) {
    g.append(svg('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No data in this range'));
  } else {
    draw(g);
  }
  return html('figure', { class: `chart ${kind}`, 'data-chart': title },
    html('figcaption', null, title, unit ? html('small', { class: 'muted' }, ` (${unit})`) : null),
    chart,
    legend(series, kind),
    dataTable(title, labels, series, format, labelHeader));
}

export function barChart(opts) {
  return figure(opts, 'bar', (g) => {
    const { labels, series, format = defaultFormat } = opts;
    const max = Math.max(0, ...series.flatMap((s) => s.values.filter(finite)));
    const { y, x, xStep } = frame(g, labels, max, format, true);
    const groupW = Math.min(xStep * 0.8, 90);
    const barW = groupW / series.length;
    series.forEach((s, si) => {
      s.values.forEach((v, i) => {
        if (!finite(v)) return;
        const x0 = x(i) - groupW / 2 + si * barW;
        const cls = s.classes?.[i] || (series.length > 1 || s.cls ? seriesClass(s, si) : '');
        const bar = svg('rect', { class: `bar ${cls}`.trim(), x: x0 + 0.5, y: y(v),
          width: Math.max(1, barW - 1), height: Math.max(0, y(0) - y(v)) },
        svg('title', null, `${labels[i]}, ${s.name}: ${format(v)}`));
        g.append(bar);
        if (labels.length <= 8 && series.length <= 2) {
          g.append(svg('text', { class: 'value', x: x0 + barW / 2, y: y(v) - 3, 'text-anchor': 'middle' }, format(v)));
        }
      });
    });
  });
}

export function lineChart(opts) {
  return figure(opts, 'line', (g) => {
    const { labels, series, format = defaultFormat } = opts;
    const max = Math.max(0, ...series.flatMap((s) => s.values.filter(finite)));
    const { y, x } = frame(g, labels, max, format, false);
    series.forEach((s, si) => {
      const cls = seriesClass(s, si);
      // One path per run of values without a gap.
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (!finite(v)) { pen = false; return; }
        d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
        pen = true;
      });
      if (d) g.append(svg('path', { class: `line ${cls}`, d: d.trim() }));
      s.values.forEach((v, i) => {
        if (!finite(v)) return;
        g.append(svg('circle', { class: `dot ${cls}`, cx: x(i), cy: y(v), r: 3 },
          svg('title', null, `${labels[i]}, ${s.name}: ${format(v)}`)));
      });
    });
  });
}
