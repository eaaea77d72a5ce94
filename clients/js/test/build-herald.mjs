// Builds the Herald binary once for a test run (npm test). The tests use it
// through HERALD_BIN; run alone, a test file builds its own.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, '../node_modules/.cache/herald-test/herald');
mkdirSync(dirname(out), { recursive: true });
const t = Date.now();
execFileSync('go', ['build', '-o', out, './cmd/herald'], { cwd: resolve(here, '../../..'), stdio: 'inherit' });
console.log(`built ${out} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
