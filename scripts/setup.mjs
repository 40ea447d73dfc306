// Installs the project's dependencies when they are missing or stale, then
// runs the command after `--then` (if any) with node_modules/.bin on PATH.
// Runs under Node.js 24: scripts/node24.sh puts it first on PATH, so native
// add-ons (isolated-vm) load for the right Node ABI.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');

const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  process.stderr.write('setup: installing dependencies (npm ci)\n');
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (npm.status !== 0) process.exit(npm.status ?? 1);
}

const thenAt = process.argv.indexOf('--then');
if (thenAt < 0) process.exit(0);
const [command, ...args] = process.argv.slice(thenAt + 1);

const env = {
  ...process.env,
  PATH: `${join(root, 'node_modules', '.bin')}${delimiter}${process.env.PATH}`,
};
const child = spawn(command, args, { cwd: process.cwd(), stdio: 'inherit', env });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 1 : 1)));
