// npm pack makes a tarball that installs into an empty project and imports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('pack: npm pack installs into a temp dir and imports', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-js-pack-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: dir, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    assert.equal(info.name, '@tandem-dev/client');
    assert.equal(info.version, '0.1.0');
    const files = info.files.map((f) => f.path).sort();
    assert.deepEqual(files, ['README.md', 'package.json', 'src/index.d.ts', 'src/index.js']);
    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', '--loglevel=error', path.join(tmp, info.filename)], { cwd: app, encoding: 'utf8' });
    const code =
      "import T, { Tandem, TandemError, newKey } from '@tandem-dev/client';" +
      "const t = new Tandem({ baseUrl: 'http://127.0.0.1:1', fetch: async () => { throw new Error('no'); }, EventSource: class {} });" +
      "const r = t.workspace('w'); if (T !== Tandem || typeof r.prompt !== 'function' || r.session('s').id !== 's' || !newKey()) process.exit(3);" +
      "console.log(new TandemError(410, { type: 'urn:tandem:error:cursor_expired' }).code);";
    const res = execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: app, encoding: 'utf8' });
    assert.equal(res.trim(), 'cursor_expired');
    const pkg = JSON.parse(fs.readFileSync(path.join(app, 'node_modules/@tandem-dev/client/package.json'), 'utf8'));
    assert.equal(pkg.license, 'Apache-2.0');
    assert.ok(!pkg.dependencies, 'no runtime dependencies');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
