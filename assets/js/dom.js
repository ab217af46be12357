// Small DOM helpers shared by the console, the donor page and plugin
// panels.  No framework: h() builds elements, text is always set as text
// (never parsed as HTML), so nothing a donor types can become markup.

// h('button', {class: 'primary', on: {click: fn}, 'aria-label': 'x'}, 'Save')
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'on') {
        for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'text') {
        el.textContent = v;
      } else if (k === 'dataset') {
        Object.assign(el.dataset, v);
      } else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden') {
        el[k] = v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let uid = 0;
// A labelled form control: field('Username', h('input', {name: 'username'}))
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++uid}`;
  const hintEl = hint ? h('small', { id: `${control.id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// The error envelope as one readable line (with field errors).
export function errorText(err) {
  if (!err) return 'Something went wrong';
  const fields = (err.errors || []).map((e) => `${e.field}: ${e.message}`).join('; ');
  return fields ? `${err.message} (${fields})` : (err.message || String(err));
}

// Transient status messages, announced to screen readers.
export function toast(message, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = h('div', { class: `toast ${kind}` }, message);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// A modal dialog (native <dialog>: focus trap and Escape for free).
// body: element(s); actions: [{label, class, onClick(close) -> bool|Promise}]
export function dialog(title, body, actions = []) {
  const d = h('dialog', { class: 'modal', 'aria-labelledby': `dlg${++uid}` });
  const close = () => { d.close(); d.remove(); };
  const buttons = actions.map((a) => h('button', {
    type: 'button', class: a.class || '',
    on: { click: async () => { if ((await a.onClick?.(close)) !== false) close(); } },
  }, a.label));
  d.append(h('h2', { id: `dlg${uid}` }, title), h('div', { class: 'modal-body' }, body),
    h('div', { class: 'modal-actions' }, buttons,
      h('button', { type: 'button', on: { click: close } }, 'Close')));
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
  return { el: d, close };
}

// A failed form submission: the message in alertEl, and each field error
// of the envelope beside its control (aria-invalid), cleared on the next
// try.  "scopes[2]" is the scopes control; a name several controls share
// (a group of checkboxes) keeps its error in the message only.
export function showErrors(form, alertEl, err) {
  for (const old of form.querySelectorAll('.field-error')) old.remove();
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
  alertEl.textContent = err ? errorText(err) : '';
  if (!err) return;
  for (const e of err.errors || []) {
    const name = String(e.field || '').replace(/\[\d+\]$/, '');
    const ctls = name ? form.querySelectorAll(`[name="${CSS.escape(name)}"]`) : [];
    if (ctls.length !== 1) continue;
    const ctl = ctls[0];
    ctl.setAttribute('aria-invalid', 'true');
    (ctl.closest('.field, .check') || ctl.parentElement).append(h('small', { class: 'field-error' }, e.message));
  }
}

// A destructive step confirmed in a dialog: run() does it; an error it
// throws stays in the dialog (role=alert) and the dialog stays open.
export function confirmAction(title, text, label, run, alertAttrs = {}) {
  const alertEl = h('p', { class: 'error', role: 'alert', ...alertAttrs });
  return dialog(title, [h('p', null, text), alertEl], [{ label, class: 'danger', onClick: async () => {
    alertEl.textContent = '';
    try {
      await run();
      return true;
    } catch (err) {
      alertEl.textContent = errorText(err);
      return false;
    }
  } }]);
}
