// The sandbox worker is measured as it ships: compiled to JavaScript, as the
// Docker image runs it (`node dist/cli/main.js worker`). Run from the .ts
// sources, every process (the worker and each executor) would also load
// Node's TypeScript stripper, about 18 MB of resident memory apiece, which no
// user pays. The build goes to node_modules/.cache/camunda-sandbox-bench/
// (not dist/, which belongs to `npm run build`; ignored by git and prettier;
// imports resolve from there); it mirrors scripts/build.mjs: tsc with
// tsconfig.build.json, then the non-TypeScript files of src/ copied next to
// their modules.
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';

import { ROOT } from './prelude-host.ts';

export const BUILD_DIR = join(ROOT, 'node_modules', '.cache', 'camunda-sandbox-bench');

/** Compiles src/ into BUILD_DIR/dist; returns the path of the CLI entry. */
export function buildWorker(progress: (line: string) => void): string {
  const out = join(BUILD_DIR, 'dist');
  rmSync(out, { recursive: true, force: true });
  progress(`compiling the worker to JavaScript (${relative(ROOT, out)}), as it ships`);
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const compiled = spawnSync(
    process.execPath,
    [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  // tsc emits even with type errors; a source tree in the middle of an edit
  // may still run. Say so, and go on.
  if (compiled.status !== 0)
    progress(
      `tsc reported errors (the build is used anyway):\n${compiled.stdout}${compiled.stderr}`,
    );
  const src = join(ROOT, 'src');
  for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.name.endsWith('.ts')) continue;
    const from = join(entry.parentPath, entry.name);
    cpSync(from, join(out, relative(src, from)));
  }
  return join(out, 'cli', 'main.js');
}
