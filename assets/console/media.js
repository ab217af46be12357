// The Media library (#/media, media.manage): the media plugin's items,
// newest first (GET /api/v1/media, filtered by purpose, a page at a time),
// each with its thumbnail (or a type icon), a preview through its signed
// URL (images, audio, video; PDFs open in a new tab), an upload through
// the media picker (/js/media.js) and a delete with confirmation.
import { h, clear, errorText, fmtTime, confirmAction, dialog } from '/js/dom.js';
import { qs } from '/js/api.js';
import { mediaPicker, PURPOSES, fmtBytes } from '/js/media.js';

const kind = (m) => (m.mime_type || '').split('/')[0];

// A type icon: an inline SVG with the kind's initial (no icon font).
function typeIcon(m) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 48 48');
  svg.setAttribute('width', '48');
  svg.setAttribute('height', '48');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'type-icon');
  const rect = document.createElementNS(NS, 'rect');
  for (const [k, v] of Object.entries({ x: 6, y: 2, width: 36, height: 44, rx: 4 })) rect.setAttribute(k, String(v));
  const text = document.createElementNS(NS, 'text');
  for (const [k, v] of Object.entries({ x: 24, y: 30, 'text-anchor': 'middle' })) text.setAttribute(k, String(v));
  const k = kind(m);
  text.textContent = m.mime_type === 'application/pdf' ? 'PDF' : k === 'audio' ? '♪' : k === 'video' ? '▶'
    : k === 'image' ? 'IMG' : 'DOC';
  svg.append(rect, text);
  return svg;
}

function thumb(m) {
  if (m.thumbnail_url) return h('img', { src: m.thumbnail_url, alt: '', width: '48', height: '48', class: 'thumb', loading: 'lazy' });
  if (kind(m) === 'image' && m.url) return h('img', { src: m.url, alt: '', width: '48', height: '48', class: 'thumb', loading: 'lazy' });
  return typeIcon(m);
}

function previewBody(m) {
  const k = kind(m);
  if (!m.url) return h('p', null, 'No link to this file could be made (the server has no signing key).');
  if (k === 'image') return h('img', { src: m.url, alt: m.filename, class: 'preview-media' });
  if (k === 'audio') return h('audio', { src: m.url, controls: true, preload: 'metadata', 'aria-label': m.filename });
  if (k === 'video') return h('video', { src: m.url, controls: true, preload: 'metadata', class: 'preview-media', 'aria-label': m.filename });
  return h('p', null, h('a', { href: m.url, target: '_blank', rel: 'noopener' },
    m.mime_type === 'application/pdf' ? `Open ${m.filename} (PDF) in a new tab` : `Download ${m.filename}`));
}

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  let cursor = null;

  const purposeSel = h('select', { id: 'media-purpose-filter', name: 'purpose' },
    h('option', { value: '' }, 'All purposes'),
    Object.entries(PURPOSES).map(([k, v]) => h('option', { value: k }, v.label)));
  const listErr = h('p', { class: 'error', role: 'alert' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true, on: { click: () => load(false) } }, 'Load more');
  const empty = h('p', { class: 'muted', hidden: true, 'data-testid': 'media-empty' }, 'No media items.');
  const table = h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'media-list' },
    h('caption', { class: 'sr-only' }, 'Media items, newest first'),
    h('thead', null, h('tr', null, ['Preview', 'File', 'Type', 'Size', 'Purpose', 'Uploaded', 'Actions']
      .map((t) => h('th', { scope: 'col' }, t)))),
    tbody));

  const upPurpose = h('select', { id: 'media-upload-purpose', name: 'upload_purpose',
    on: { change: () => picker.setPurpose(upPurpose.value) } },
  Object.entries(PURPOSES).filter(([k]) => k !== 'avatar').map(([k, v]) => h('option', { value: k }, v.label)));
  const picker = mediaPicker({ purpose: 'image', label: 'Upload a file', token: () => ctx.session?.token,
    onResult: (item) => { ctx.toast(`${item.filename} uploaded`); load(true); } });

  const listTitle = h('h2', { id: 'media-list-title', tabindex: '-1' }, 'Library');

  function row(m) {
    const name = m.filename || `#${m.id}`;
    const preview = h('button', { type: 'button', 'aria-label': `Preview ${name}`, class: 'thumb-button',
      on: { click: () => dialog(name, [previewBody(m), h('p', { class: 'muted' }, `${m.mime_type} · ${fmtBytes(m.size)}`
        + (m.width ? ` · ${m.width} × ${m.height}` : ''))]) } }, thumb(m));
    const del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${name}`, on: { click: () => {
      const { el } = confirmAction('Delete this file?', `${name} will be deleted for good: the conversations and profiles that show it `
        + 'lose it too.', 'Delete', async () => {
        await api.del(`/api/v1/media/${m.id}`);
        ctx.toast(`${name} deleted`);
        await load(true);
      });
      // Deleted, the row and this button are gone: the closed dialog
      // would leave focus nowhere, so it goes to the list.
      el.addEventListener('close', () => { if (!tr.isConnected) listTitle.focus(); });
    } } }, 'Delete');
    const tr = h('tr', { 'data-media-id': String(m.id) },
      h('td', null, preview),
      h('td', null, name),
      h('td', null, m.mime_type),
      h('td', null, fmtBytes(m.size)),
      h('td', null, m.purpose),
      h('td', null, fmtTime(m.created_at)),
      h('td', null, del));
    return tr;
  }

  async function load(reset) {
    listErr.textContent = '';
    if (reset) cursor = null;
    try {
      const r = await api.get(`/api/v1/media${qs({ purpose: purposeSel.value, cursor, limit: 50 })}`);
      if (!alive) return;
      if (reset) clear(tbody);
      for (const m of r.data || []) tbody.append(row(m));
      cursor = r.next_cursor;
      more.hidden = !cursor;
      empty.hidden = tbody.childElementCount > 0;
    } catch (e) {
      if (!alive) return;
      listErr.textContent = e.status === 404 ? 'Media is not available on this server (the media plugin is not loaded).'
        : `The media items did not load: ${errorText(e)}`;
    }
  }
  purposeSel.addEventListener('change', () => load(true));

  root.append(h('section', { class: 'media-screen', 'aria-labelledby': 'media-title' },
    h('h1', { id: 'media-title' }, 'Media'),
    h('section', { class: 'card', 'aria-labelledby': 'media-upload-title' },
      h('h2', { id: 'media-upload-title' }, 'Upload'),
      h('div', { class: 'field' }, h('label', { for: upPurpose.id }, 'Purpose'), upPurpose),
      picker.el),
    h('section', { 'aria-labelledby': 'media-list-title' },
      listTitle,
      h('div', { class: 'row' }, h('div', { class: 'field' }, h('label', { for: purposeSel.id }, 'Show'), purposeSel)),
      listErr, empty, table, more)));
  load(true);
  return () => { alive = false; };
}
