// The hand-written declarations compile, and fit a use of every method.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('types: tsc --noEmit --strict on index.d.ts and a usage of the API', () => {
  const tsc = path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck', 'false', 'src/index.d.ts', 'test/types/usage.ts'];
  try {
    execFileSync(process.execPath, args, { cwd: dir, encoding: 'utf8' });
  } catch (e) {
    assert.fail('tsc: ' + (e.stdout || '') + (e.stderr || ''));
  }
});
