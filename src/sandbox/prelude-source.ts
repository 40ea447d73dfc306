import { readFileSync } from 'node:fs';

/** An isolate-side file holds one function expression; a formatter may end it with `;`. */
const isolateFile = (name: string) =>
  readFileSync(new URL(`./${name}`, import.meta.url), 'utf8')
    .trim()
    .replace(/;$/, '');

/**
 * The prelude and the Spin API it installs, as one script that evaluates to
 * the prelude's install function (see prelude.isolate.js). Kept apart from
 * isolate-pool.ts so that it can be read without loading isolated-vm (the
 * benchmark runs the same prelude under node:vm and QuickJS).
 */
export const PRELUDE_SOURCE = `(function (defineSpin) {\n'use strict';\nreturn (\n${isolateFile(
  'prelude.isolate.js',
)}\n);\n})(${isolateFile('spin.isolate.js')})`;

/** The name stack traces give the prelude's frames; outcomes filter them out by it. */
export const PRELUDE_FILENAME = 'sandbox-prelude.js';
