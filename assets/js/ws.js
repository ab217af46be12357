// The /ws gateway from the browser: authenticates with a first frame (the
// token never lands in a URL or an access log), keeps a set of rooms and
// subscribes to all of them again after every reconnect, reconnects with
// capped, jittered backoff after any drop, pings so idle connections
// live, and hands a fresh token over after each refresh (the server
// closes a connection whose token expires otherwise).
//
//   const sock = new Socket({ token: () => session.token });
//   const off = sock.subscribe('agents', (frame) => ...);
//   sock.addEventListener('status', () => sock.status);  // 'connecting'|'live'|'offline'

const PING_MS = 30000;

export class Socket extends EventTarget {
  constructor({ token, url } = {}) {
    super();
    this.getToken = token;
    this.url = url || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    this.rooms = new Map();		// room -> Set of handlers
    this.ws = null;
    this.status = 'offline';
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.stopped = true;
    this.connects = 0;		// how many times it became live (tests, status)
    window.addEventListener('online', () => { if (!this.stopped && this.status !== 'live') this.connectNow(); });
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connectNow();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); this.ws = null; }
    this.setStatus('offline');
  }

  setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.dispatchEvent(new Event('status'));
  }

  connectNow() {
    clearTimeout(this.timer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
    const token = this.getToken();
    if (!token) { this.setStatus('offline'); return; }
    this.setStatus('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => { this.fresh = true; ws.send(JSON.stringify({ type: 'auth', token })); };
    ws.onmessage = (m) => this.onFrame(m.data);
    ws.onclose = () => {
      clearInterval(this.pinger);
      this.ws = null;
      if (this.stopped) return;
      this.setStatus('connecting');
      // 0.5 s, 1 s, 2 s ... 30 s, each with up to 50 % jitter.
      const base = Math.min(30000, 500 * 2 ** this.attempt++);
      this.timer = setTimeout(() => this.connectNow(), base / 2 + Math.random() * base / 2);
    };
    ws.onerror = () => {};	// onclose follows and retries
  }

  onFrame(text) {
    let f;
    try { f = JSON.parse(text); } catch { return; }
    if (f.type === 'ready') {
      if (!this.fresh) return;	// the answer to a re-auth: nothing to redo
      this.fresh = false;
      this.attempt = 0;
      this.connects++;
      for (const room of this.rooms.keys()) this.send({ type: 'subscribe', room });
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: 'ping' }), PING_MS);
      this.setStatus('live');
      this.dispatchEvent(new Event('ready'));
    } else if (f.type === 'event') {
      for (const fn of this.rooms.get(f.room) || []) {
        try { fn(f); } catch (e) { setTimeout(() => { throw e; }); }
      }
      this.dispatchEvent(new CustomEvent('event', { detail: f }));
    } else if (f.type === 'subscribed') {
      // From here on the room's events reach us: a view that catches up
      // now (messages after the last id it saw) misses nothing.
      this.dispatchEvent(new CustomEvent('subscribed', { detail: f.room }));
    } else if (f.type === 'error') {
      this.dispatchEvent(new CustomEvent('error', { detail: f }));
      if (f.room && this.rooms.has(f.room)) this.rooms.delete(f.room);
    }
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  // After a token refresh: the live connection carries on with it.
  reauth(token) {
    if (this.status === 'live') this.send({ type: 'auth', token });
    else if (!this.stopped && !this.ws) this.connectNow();
  }

  subscribe(room, fn) {
    let set = this.rooms.get(room);
    if (!set) {
      set = new Set();
      this.rooms.set(room, set);
      if (this.status === 'live') this.send({ type: 'subscribe', room });
    }
    set.add(fn);
    return () => {
      const s = this.rooms.get(room);
      if (!s) return;
      s.delete(fn);
      if (s.size === 0) {
        this.rooms.delete(room);
        this.send({ type: 'unsubscribe', room });
      }
    };
  }
}
