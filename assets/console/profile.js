// My profile (#/profile): my avatar (POST /api/v1/users/me/avatar through
// the media picker, /js/media.js; the media plugin serves it), name and
// email (PATCH /api/v1/users/me), a new
// password (PUT /api/v1/users/me/password: ends my other sessions), and
// which notifications reach me how (GET/PUT /api/v1/notifications/preferences).
import { h, clear, field, errorText } from '/js/dom.js';
import { mediaPicker } from '/js/media.js';

const EVENT_LABELS = {
  'concierge.query.created': 'A donor opens a query',
  'concierge.query.transferred': 'A query is transferred to me',
  'concierge.reminder': 'A query waits too long (reminder)',
  'concierge.message.created': 'A donor writes on my query',
  'calls.request.created': 'A donor asks for a call',
  'jobs.dead': 'A background job failed for good',
};
const CHANNELS = [['inbox', 'In-app'], ['push', 'Push'], ['email', 'Email']];
// Channels an event is never sent on (the server refuses to turn them on).
const NEVER = { 'jobs.dead': ['push', 'inbox'] };

// Field errors of an ApiError next to their controls; the rest in `general`.
function showErrors(e, controls, general) {
  let placed = false;
  for (const fe of e.errors || []) {
    const c = controls[fe.field];
    if (!c) continue;
    c.setAttribute('aria-invalid', 'true');
    const hint = h('small', { class: 'error field-error', id: `${c.id}-err` }, fe.message || fe.code);
    c.after(hint);
    c.setAttribute('aria-describedby', [c.getAttribute('aria-describedby'), hint.id].filter(Boolean).join(' '));
    placed = true;
  }
  general.textContent = placed ? e.message || 'Check the marked fields.' : errorText(e);
}

function resetErrors(form, general) {
  general.textContent = '';
  for (const el of form.querySelectorAll('.field-error')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && !x.endsWith('-err'));
    if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
    else el.removeAttribute('aria-describedby');
  }
}

export function mount(root, ctx) {
  const { api } = ctx;
  let alive = true;
  const u = ctx.user;

  /* -- my avatar -- */
  const avatarImg = h('img', { class: 'avatar-large', alt: 'My avatar', width: '128', height: '128',
    'data-testid': 'avatar-image', hidden: true });
  const avatarNone = h('p', { class: 'muted', 'data-testid': 'avatar-none' }, 'No avatar yet.');
  let avatarUrl = null;
  async function showAvatar() {
    let res;
    try {
      res = await fetch(`/api/v1/users/${u.id}/avatar`, { credentials: 'omit', cache: 'no-store',
        headers: { Authorization: `Bearer ${ctx.session?.token}` } });
    } catch { return; }
    if (!alive) return;
    if (!res.ok) {
      avatarImg.hidden = true;
      avatarNone.hidden = false;
      avatarNone.textContent = res.status === 404 ? 'No avatar yet.' : 'Your avatar did not load.';
      return;
    }
    const blob = await res.blob();
    if (!alive) return;
    if (avatarUrl) URL.revokeObjectURL(avatarUrl);
    avatarUrl = URL.createObjectURL(blob);
    avatarImg.src = avatarUrl;
    avatarImg.dataset.sha256 = (res.headers.get('etag') || '').replaceAll('"', '');
    avatarImg.hidden = false;
    avatarNone.hidden = true;
  }
  const picker = mediaPicker({ url: '/api/v1/users/me/avatar', field: 'avatar', purpose: 'avatar',
    label: 'Upload a new avatar', token: () => ctx.session?.token,
    onResult: () => { ctx.toast('Your avatar is saved'); showAvatar(); } });
  const avatarCard = h('section', { class: 'card profile-card', 'aria-labelledby': 'avatar-title', 'data-testid': 'avatar-card' },
    h('h2', { id: 'avatar-title' }, 'Avatar'),
    h('div', { class: 'row' }, avatarImg, avatarNone),
    h('p', { class: 'muted' }, 'Stored as a 256 × 256 picture without its photo metadata (camera, location).'),
    picker.el);

  /* -- my details -- */
  const name = h('input', { name: 'name', autocomplete: 'name', maxlength: '200', value: u.name || '' });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'email', maxlength: '254', value: u.email || '' });
  const detailsErr = h('p', { class: 'error', role: 'alert' });
  const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Save details');
  const details = h('form', { class: 'card profile-card', 'aria-labelledby': 'details-title', on: { submit: saveDetails } },
    h('h2', { id: 'details-title' }, 'My details'),
    h('p', { class: 'muted' }, `Signed in as ${u.username} (${u.role}).`),
    field('Name', name), field('Email', email, 'Used for email notifications.'), detailsErr, saveBtn);

  async function saveDetails(e) {
    e.preventDefault();
    resetErrors(details, detailsErr);
    saveBtn.disabled = true;
    try {
      const body = { name: name.value.trim(), email: email.value.trim() || null };
      const me = await api.patch('/api/v1/users/me', body);
      if (!alive) return;
      name.value = me?.name ?? body.name;
      email.value = me?.email ?? '';
      try {
        const fresh = await ctx.session?.reloadUser?.();
        const who = document.querySelector('[data-testid=whoami]');
        if (fresh && who) who.textContent = `${fresh.name || fresh.username} · ${fresh.role}`;
      } catch { /* the next sign-in shows it */ }
      ctx.toast('Your details are saved');
    } catch (x) {
      if (alive) showErrors(x, { name, email }, detailsErr);
    } finally {
      if (alive) saveBtn.disabled = false;
    }
  }

  /* -- password -- */
  const current = h('input', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: '10' });
  const again = h('input', { name: 'confirm_password', type: 'password', autocomplete: 'new-password', required: true });
  const pwErr = h('p', { class: 'error', role: 'alert' });
  const pwBtn = h('button', { type: 'submit', class: 'primary' }, 'Change password');
  const pwForm = h('form', { class: 'card profile-card', 'aria-labelledby': 'pw-title', on: { submit: changePassword } },
    h('h2', { id: 'pw-title' }, 'Password'),
    field('Current password', current),
    field('New password', next, 'At least 10 characters, not like your username. Your other sessions end when it changes.'),
    field('Repeat the new password', again), pwErr, pwBtn);

  async function changePassword(e) {
    e.preventDefault();
    resetErrors(pwForm, pwErr);
    if (next.value !== again.value) {
      showErrors({ message: 'The two new passwords differ.', errors: [{ field: 'confirm_password', message: 'does not match the new password' }] },
        { confirm_password: again }, pwErr);
      again.focus();
      return;
    }
    pwBtn.disabled = true;
    try {
      await api.put('/api/v1/users/me/password', { current_password: current.value, new_password: next.value });
      if (!alive) return;
      current.value = next.value = again.value = '';
      ctx.toast('Password changed; your other sessions were signed out');
    } catch (x) {
      if (alive) showErrors(x, { current_password: current, new_password: next }, pwErr);
    } finally {
      if (alive) pwBtn.disabled = false;
    }
  }

  /* -- notification preferences -- */
  const prefsBox = h('div', { class: 'prefs' }, h('p', { class: 'loading' }, 'Loading your preferences…'));
  const prefsErr = h('p', { class: 'error', role: 'alert' });
  const prefsBtn = h('button', { type: 'submit', class: 'primary', disabled: true }, 'Save preferences');
  const prefsForm = h('form', { class: 'card profile-card', 'aria-labelledby': 'prefs-title', on: { submit: savePrefs } },
    h('h2', { id: 'prefs-title' }, 'Notifications'),
    h('p', { class: 'muted' }, 'Which events reach you, and how. Push needs the mobile app; email needs an address above.'),
    prefsBox, prefsErr, prefsBtn);
  let loaded = null;		// {event: {channel: bool}} as the server has it
  const boxes = new Map();	// `${event}.${channel}` -> checkbox

  function drawPrefs(prefs) {
    loaded = prefs;
    boxes.clear();
    const events = Object.keys(prefs).sort((a, b) => (EVENT_LABELS[a] ? 0 : 1) - (EVENT_LABELS[b] ? 0 : 1));
    const tbody = h('tbody');
    for (const ev of events) {
      const label = EVENT_LABELS[ev] || ev;
      tbody.append(h('tr', { 'data-event': ev },
        h('th', { scope: 'row' }, label, h('small', { class: 'hint' }, ev)),
        CHANNELS.map(([ch, chLabel]) => {
          if (!(ch in prefs[ev])) return h('td', null, '—');
          const never = (NEVER[ev] || []).includes(ch);
          const box = h('input', { type: 'checkbox', name: `${ev}.${ch}`, checked: !!prefs[ev][ch],
            disabled: never && !prefs[ev][ch], 'aria-label': `${label}: ${chLabel}` });
          boxes.set(`${ev}.${ch}`, box);
          return h('td', null, box);
        })));
    }
    clear(prefsBox).append(h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'preferences' },
      h('caption', { class: 'sr-only' }, 'Notification channels per event'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Event'),
        CHANNELS.map(([, l]) => h('th', { scope: 'col' }, l)))),
      tbody)));
    prefsBtn.disabled = false;
  }

  async function loadPrefs() {
    try {
      const r = await api.get('/api/v1/notifications/preferences');
      if (alive) drawPrefs(r.preferences || {});
    } catch (e) {
      if (!alive) return;
      clear(prefsBox);
      prefsErr.textContent = e.status === 404 ? 'Notifications are not available on this server.'
        : `Your preferences did not load: ${errorText(e)}`;
    }
  }

  async function savePrefs(e) {
    e.preventDefault();
    if (!loaded) return;
    prefsErr.textContent = '';
    // Only what changed: the rest keeps its (default or stored) value.
    const changes = {};
    for (const [key, box] of boxes) {
      const [ev, ch] = [key.slice(0, key.lastIndexOf('.')), key.slice(key.lastIndexOf('.') + 1)];
      if (box.checked !== !!loaded[ev][ch]) (changes[ev] ||= {})[ch] = box.checked;
    }
    if (!Object.keys(changes).length) { ctx.toast('Nothing changed'); return; }
    prefsBtn.disabled = true;
    try {
      const r = await api.put('/api/v1/notifications/preferences', { preferences: changes });
      if (!alive) return;
      drawPrefs(r.preferences || {});
      ctx.toast('Notification preferences saved');
    } catch (x) {
      if (alive) prefsErr.textContent = errorText(x);
    } finally {
      if (alive) prefsBtn.disabled = false;
    }
  }

  root.append(h('section', { class: 'profile-screen', 'aria-labelledby': 'profile-title' },
    h('h1', { id: 'profile-title' }, 'My profile'),
    h('div', { class: 'grid profile-grid' }, avatarCard, details, pwForm), prefsForm));
  loadPrefs();
  showAvatar();

  return () => {
    alive = false;
    if (avatarUrl) URL.revokeObjectURL(avatarUrl);
  };
}
