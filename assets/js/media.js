// The media picker/uploader: a labelled file input with a drop zone, hints
// of what the server accepts for a purpose, an upload progress bar, the
// server's error envelope shown to the person, and a callback with what
// the server answered.  The profile avatar uses it now, the Media library
// and (later) the WhatsApp composer too.  No framework: mediaPicker()
// returns an element and a small handle.
//
//   const p = mediaPicker({ label: 'Upload a file', purpose: 'image',
//     token: () => session.token, onResult: (item) => ... });
//   parent.append(p.el);
//
// Options: url (default POST /api/v1/media/upload), field (the file's
// form field, default `file`), fields (more form fields: {purpose} is
// added for /api/v1/media/upload), purpose (the hints; p.setPurpose()
// changes it), label, token (a function: the current access token),
// onResult(body) after a 2xx, onError(ApiError).
//
// The hints mirror the media plugin's defaults (API.md "Media"); the
// server decides on the bytes, so a file the hints pass may still be
// refused, and the server's answer is what the person sees.
import { h, errorText } from '/js/dom.js';
import { ApiError } from '/js/api.js';

const MB = 1024 * 1024;
export const PURPOSES = {
  image: { label: 'Image', accept: 'image/jpeg,image/png,image/webp', types: 'JPEG, PNG or WebP', max: 5 * MB },
  audio: { label: 'Audio', accept: 'audio/aac,audio/amr,audio/mpeg,audio/mp4,audio/ogg,.aac,.amr,.mp3,.m4a,.ogg,.opus',
    types: 'AAC, AMR, MP3, M4A or Ogg Opus', max: 16 * MB },
  video: { label: 'Video', accept: 'video/mp4,video/3gpp', types: 'MP4 or 3GP', max: 16 * MB },
  document: { label: 'Document', accept: '.pdf,.txt,.doc,.docx,.xls,.xlsx,.ppt,.pptx,application/pdf,text/plain',
    types: 'PDF, text or Office', max: 100 * MB },
  sticker: { label: 'Sticker', accept: 'image/webp', types: 'WebP', max: 512000 },
  avatar: { label: 'Avatar', accept: 'image/jpeg,image/png,image/webp,image/gif', types: 'JPEG, PNG, WebP or GIF',
    max: 5 * MB },
};

export function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < MB) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / MB).toFixed(n < 10 * MB ? 1 : 0)} MB`;
}

const hintText = (p) => (p ? `${p.types}, up to ${fmtBytes(p.max)}.` : 'Any file the server accepts.');

// A type the accept list names (by MIME type or extension); an empty
// type (the browser does not know) defers to the server.
function accepted(file, accept) {
  if (!accept) return true;
  const name = file.name.toLowerCase();
  return accept.split(',').some((a) => (a.startsWith('.') ? name.endsWith(a) : file.type === a || file.type === ''));
}

// One upload with XMLHttpRequest (fetch has no upload progress):
// resolves to the JSON body of a 2xx, rejects with an ApiError.
export function uploadFile({ url, form, token, onProgress, signal }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Accept', 'application/json');
    const t = typeof token === 'function' ? token() : token;
    if (t) xhr.setRequestHeader('Authorization', `Bearer ${t}`);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress?.(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, { message: 'The server cannot be reached' })));
    xhr.addEventListener('abort', () => reject(new ApiError(0, { message: 'The upload was cancelled' })));
    signal?.addEventListener('abort', () => xhr.abort());
    xhr.send(form);
  });
}

let uid = 0;
export function mediaPicker(opts) {
  const id = `mp${++uid}`;
  const url = opts.url || '/api/v1/media/upload';
  const fieldName = opts.field || 'file';
  let purpose = opts.purpose || null;
  let busy = false;
  let xhrAbort = null;

  const input = h('input', { type: 'file', id: `${id}-input`, name: fieldName, 'aria-describedby': `${id}-hint` });
  const hint = h('small', { id: `${id}-hint`, class: 'hint' });
  const progress = h('progress', { max: '100', value: '0', id: `${id}-progress`, 'aria-label': 'Upload progress',
    'data-testid': 'upload-progress', hidden: true });
  const status = h('span', { class: 'muted upload-status', role: 'status', 'aria-live': 'polite',
    'data-testid': 'upload-status' });
  const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'upload-error' });
  const cancel = h('button', { type: 'button', hidden: true, on: { click: () => xhrAbort?.abort() } }, 'Cancel upload');
  const zone = h('div', { class: 'dropzone', 'data-testid': 'dropzone' },
    h('label', { for: input.id }, opts.label || 'Choose a file'),
    input,
    h('span', { class: 'muted', 'aria-hidden': 'true' }, 'or drop a file here'),
    hint);
  const el = h('div', { class: 'media-picker' }, zone, h('div', { class: 'row upload-row' }, progress, status, cancel), err);

  function setPurpose(p) {
    purpose = p || null;
    const spec = PURPOSES[purpose];
    input.accept = spec ? spec.accept : '';
    hint.textContent = hintText(spec);
  }
  setPurpose(purpose);

  async function send(file) {
    if (busy || !file) return;
    err.textContent = '';
    const spec = PURPOSES[purpose];
    if (spec && file.size > spec.max) {
      err.textContent = `${file.name} is ${fmtBytes(file.size)}; at most ${fmtBytes(spec.max)} for ${spec.label.toLowerCase()}.`;
      return;
    }
    if (spec && !accepted(file, spec.accept)) {
      err.textContent = `${file.name} is not a type accepted here (${spec.types}).`;
      return;
    }
    const form = new FormData();
    for (const [k, v] of Object.entries(opts.fields || {})) form.append(k, v);
    if (purpose && url === '/api/v1/media/upload' && !(opts.fields && 'purpose' in opts.fields)) form.append('purpose', purpose);
    form.append(fieldName, file, file.name);
    busy = true;
    input.disabled = true;
    el.dataset.state = 'uploading';
    progress.hidden = false;
    progress.value = 0;
    cancel.hidden = false;
    status.textContent = `Uploading ${file.name}…`;
    const ctl = new AbortController();
    xhrAbort = ctl;
    try {
      const body = await uploadFile({ url, form, token: opts.token, signal: ctl.signal,
        onProgress: (done, total) => {
          const pct = Math.floor((done * 100) / total);
          progress.value = pct;
          el.dataset.progress = String(pct);
          status.textContent = `Uploading ${file.name}: ${pct}%`;
        } });
      progress.value = 100;
      el.dataset.state = 'done';
      status.textContent = `${file.name} uploaded.`;
      opts.onResult?.(body, file);
    } catch (e) {
      el.dataset.state = 'error';
      status.textContent = '';
      // The envelope's message, and the field errors that add to it.
      const extra = (e.errors || []).map((x) => x.message).filter((m) => m && m !== e.message);
      const msg = e.message || errorText(e);
      err.textContent = `${file.name}: ${extra.length ? `${msg} (${extra.join('; ')})` : msg}`;
      opts.onError?.(e);
    } finally {
      busy = false;
      xhrAbort = null;
      input.disabled = false;
      input.value = '';
      cancel.hidden = true;
      progress.hidden = true;
    }
  }

  input.addEventListener('change', () => send(input.files[0]));
  for (const ev of ['dragenter', 'dragover']) {
    zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) zone.addEventListener(ev, () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    const files = e.dataTransfer?.files;
    if (files?.length > 1) {
      err.textContent = 'One file at a time.';
      return;
    }
    send(files?.[0]);
  });

  return { el, input, setPurpose, upload: send };
}
