// The plugin SDK as a third party sees it: `make install`, then the
// example plugin built out of tree with nothing but pkg-config's flags,
// exporting one symbol, loaded and served by the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, ROOT, BUILD } from './lib/harness.mjs';

let tmp, destdir, so, srv;

function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

before(() => {
  mkdirSync(join(BUILD, 'test-run'), { recursive: true });
  tmp = mkdtempSync(join(BUILD, 'test-run', 'sdk-'));
  destdir = join(tmp, 'dest');
  so = join(tmp, 'out', 'example.so');
  mkdirSync(join(tmp, 'out'));
});
after(async () => {
  await srv?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// The installed .pc first; jansson (Requires) from the system's default path.
const pkgEnv = () => ({ ...process.env, PKG_CONFIG_PATH: join(destdir, 'usr/lib/pkgconfig'),
  PKG_CONFIG_SYSROOT_DIR: destdir });

test('make install puts the header and a pkg-config file under DESTDIR', () => {
  run('make', ['-s', 'install', `DESTDIR=${destdir}`, 'PREFIX=/usr'], { cwd: ROOT });
  const header = join(destdir, 'usr/include/switchboard/plugin.h');
  const pc = join(destdir, 'usr/lib/pkgconfig/switchboard.pc');
  assert.ok(existsSync(header), header);
  assert.ok(existsSync(pc), pc);
  assert.equal(readFileSync(header, 'utf8'), readFileSync(join(ROOT, 'include/switchboard/plugin.h'), 'utf8'));
  const text = readFileSync(pc, 'utf8');
  assert.doesNotMatch(text, /@[A-Z]+@/, 'every placeholder substituted');
  assert.match(text, /^prefix=\/usr$/m);
  const version = readFileSync(join(ROOT, 'VERSION'), 'utf8').trim();
  assert.equal(run('pkg-config', ['--modversion', 'switchboard'], { env: pkgEnv() }).trim(), version);
});

test('the example plugin builds out of tree with only pkg-config flags and exports one symbol', () => {
  const env = pkgEnv();
  const cflags = run('pkg-config', ['--cflags', 'switchboard'], { env }).trim().split(/\s+/).filter(Boolean);
  const libs = run('pkg-config', ['--libs', 'switchboard'], { env }).trim().split(/\s+/).filter(Boolean);
  // The include path is the installed one, never the source tree's.
  assert.ok(cflags.includes(`-I${join(destdir, 'usr/include')}`), cflags.join(' '));
  assert.ok(!cflags.some((f) => f.includes(join(ROOT, 'include'))), cflags.join(' '));
  assert.ok(libs.includes('-ljansson'), `Requires: jansson brings its libs: ${libs.join(' ')}`);

  // A copy of the source outside the tree: nothing can be found next to it.
  const src = join(tmp, 'out', 'example.c');
  copyFileSync(join(ROOT, 'plugins/example/example.c'), src);
  run('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-O2', '-shared', '-fPIC', '-fvisibility=hidden',
    ...cflags, '-o', so, src, ...libs], { cwd: join(tmp, 'out'), env });
  assert.ok(existsSync(so));

  const nm = run('nm', ['-D', '--defined-only', so]);
  const funcs = nm.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length === 3 && /^[TtWi]$/.test(f[1]))
    .map((f) => f[2]);
  assert.deepEqual(funcs, ['sb_plugin_entry'], nm);
  // No other symbol is exported either (no data, no helpers).
  const others = nm.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length === 3 && /^[A-Z]$/.test(f[1]))
    .map((f) => f[2]).filter((n) => n !== 'sb_plugin_entry');
  assert.deepEqual(others, [], nm);
});

test('the host loads the out-of-tree build and serves its routes', async () => {
  srv = await startServer({ plugins: { example: { path: so } } });
  const loaded = srv.logs.find((l) => l.component === 'plugin' && /^loaded example /.test(l.msg));
  assert.ok(loaded, srv.output);
  assert.ok(loaded.msg.endsWith(`from ${so}`), loaded.msg);
  const r = await srv.request('GET', '/api/v1/example/hello');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { message: 'Hello' });
  // Its migration, body schema and database access work as in the tree.
  const token = await srv.login();
  const note = await srv.request('POST', '/api/v1/example/notes', { token, json: { text: 'out of tree' } });
  assert.equal(note.status, 201, note.text);
  const bad = await srv.request('POST', '/api/v1/example/notes', { token, json: { text: 'x', priority: 'nope' } });
  assert.equal(bad.status, 422, bad.text);
  const ready = await srv.request('GET', '/readyz');
  assert.equal(ready.status, 200, ready.text);
});
