// The public API (../shared/API.md) from the browser: fetch with the error
// envelope turned into ApiError, and the two kinds of session the pages
// keep: a staff session (access + refresh token, refreshed before expiry)
// and a donor session (the donor_token a query's creation returned).
// Both live in sessionStorage: they last as long as the tab, survive a
// reload, and one tab's refresh never races another tab's (a refresh
// token used twice revokes its whole family, API.md).

export class ApiError extends Error {
  constructor(status, body, headers) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    // Seconds to wait, from a 429's or 503's Retry-After (null without).
    const after = Number.parseInt(headers?.get?.('Retry-After') ?? '', 10);
    this.retryAfter = Number.isFinite(after) ? after : null;
    this.code = body?.code || (status === 0 ? 'NETWORK' : 'HTTP_ERROR');
    this.errors = body?.errors || [];
    this.requestId = body?.request_id;
  }
}

// One request.  Resolves to the parsed JSON body (null for an empty one).
export async function call(method, path, { body, token, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, signal, credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { message: 'The server cannot be reached' });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers);
  return data;
}

// Query string from an object, skipping empty values.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

// get/post/patch/put/del around request(method, path, body).
function verbs(request) {
  return {
    request,
    get: (path) => request('GET', path),
    post: (path, body = {}) => request('POST', path, body),
    patch: (path, body = {}) => request('PATCH', path, body),
    put: (path, body = {}) => request('PUT', path, body),
    del: (path) => request('DELETE', path),
  };
}

const STAFF_KEY = 'switchboard.session';

// Events: 'change' (signed in or out), 'token' (a new access token:
// detail = token), 'expired' (the session ended without the user asking).
export class StaffSession extends EventTarget {
  constructor(storage = window.sessionStorage) {
    super();
    this.storage = storage;
    this.state = null;
    this.timer = null;
    this.refreshing = null;
    try { this.state = JSON.parse(storage.getItem(STAFF_KEY)); } catch { this.state = null; }
    this.api = verbs((m, p, b) => this.request(m, p, b));
    if (this.state) this.schedule();
    // A laptop lid or a background tab can sleep past the timer.
    const wake = () => { if (this.state && this.expiresIn() < this.lead()) this.refresh().catch(() => {}); };
    document.addEventListener('visibilitychange', wake);
    window.addEventListener('online', wake);
  }

  get signedIn() { return this.state !== null; }
  get token() { return this.state?.access_token ?? null; }
  get user() { return this.state?.user ?? null; }

  can(permission) {
    const perms = this.state?.user?.permissions || [];
    return perms.includes(permission) || perms.includes('*');
  }

  async login(username, password) {
    const r = await call('POST', '/api/v1/auth/login', { body: { username, password } });
    this.save(r);
    const me = await call('GET', '/api/v1/users/me', { token: r.access_token });
    this.state.user = me;
    this.persist();
    this.dispatchEvent(new Event('change'));
    return me;
  }

  async reloadUser() {
    this.state.user = await this.api.get('/api/v1/users/me');
    this.persist();
    return this.state.user;
  }

  async logout() {
    const token = this.token;
    this.clear();
    if (token) {
      try { await call('POST', '/api/v1/auth/logout', { token }); } catch { /* gone anyway */ }
    }
    this.dispatchEvent(new Event('change'));
  }

  expire() {
    if (!this.state) return;
    this.clear();
    this.dispatchEvent(new Event('expired'));
  }

  save(r) {
    this.state = { ...(this.state || {}), access_token: r.access_token, refresh_token: r.refresh_token,
      expires_at: Date.now() + r.expires_in * 1000, lifetime: r.expires_in * 1000 };
    this.persist();
    this.schedule();
    this.dispatchEvent(new CustomEvent('token', { detail: r.access_token }));
  }

  persist() { this.storage.setItem(STAFF_KEY, JSON.stringify(this.state)); }

  clear() {
    clearTimeout(this.timer);
    this.state = null;
    this.storage.removeItem(STAFF_KEY);
  }

  expiresIn() { return (this.state?.expires_at ?? 0) - Date.now(); }
  // Refresh a fifth of the lifetime before expiry, at most a minute before.
  lead() { return Math.min(60000, (this.state?.lifetime ?? 900000) / 5); }

  schedule() {
    clearTimeout(this.timer);
    const wait = Math.max(0, this.expiresIn() - this.lead());
    this.timer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  // Single flight: concurrent callers share one refresh.
  refresh() {
    if (!this.state) return Promise.reject(new ApiError(401, { message: 'Not signed in' }));
    if (!this.refreshing) {
      const rt = this.state.refresh_token;
      this.refreshing = call('POST', '/api/v1/auth/refresh', { body: { refresh_token: rt } })
        .then((r) => { this.save(r); return r.access_token; })
        .catch((e) => {
          // The server said no: the session is over.  A network failure
          // is not an answer; try again shortly.
          if (e.status === 401 || e.status === 400) this.expire();
          else if (this.state) this.timer = setTimeout(() => this.refresh().catch(() => {}), 5000);
          throw e;
        })
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async request(method, path, body) {
    if (!this.state) throw new ApiError(401, { code: 'UNAUTHENTICATED', message: 'Not signed in' });
    if (this.expiresIn() <= 1000) await this.refresh();
    try {
      return await call(method, path, { body, token: this.token });
    } catch (e) {
      if (e.status !== 401 || !this.state) throw e;
      // The access token died early (logout elsewhere, password reset):
      // one refresh decides whether the session lives on.
      await this.refresh();
      return call(method, path, { body, token: this.token });
    }
  }
}

const DONOR_KEY = 'switchboard.donor';

// The donor page's session: {donor_token, query_id, donor, donor_id}.
export class DonorSession extends EventTarget {
  constructor(storage = window.sessionStorage) {
    super();
    this.storage = storage;
    try { this.state = JSON.parse(storage.getItem(DONOR_KEY)); } catch { this.state = null; }
    this.api = verbs((m, p, b) => this.request(m, p, b));
  }

  get token() { return this.state?.donor_token ?? null; }

  set(state) {
    this.state = { ...(this.state || {}), ...state };
    this.storage.setItem(DONOR_KEY, JSON.stringify(this.state));
  }

  clear() {
    this.state = null;
    this.storage.removeItem(DONOR_KEY);
  }

  async request(method, path, body) {
    try {
      return await call(method, path, { body, token: this.token });
    } catch (e) {
      if (e.status === 401 && this.state) {
        this.clear();
        this.dispatchEvent(new Event('expired'));
      }
      throw e;
    }
  }
}
