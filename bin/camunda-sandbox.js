#!/usr/bin/env node
// The package's `camunda-sandbox` command: runs the built CLI (dist/), which
// `npm run build` writes. From a source checkout without a build, say so.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(main)) {
  await import(main.href);
} else {
  process.stderr.write(
    'camunda-sandbox: not built yet: run `npm run build` first (or, from a checkout, `npm run cli -- <command>`)\n',
  );
  process.exitCode = 1;
}
