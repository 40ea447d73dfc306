// `npm test`: starts the local engine unless one answers already (or
// CAMUNDA_URL points elsewhere), runs vitest with any extra arguments, then
// stops the engine if it started it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const engineScript = fileURLToPath(new URL('./engine.mjs', import.meta.url));
const args = process.argv.slice(2);

let startedEngine = false;
const env = { ...process.env };
if (!env.CAMUNDA_URL) {
  const status = spawnSync(process.execPath, [engineScript, 'status'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (status.status !== 0) {
    const start = spawnSync(process.execPath, [engineScript, 'start'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    });
    if (start.status !== 0) {
      process.stderr.write('test: the local engine did not start\n');
      process.exit(start.status ?? 1);
    }
    startedEngine = true;
  }
  env.CAMUNDA_URL = `http://127.0.0.1:${env.ENGINE_PORT || '8080'}/engine-rest`;
}

// A JSON report beside the usual output gives the closing count line below.
const report = join(mkdtempSync(join(tmpdir(), 'vitest-')), 'report.json');
const vitest = spawnSync(
  join(root, 'node_modules', '.bin', 'vitest'),
  ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args],
  {
    cwd: root,
    stdio: 'inherit',
    env,
  },
);

if (vitest.error) process.stderr.write(`test: could not run vitest: ${vitest.error.message}\n`);
if (startedEngine)
  spawnSync(process.execPath, [engineScript, 'stop'], { cwd: root, stdio: 'inherit' });
if (existsSync(report)) {
  const counts = JSON.parse(readFileSync(report, 'utf8'));
  process.stdout.write(
    `\n${counts.numPassedTests} passed, ${counts.numFailedTests} failed, ${counts.numPendingTests + counts.numTodoTests} skipped\n`,
  );
}
process.exit(vitest.status ?? 1);
