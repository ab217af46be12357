// Black-box test harness: starts real Switchboard servers (build/kore +
// the host .so + plugins) against the test PostgreSQL cluster that
// scripts/test.sh runs, each server on a free port with a fresh database,
// and talks to them over HTTP.  Nothing in here reaches into the server.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const ROOT = resolve(new URL('../../..', import.meta.url).pathname);
export const BUILD = resolve(ROOT, process.env.SB_BUILD || 'build');
export const JWT_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
export const DATA_KEY = 'test-data-key-0123456789abcdef0123456789abcdef';
export const INDEX_KEY = 'test-index-key-0123456789abcdef0123456789abcdef';
export const ADMIN_PASSWORD = 'admin-password-for-tests';
const IS_ROOT = process.getuid() === 0;

export function databaseUrl() {
  const url = process.env.SB_TEST_DATABASE_URL;
  if (!url) throw new Error('SB_TEST_DATABASE_URL is not set: run the suite with `make test`');
  return url;
}

// Keyword/value conninfo with another dbname.
export function withDb(conninfo, db) {
  return conninfo.replace(/dbname=\S+/, `dbname=${db}`);
}

export function pgConfig(conninfo) {
  const cfg = {};
  for (const m of conninfo.matchAll(/(\w+)=(\S+)/g)) cfg[m[1]] = m[2];
  return { host: cfg.host, port: Number(cfg.port), user: cfg.user,
    password: cfg.password, database: cfg.dbname };
}

export async function pgClient(conninfo = databaseUrl()) {
  const c = new pg.Client(pgConfig(conninfo));
  await c.connect();
  return c;
}

export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

export const TEST_PLUGINS = {
  example: {},
  probe: { path: `${BUILD}/tests/plugins/probe.so`, source_dir: `${ROOT}/tests/plugins` },
};

// TEST_PLUGINS plus every product plugin that is built, for the suites
// that check every route (the authorisation matrix, OpenAPI).
export const PRODUCT_PLUGINS = ['audit', 'concierge', 'calls', 'notifications', 'customers', 'media', 'telephony',
  'whatsapp'];
export function allPlugins() {
  const out = { ...TEST_PLUGINS };
  for (const name of PRODUCT_PLUGINS)
    if (existsSync(`${BUILD}/plugins/${name}.so`)) out[name] = {};
  // Each server its own media store (the host creates it for the worker user).
  if (out.media) out.media = { dir: freshDir('media') };
  if (out.whatsapp) out.whatsapp = { spool_dir: freshDir('wa-spool') };
  return out;
}

// A new, empty directory under build/test-run (gone with `make clean`).
export function freshDir(prefix) {
  mkdirSync(join(BUILD, 'test-run'), { recursive: true });
  return mkdtempSync(join(BUILD, 'test-run', `${prefix}-`));
}

export function testPlugin(name, extra = {}) {
  return { path: `${BUILD}/tests/plugins/${name}.so`, source_dir: `${ROOT}/tests/plugins`, ...extra };
}

function renderConf(host, plugins) {
  const lines = ['[host]'];
  // Rate limits and login throttling are off unless a test turns them on:
  // the suite fires far more requests from one address than a person.
  const hostConf = { plugin_dir: `${BUILD}/plugins`, assets_dir: `${ROOT}/assets`,
    migrations_dir: `${ROOT}/migrations`, database_wait: '10', rate_limit: '0',
    login_ip_failures: '100000', login_user_failures: '100000', ...host };
  for (const [k, v] of Object.entries(hostConf)) lines.push(`${k} = ${v}`);
  for (const [name, keys] of Object.entries(plugins)) {
    lines.push('', `[plugin ${name}]`);
    const all = { source_dir: `${ROOT}/plugins/${name}`, ...keys };
    for (const [k, v] of Object.entries(all)) lines.push(`${k} = ${v}`);
  }
  return lines.join('\n') + '\n';
}

export async function createDatabase() {
  const name = `sbt_${randomBytes(6).toString('hex')}`;
  const c = await pgClient();
  try { await c.query(`CREATE DATABASE ${name}`); } finally { await c.end(); }
  return name;
}

export async function dropDatabase(name) {
  const c = await pgClient();
  try { await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); } finally { await c.end(); }
}

// Start a server.  Options: plugins (name -> keys), host (keys of [host]),
// workers, env, database (reuse an existing database), expectFailure.
export async function startServer(opts = {}) {
  const plugins = opts.plugins ?? TEST_PLUGINS;
  const workers = opts.workers ?? 2;
  const port = await freePort();
  mkdirSync(join(BUILD, 'test-run'), { recursive: true });
  const dir = mkdtempSync(join(BUILD, 'test-run', 'srv-'));
  const chroot = join(dir, 'chroot');
  mkdirSync(chroot);
  const database = opts.database ?? await createDatabase();
  const dbUrl = withDb(databaseUrl(), database);

  writeFileSync(join(dir, 'switchboard.conf'), renderConf(opts.host ?? {}, plugins));
  const koreConf = execFileSync(join(ROOT, 'scripts/kore-conf.sh'), [join(ROOT, 'kore.conf')], {
    env: { ...process.env, PORT: String(port), SB_WORKERS: String(workers),
      SB_CHROOT: IS_ROOT ? chroot : '', SB_PIDFILE: join(dir, 'kore.pid'),
      SB_HOST_SO: join(BUILD, 'switchboard.so') },
  }).toString();
  writeFileSync(join(dir, 'kore.conf'), koreConf);

  const args = ['-f', '-c', join(dir, 'kore.conf')];
  if (!IS_ROOT) args.push('-n', '-r');
  const env = {
    ...process.env,
    DATABASE_URL: dbUrl,
    SB_JWT_SECRET: JWT_SECRET,
    SB_DATA_KEY: DATA_KEY,
    SB_INDEX_KEY: INDEX_KEY,
    SB_ADMIN_PASSWORD: ADMIN_PASSWORD,
    SB_CONFIG: join(dir, 'switchboard.conf'),
    // verify_asan_link_order=0: stdbuf's LD_PRELOAD comes before the ASan
    // runtime, which Kore links itself.
    ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:print_summary=1:verify_asan_link_order=0',
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    ...(opts.env ?? {}),
  };
  // stdbuf: Kore's own log lines are printf'd, block-buffered into a pipe.
  const child = spawn('stdbuf', ['-oL', join(BUILD, 'kore'), ...args],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = new Server({ child, port, dir, database, dbUrl });
  await srv.waitReady(opts.expectFailure);
  return srv;
}

export class Server {
  constructor({ child, port, dir, database, dbUrl }) {
    Object.assign(this, { child, port, dir, database, dbUrl });
    this.url = `http://127.0.0.1:${port}`;
    this.output = '';
    this.exited = null;
    this.exitPromise = new Promise((res) => child.on('exit', (code, signal) => {
      this.exited = { code, signal }; res(this.exited);
    }));
    const collect = (d) => { this.output += d.toString(); };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
  }

  // Structured log lines (JSON objects) printed so far.
  get logs() {
    return this.output.split('\n').filter((l) => l.startsWith('{')).map((l) => {
      try { return JSON.parse(l); } catch { return null; }
    }).filter(Boolean);
  }

  // Waits for the condition (healthy, or exited when a failure is
  // expected) with a deadline a slow sanitizer build on a loaded machine
  // cannot miss; a healthy server returns at once.
  async waitReady(expectFailure = false) {
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      if (this.exited) {
        if (expectFailure) return;
        throw new Error(`server exited (${JSON.stringify(this.exited)}):\n${this.output}`);
      }
      try {
        const r = await fetch(`${this.url}/healthz`);
        if (r.status === 200) {
          if (expectFailure) throw new Error('server started but was expected to fail');
          return;
        }
      } catch (e) { if (e.message.startsWith('server started')) throw e; }
      await sleep(100);
    }
    throw new Error(`server did not become healthy:\n${this.output}`);
  }

  async request(method, path, { body, json, headers = {}, token } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload = body;
    if (json !== undefined) { payload = JSON.stringify(json); h['content-type'] ??= 'application/json'; }
    const res = await fetch(this.url + path, { method, headers: h, body: payload });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    return { status: res.status, headers: res.headers, text, body: data };
  }

  async login(username = 'admin', password = ADMIN_PASSWORD) {
    const r = await this.request('POST', '/api/v1/auth/login', { json: { username, password } });
    if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
    return r.body.access_token;
  }

  // Fail if a sanitizer reported anything.
  sanitizerReports() {
    return this.output.split('\n').filter((l) =>
      /ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: .*Sanitizer/.test(l));
  }

  async stop({ keepDatabase = false } = {}) {
    if (!this.exited) {
      this.child.kill('SIGTERM');
      // A last resort: an orderly stop of the sanitizer build may take a
      // while on a loaded machine, and a kill loses its reports.
      const t = setTimeout(() => this.child.kill('SIGKILL'), 30000);
      await this.exitPromise;
      clearTimeout(t);
    }
    if (!keepDatabase) await dropDatabase(this.database).catch(() => {});
    const reports = this.sanitizerReports();
    if (reports.length) throw new Error(`sanitizer reports:\n${reports.join('\n')}\n${this.output}`);
  }
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Assert the API.md error envelope and return it.
export function assertEnvelope(assert, r, status, code) {
  assert.equal(r.status, status, `status ${r.status}: ${r.text}`);
  assert.ok(r.body, `JSON body expected, got: ${r.text}`);
  assert.deepEqual(Object.keys(r.body).sort(), ['code', 'errors', 'message', 'request_id', 'status']);
  assert.equal(r.body.status, 'error');
  if (code) assert.equal(r.body.code, code);
  assert.equal(typeof r.body.message, 'string');
  assert.ok(Array.isArray(r.body.errors));
  assert.equal(r.body.request_id, r.headers.get('x-request-id'));
  assert.match(r.headers.get('content-type'), /^application\/json/);
  return r.body;
}

export { readFileSync };
