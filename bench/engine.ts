// The engine the end-to-end part runs against. By default the benchmark
// starts its own (scripts/engine.mjs on a free port, fresh in-memory H2) and
// stops it at the end: its numbers are then not polluted by other users'
// instances and history, and a fresh clone needs nothing running.
// BENCH_CAMUNDA_URL points at an existing engine instead, which is left running.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { EngineRest } from '../src/engine-harness/engine-rest.ts';
import { ROOT } from './prelude-host.ts';

const ENGINE_SCRIPT = join(ROOT, 'scripts', 'engine.mjs');

export interface EngineHandle {
  readonly url: string;
  readonly rest: EngineRest;
  readonly owned: boolean;
  readonly version: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function engineScript(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    // stderr goes to ours: the engine script narrates its build and start there.
    const child = spawn(process.execPath, [ENGINE_SCRIPT, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout }));
  });
}

export async function ensureEngine(
  url: string | undefined,
  port: number | undefined,
): Promise<EngineHandle> {
  if (url) {
    const rest = new EngineRest(url);
    const version = await rest.version();
    return { url, rest, owned: false, version, stop: async () => {} };
  }
  const chosen = port ?? (await freePort());
  const started = await engineScript(['start', '--port', String(chosen)]);
  const startedUrl = started.stdout.trim().split('\n').pop() ?? '';
  if (started.code !== 0 || !startedUrl)
    throw new Error(`the engine did not start on port ${chosen} (see the messages above)`);
  const rest = new EngineRest(startedUrl);
  let stopped: Promise<void> | undefined;
  return {
    url: startedUrl,
    rest,
    owned: true,
    version: await rest.version(),
    // Its log (.engine/engine-<port>.log) goes with it: each run picks a new port.
    stop: () =>
      (stopped ??= engineScript(['stop', '--port', String(chosen)]).then(() =>
        rmSync(join(ROOT, '.engine', `engine-${chosen}.log`), { force: true }),
      )),
  };
}

/**
 * The engine's JVM pid when scripts/engine.mjs started it on this machine
 * (its pid file), for CPU accounting; undefined for any other engine.
 */
export function enginePid(url: string): number | undefined {
  try {
    const port = new URL(url).port || '80';
    const pid = Number(readFileSync(join(ROOT, '.engine', `engine-${port}.pid`), 'utf8').trim());
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('camunda-sandbox-engine.jar') ? pid : undefined;
  } catch {
    return undefined;
  }
}
