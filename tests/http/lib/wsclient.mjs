// A WebSocket client for black-box tests of /ws: it keeps every frame it
// gets, and next(pred) takes the first not yet taken frame matching pred,
// waiting for it (up to a generous deadline: WAIT_MS).
import WebSocket from 'ws';
import { WAIT_MS } from './helpers.mjs';

export class Client {
  constructor(srv, { token, query = true, headers } = {}) {
    const url = `ws://127.0.0.1:${srv.port}/ws${token && query ? `?access_token=${encodeURIComponent(token)}` : ''}`;
    this.ws = new WebSocket(url, { headers });
    this.frames = [];
    this.taken = new Set();
    this.waiters = [];
    this.closed = null;
    this.opened = new Promise((res, rej) => {
      this.ws.once('open', res);
      this.ws.once('error', rej);
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, binary) => {
      let f;
      try { f = JSON.parse(data.toString()); } catch { f = { type: '(not json)', raw: data.toString(), binary }; }
      this.frames.push(f);
      this.wake();
    });
    this.closedP = new Promise((res) => this.ws.once('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
      res(this.closed);
    }));
  }

  wake() { for (const w of this.waiters.slice()) w(); }

  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }

  next(pred, timeout = WAIT_MS, what = 'a frame') {
    const p = typeof pred === 'string' ? (f) => f.type === pred : pred;
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = 0; i < this.frames.length; i++) {
          if (!this.taken.has(i) && p(this.frames[i])) {
            this.taken.add(i);
            done();
            resolve(this.frames[i]);
            return true;
          }
        }
        if (this.closed) {
          done();
          reject(new Error(`closed (${JSON.stringify(this.closed)}) before ${what}; frames: ${JSON.stringify(this.frames).slice(0, 800)}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => { done(); reject(new Error(`timeout waiting for ${what}; frames: ${JSON.stringify(this.frames).slice(0, 800)}`)); }, timeout);
      const w = () => check();
      const done = () => { clearTimeout(timer); this.waiters = this.waiters.filter((x) => x !== w); };
      if (!check()) this.waiters.push(w);
    });
  }

  events(room) { return this.frames.filter((f) => f.type === 'event' && (!room || f.room === room)); }

  async subscribe(room) {
    this.send({ type: 'subscribe', room });
    return this.next((f) => f.room === room && (f.type === 'subscribed' || f.type === 'error'), WAIT_MS, `subscribe ${room}`);
  }

  waitClose(timeout = WAIT_MS) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not closed within ${timeout} ms`)), timeout);
    });
    return Promise.race([this.closedP, late]).finally(() => clearTimeout(timer));
  }

  close() { try { this.ws.terminate(); } catch { /* gone */ } }
}

// A client authenticated by ?access_token=, ready.
export async function ready(srv, token, opts = {}) {
  const c = new Client(srv, { token, ...opts });
  await c.opened;
  c.hello = await c.next('ready', WAIT_MS, 'ready');
  return c;
}

