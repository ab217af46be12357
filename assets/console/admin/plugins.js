// Plugins (system.read): GET /api/v1/plugins as a table (state, version,
// ABI, routes, permissions, events, dependencies), then one <details>
// per plugin with its routes, events, console panels and configuration
// (secrets already redacted by the server).
import { h, clear, errorText } from '/js/dom.js';

function statePill(p) {
  const cls = p.state === 'ready' ? 'ok' : p.state === 'failed' ? 'bad' : 'warn';
  return h('span', { class: `pill ${cls}`, 'data-testid': 'plugin-state' }, p.state);
}

const list = (items, empty = '—') => (items?.length
  ? h('div', { class: 'perm-list' }, items.map((x) => h('code', null, x))) : h('span', { class: 'muted' }, empty));

export function mount(root, ctx) {
  let alive = true;
  const status = h('p', { class: 'status-line error', role: 'alert' });
  const tbody = h('tbody');
  const details = h('div');
  const refresh = h('button', { type: 'button', on: { click: () => load() } }, 'Refresh');

  root.append(h('div', { class: 'admin plugins' },
    h('div', { class: 'admin-head' }, h('h1', null, 'Plugins'), h('div', { class: 'actions' }, refresh)),
    status,
    h('section', { class: 'admin-section', 'aria-label': 'Loaded plugins' },
      h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Loaded plugins' },
        h('thead', null, h('tr', null, ['Plugin', 'Version', 'ABI', 'State', 'Routes', 'Permissions', 'Events', 'Depends on']
          .map((t) => h('th', { scope: 'col' }, t)))),
        tbody))),
    h('section', { class: 'admin-section', 'aria-labelledby': 'plugin-details-title' },
      h('h2', { id: 'plugin-details-title' }, 'Details'), details)));

  function row(p) {
    return h('tr', { 'data-plugin': p.name },
      h('th', { scope: 'row' }, h('div', null, p.name), p.id ? h('small', { class: 'hint' }, p.id) : null,
        p.summary ? h('small', { class: 'hint' }, p.summary) : null),
      h('td', null, p.version || '—'),
      h('td', null, p.abi || '—'),
      h('td', null, statePill(p), p.error ? h('div', { class: 'error-text', 'data-testid': 'plugin-error' }, p.error) : null),
      h('td', { class: 'num' }, String(p.routes?.length ?? 0)),
      h('td', null, list(p.permissions)),
      h('td', null, list((p.events || []).map((e) => (typeof e === 'string' ? e : e.name)))),
      h('td', null, list(p.depends)));
  }

  function detail(p) {
    const cfg = Object.entries(p.config || {});
    return h('details', { class: 'plugin', 'data-plugin': p.name },
      h('summary', null, `${p.name} `, statePill(p), ` ${p.routes?.length ?? 0} routes`),
      p.error ? h('p', { class: 'error-text' }, p.error) : null,
      h('h3', null, 'Routes'),
      p.routes?.length ? h('div', { class: 'table-wrap' }, h('table', { 'aria-label': `Routes of ${p.name}` },
        h('thead', null, h('tr', null, ['Method', 'Path', 'Access', 'Summary'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, p.routes.map((r) => h('tr', null,
          h('td', null, h('code', null, r.method)),
          h('th', { scope: 'row' }, h('code', null, r.path)),
          h('td', null, r.permission ? h('code', null, r.permission) : r.access || (r.public ? 'public' : '')),
          h('td', null, r.summary || '')))))) : h('p', { class: 'muted' }, 'No routes.'),
      h('h3', null, 'Events'),
      p.events?.length ? h('ul', null, p.events.map((e) => (typeof e === 'string' ? h('li', null, h('code', null, e))
        : h('li', null, h('code', null, e.name), e.description ? ` — ${e.description}` : '')))) : h('p', { class: 'muted' }, 'No events declared.'),
      p.console_panels?.length ? [h('h3', null, 'Console panels'), h('ul', null, p.console_panels.map((c) =>
        h('li', null, c.label, ' ', h('code', null, c.script), c.permission ? [' (', h('code', null, c.permission), ')'] : '')))] : null,
      h('h3', null, 'Configuration'),
      cfg.length ? h('div', { class: 'table-wrap' }, h('table', { 'aria-label': `Configuration of ${p.name}` },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'))),
        h('tbody', null, cfg.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, h('code', null, k)),
          h('td', null, v === null ? h('span', { class: 'muted' }, 'not set') : h('code', null, String(v)))))))) : h('p', { class: 'muted' }, 'No configuration keys.'),
      h('p', { class: 'muted' }, p.required ? 'Required: the server does not start without it. ' : '',
        p.requests !== undefined ? `${p.requests} requests handled by this worker since it started.` : ''));
  }

  async function load() {
    status.textContent = '';
    refresh.disabled = true;
    try {
      const r = await ctx.api.get('/api/v1/plugins');
      if (!alive) return;
      clear(tbody);
      clear(details);
      for (const p of r.data) {
        tbody.append(row(p));
        details.append(detail(p));
      }
    } catch (err) {
      if (alive) status.textContent = `Cannot load the plugins: ${errorText(err)}`;
    } finally {
      refresh.disabled = false;
    }
  }

  load();
  return () => { alive = false; };
}
