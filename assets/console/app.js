// The console shell: sign-in, the session (refreshed before expiry, ended
// cleanly when the server ends it), the live socket, navigation filtered
// by the signed-in user's permissions, a hash router, and plugin panels.
// Each screen is a module whose mount(root, ctx, params) draws into root
// and returns a cleanup function; ctx is the same object plugin panels
// get (docs/PLUGINS.md "Console panels"), plus a few extras for our own.
import { StaffSession, ApiError } from '/js/api.js';
import { Socket } from '/js/ws.js';
import { h, clear, field, errorText, toast, dialog } from '/js/dom.js';

const session = new StaffSession();
const socket = new Socket({ token: () => session.token });
const app = document.getElementById('app');

// Screens: hash path, nav label, who sees it, and the module that draws it.
// `any` lists permissions of which one suffices.
const SCREENS = [
  { path: 'queues', label: 'Queues', group: 'Workspace', any: ['queries.handle', 'queries.manage'], load: () => import('./agent.js') },
  { path: 'search', label: 'Search', group: 'Workspace', any: ['queries.handle', 'queries.manage'], load: () => import('./search.js') },
  { path: 'inbox', label: 'Notifications', group: 'Workspace', any: [], load: () => import('./inbox.js') },
  { path: 'media', label: 'Media', group: 'Workspace', any: ['media.manage'], load: () => import('./media.js'),
    refused: 'The Media library needs the media.manage permission, which your role does not include.' },
  { path: 'sms', label: 'SMS', group: 'Workspace', any: ['sms.read'], load: () => import('./sms.js'),
    refused: 'The SMS screen needs the sms.read permission, which your role does not include.' },
  { path: 'whatsapp', label: 'WhatsApp', group: 'Workspace', any: ['whatsapp.read'], load: () => import('./whatsapp.js'),
    refused: 'The WhatsApp screen needs the whatsapp.read permission, which your role does not include.' },
  { path: 'calls', label: 'Calls', group: 'Workspace', any: ['voice.read'], load: () => import('./calls.js'),
    refused: 'The Calls screen needs the voice.read permission, which your role does not include.' },
  { path: 'dashboard', label: 'Dashboard', group: 'Admin', any: ['system.read'], load: () => import('./admin/dashboard.js') },
  { path: 'users', label: 'Users', group: 'Admin', any: ['users.manage'], load: () => import('./admin/users.js') },
  { path: 'roles', label: 'Roles', group: 'Admin', any: ['roles.manage'], load: () => import('./admin/roles.js') },
  { path: 'api-keys', label: 'API keys', group: 'Admin', any: ['api_keys.manage'], load: () => import('./admin/apikeys.js') },
  { path: 'plugins', label: 'Plugins', group: 'Admin', any: ['system.read'], load: () => import('./admin/plugins.js') },
  { path: 'jobs', label: 'Jobs', group: 'Admin', any: ['jobs.read'], load: () => import('./admin/jobs.js') },
  { path: 'audit', label: 'Audit log', group: 'Admin', any: ['audit.read'], load: () => import('./admin/audit.js') },
  { path: 'profile', label: 'My profile', group: 'Account', any: [], load: () => import('./profile.js'), hidden: true },
];

let panels = [];		// from GET /api/v1/console/panels
let cleanup = null;
let shell = null;		// {nav, main, status}
let mountSeq = 0;
let statusListener = null;

const allowed = (s) => s.any.length === 0 || s.any.some((p) => session.can(p));
const visibleScreens = () => SCREENS.filter(allowed);

function navigate(path) {
  if (location.hash === `#/${path}`) route();
  else location.hash = `#/${path}`;
}

// The context every screen and plugin panel receives.
function context() {
  return {
    api: session.api,
    user: session.user,
    can: (p) => session.can(p),
    subscribe: (room, fn) => socket.subscribe(room, fn),
    toast,
    navigate,
    // Ours, not part of the plugin contract:
    session, socket, h, dialog,
  };
}

/* ---------------------------------------------------------------- sign-in */

function renderLogin(notice) {
  stopScreen();
  shell = null;
  socket.stop();
  clear(app);
  app.removeAttribute('aria-busy');
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'login-error' });
  const btn = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'login card', 'aria-labelledby': 'login-title', on: { submit: async (e) => {
    e.preventDefault();
    btn.disabled = true;
    err.textContent = '';
    try {
      await session.login(user.value.trim(), pass.value);
    } catch (x) {
      err.textContent = x.status === 401 ? 'Wrong username or password.'
        : x.status === 429 ? 'Too many attempts. Wait a while and try again.' : errorText(x);
      btn.disabled = false;
      pass.select();
    }
  } } },
  h('h1', { id: 'login-title' }, 'Switchboard'),
  notice ? h('p', { class: 'notice', role: 'status', 'data-testid': 'login-notice' }, notice) : null,
  field('Username', user), field('Password', pass), err, btn,
  h('p', { class: 'muted' }, h('a', { href: '/docs' }, 'API reference'), ' · ', h('a', { href: '/donor' }, 'Donor support page')));
  app.append(h('main', { id: 'main', class: 'login-page' }, form));
  user.focus();
}

/* ------------------------------------------------------------------ shell */

async function renderShell() {
  clear(app);
  app.removeAttribute('aria-busy');
  try {
    panels = (await session.api.get('/api/v1/console/panels')).data || [];
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    panels = [];
  }
  const status = h('span', { class: 'ws-status', 'data-testid': 'ws-status', role: 'status', 'aria-live': 'polite' });
  const showStatus = () => {
    status.dataset.state = socket.status;
    status.textContent = socket.status === 'live' ? 'Live' : socket.status === 'connecting' ? 'Reconnecting…' : 'Offline';
  };
  if (statusListener) socket.removeEventListener('status', statusListener);
  statusListener = showStatus;
  socket.addEventListener('status', showStatus);
  showStatus();

  const bell = h('a', { href: '#/inbox', class: 'bell', 'data-testid': 'bell', 'aria-label': 'Notifications' },
    bellIcon(), h('span', { class: 'badge', 'data-testid': 'bell-count', hidden: true }));
  const nav = h('nav', { class: 'sidenav', 'aria-label': 'Main' });
  const main = h('main', { id: 'main', tabindex: '-1' });
  const menuBtn = h('button', { type: 'button', class: 'menu-toggle', 'aria-expanded': 'false', 'aria-controls': 'sidenav',
    on: { click: () => { const open = nav.classList.toggle('open'); menuBtn.setAttribute('aria-expanded', String(open)); } } }, 'Menu');
  nav.id = 'sidenav';
  const u = session.user;
  app.append(
    h('header', { class: 'topbar' }, menuBtn,
      h('a', { href: '#/', class: 'brand' }, 'Switchboard'), status,
      h('div', { class: 'spacer' }),
      bell,
      h('a', { href: '#/profile', class: 'who', 'data-testid': 'whoami' }, `${u.name || u.username} · ${u.role}`),
      h('button', { type: 'button', 'data-testid': 'sign-out', on: { click: () => session.logout() } }, 'Sign out')),
    h('div', { class: 'layout' }, nav, main));
  shell = { nav, main, bell };
  drawNav();
  socket.start();
  watchInbox(bell);
  route();
}

// An inline SVG (no icon font, no emoji font needed).
function bellIcon() {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '20');
  svg.setAttribute('height', '20');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', 'M12 22a2.5 2.5 0 0 0 2.5-2.5h-5A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1z');
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

function drawNav() {
  const { nav } = shell;
  clear(nav);
  const groups = new Map();
  for (const s of visibleScreens()) {
    if (s.hidden) continue;
    if (!groups.has(s.group)) groups.set(s.group, []);
    groups.get(s.group).push(h('li', null, h('a', { href: `#/${s.path}`, 'data-path': s.path }, s.label)));
  }
  for (const p of panels) {
    if (!groups.has('Plugins')) groups.set('Plugins', []);
    const path = `plugin/${p.plugin}/${p.id}`;
    groups.get('Plugins').push(h('li', null, h('a', { href: `#/${path}`, 'data-path': path }, p.label)));
  }
  for (const [g, items] of groups) nav.append(h('h2', null, g), h('ul', null, items));
  nav.append(h('h2', null, 'Help'), h('ul', null, h('li', null, h('a', { href: '/docs' }, 'API reference'))));
}

// The bell: unread count, kept live from user:{me}.
let inboxOff = null;
let inboxRefresh = null;
function watchInbox(bell) {
  const badge = bell.querySelector('.badge');
  const refresh = async () => {
    try {
      const r = await session.api.get('/api/v1/notifications?unread=true&limit=200');
      const n = r.data.length;
      badge.hidden = n === 0;
      badge.textContent = n >= 200 ? '200+' : String(n);
      bell.setAttribute('aria-label', n ? `Notifications, ${badge.textContent} unread` : 'Notifications');
    } catch { badge.hidden = true; }
  };
  inboxOff?.();
  inboxOff = socket.subscribe(`user:${session.user.id}`, (f) => {
    if (f.event.startsWith('notifications.')) refresh();
  });
  window.removeEventListener('sb:inbox-changed', inboxRefresh);
  inboxRefresh = refresh;
  window.addEventListener('sb:inbox-changed', refresh);
  refresh();
}

/* ----------------------------------------------------------------- router */

function stopScreen() {
  if (typeof cleanup === 'function') {
    try { cleanup(); } catch (e) { console.error(e); }
  }
  cleanup = null;
}

async function route() {
  if (!shell) return;
  const path = location.hash.replace(/^#\/?/, '');
  const [head, ...rest] = path.split('/');
  const seq = ++mountSeq;
  stopScreen();
  const { main, nav } = shell;
  nav.classList.remove('open');
  for (const a of nav.querySelectorAll('a[data-path]')) {
    if (a.dataset.path === path || a.dataset.path === head || (head === 'plugin' && a.dataset.path === path)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  const root = h('div', { class: 'screen' });
  main.append(root);
  try {
    if (head === 'plugin') {
      const p = panels.find((x) => x.plugin === rest[0] && x.id === rest[1]);
      if (!p) return notFound(root);
      document.title = `${p.label} · Switchboard`;
      const mod = await import(p.script);
      if (seq !== mountSeq) return;
      cleanup = mod.default(root, context());
      return;
    }
    let screen = SCREENS.find((s) => s.path === head);
    if (!head) screen = visibleScreens().find((s) => !s.hidden);
    if (head === 'query') screen = SCREENS[0];
    if (screen && !allowed(screen) && screen.refused) return notAllowed(root, screen);
    if (!screen || !allowed(screen)) return notFound(root);
    document.title = `${screen.label} · Switchboard`;
    const mod = await screen.load();
    if (seq !== mountSeq) return;
    cleanup = mod.mount(root, context(), { head, rest });
  } catch (e) {
    console.error(e);
    clear(root).append(h('p', { class: 'error', role: 'alert' }, `This screen failed to load: ${errorText(e)}`));
  }
  if (document.activeElement === document.body) main.focus({ preventScroll: true });
}

// A screen that exists but not for this role, said plainly.
function notAllowed(root, screen) {
  document.title = `${screen.label} · Switchboard`;
  root.append(h('h1', null, 'Not allowed'),
    h('p', { 'data-testid': 'not-allowed' }, `${screen.refused} Ask an administrator if you need it.`));
}

function notFound(root) {
  root.append(h('h1', null, 'Not here'),
    h('p', null, 'This page does not exist, or your role does not include it.'));
}

/* ------------------------------------------------------------------ start */

session.addEventListener('token', (e) => socket.reauth(e.detail));
// The server ends a socket whose credentials died (logout elsewhere, a
// password reset, deactivation): ask the API whether the session lives.
socket.addEventListener('error', (e) => {
  if (e.detail?.code === 'UNAUTHENTICATED' && session.signedIn) session.reloadUser().catch(() => {});
});
session.addEventListener('change', () => (session.signedIn ? renderShell() : renderLogin('You are signed out.')));
session.addEventListener('expired', () => renderLogin('Your session has expired. Sign in again.'));
window.addEventListener('hashchange', route);

if (session.signedIn) {
  // A reload: the stored tokens may have been revoked meanwhile.
  session.reloadUser().then(renderShell, (e) => {
    if (e.status === 401) return;	// 'expired' already drew the login
    renderShell();
  });
} else {
  renderLogin();
}
