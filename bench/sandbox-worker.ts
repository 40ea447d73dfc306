// The sandbox worker under test, as a separate OS process started the way a
// user starts it (`node src/cli/main.ts worker`) with the shipped default
// policy and the default configuration. A separate process, not a Worker in
// the benchmark's own process: its CPU is then the worker's alone (not shared
// with the load generator's event loop), and its resident memory and its
// executors' can be read from /proc without the benchmark's own heap in them.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parse, stringify } from 'yaml';

import { ROOT } from './prelude-host.ts';
import { freePort } from './engine.ts';
import { sleep } from './stats.ts';

export interface SandboxWorkerOptions {
  camundaUrl: string;
  topic: string;
  /** Extra worker settings (BENCH_WORKER_ENV). */
  env: Record<string, string>;
  /** The CLI entry to run: the compiled dist/cli/main.js (as shipped) or src/cli/main.ts. */
  main: string;
}

export class SandboxWorkerProcess {
  readonly child: ChildProcess;
  readonly metricsUrl: string;
  readonly logFile: string;
  private readonly dir: string;
  private exited = false;

  private constructor(child: ChildProcess, metricsUrl: string, logFile: string, dir: string) {
    this.child = child;
    this.metricsUrl = metricsUrl;
    this.logFile = logFile;
    this.dir = dir;
    child.once('exit', () => (this.exited = true));
  }

  get pid(): number {
    return this.child.pid!;
  }

  static async start(options: SandboxWorkerOptions): Promise<SandboxWorkerProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-bench-worker-'));
    const policiesDir = join(dir, 'policies');
    const scriptsDir = join(dir, 'scripts');
    mkdirSync(policiesDir);
    mkdirSync(scriptsDir);
    // The shipped default policy, unchanged but for its topic, so that the
    // benchmark's tasks never meet another worker's (on a shared engine).
    const policy = parse(
      readFileSync(join(ROOT, 'sandbox-policies', 'default.yaml'), 'utf8'),
    ) as Record<string, unknown>;
    policy['topics'] = [options.topic];
    writeFileSync(join(policiesDir, 'default.yaml'), stringify(policy));

    const metricsPort = await freePort();
    const logFile = join(dir, 'worker.log');
    const log = openSync(logFile, 'w');
    // A clean environment: the worker's defaults, not whatever this shell has set.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      CAMUNDA_URL: options.camundaUrl,
      SANDBOX_POLICIES: policiesDir,
      SANDBOX_SCRIPTS: scriptsDir,
      WORKER_ID: `bench-${options.topic}`,
      METRICS_PORT: String(metricsPort),
      METRICS_HOST: '127.0.0.1',
      ...options.env,
    };
    // Its log goes to a file, as a container's stdout goes to a log driver:
    // the worker pays for its one line per task, the benchmark does not read it.
    // No --no-node-snapshot for the worker itself, as in the Docker image: it
    // loads no isolate; its executors get the flag from the worker.
    const child = spawn(process.execPath, [options.main, 'worker'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const worker = new SandboxWorkerProcess(child, `http://127.0.0.1:${metricsPort}`, logFile, dir);
    await worker.waitFor('"state":"polling"', 60_000);
    return worker;
  }

  /** Waits for a text in the worker's log; throws with the log's tail if it exits first. */
  async waitFor(text: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = readFileSync(this.logFile, 'utf8');
      if (log.includes(text)) return;
      if (this.exited || Date.now() > deadline) {
        throw new Error(
          `the sandbox worker ${this.exited ? 'exited' : 'did not log ' + text}; its log ends:\n${log.slice(-2000)}`,
        );
      }
      await sleep(100);
    }
  }

  /** The worker's executor processes: its children. */
  executorPids(): number[] {
    return childrenOf(this.pid);
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.metricsUrl}/metrics`)).text();
  }

  /** SIGTERM (the worker drains, then stops its executors), SIGKILL after 30 s. */
  async stop(): Promise<void> {
    if (!this.exited) {
      const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Pids whose parent is `pid`, from /proc/<n>/stat. */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which is in parentheses and may hold spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) children.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return children;
}
