// `npm run build`: compiles src/ to dist/ with tsconfig.build.json, then
// copies the files tsc does not emit (anything under src/ that is not
// TypeScript, such as sandbox/prelude.isolate.js, which the sandbox reads at
// run time next to its module). dist/ is emptied first so that no stale
// module from a deleted source survives.
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

let copied = 0;
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || entry.name.endsWith('.ts')) continue;
  const from = join(entry.parentPath, entry.name);
  const to = join(dist, relative(src, from));
  cpSync(from, to);
  copied += 1;
}
process.stderr.write(`build: dist/ written, ${copied} non-TypeScript file(s) copied from src/\n`);
