// Test support: the worker as a real OS process (`node src/cli/main.ts worker`),
// configured through its environment, with its JSON stdout captured, its
// /metrics and /readyz readable, and signals to send. Every process started
// here is registered so that `killAllWorkerProcesses()` (in afterAll) ends it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { EngineRest } from '../../src/engine-harness/engine-rest.ts';
import { metricValue, writePolicies, type LogEntry } from './worker.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');

const running = new Set<WorkerProcess>();

export interface WorkerFolders {
  readonly policiesDir: string;
  readonly scriptsDir: string;
}

/** A fresh policy and script folder, shareable by several worker processes. */
export function workerFolders(
  policies: Record<string, unknown>[],
  scripts: Record<string, string> = {},
): WorkerFolders {
  const base = mkdtempSync(join(tmpdir(), 'sandbox-proc-'));
  const policiesDir = join(base, 'policies');
  const scriptsDir = join(base, 'scripts');
  mkdirSync(policiesDir);
  mkdirSync(scriptsDir);
  writePolicies(policiesDir, policies);
  for (const [path, text] of Object.entries(scripts)) {
    mkdirSync(dirname(join(scriptsDir, path)), { recursive: true });
    writeFileSync(join(scriptsDir, path), text);
  }
  return { policiesDir, scriptsDir };
}

export interface WorkerProcessOptions {
  readonly camundaUrl: string;
  readonly folders: WorkerFolders;
  readonly workerId?: string;
  /** Further environment variables (MAX_PARALLEL, SHUTDOWN_GRACE_MS, ...). */
  readonly env?: Record<string, string | number>;
  /** Start in its own process group, so that a signal can reach the group as a terminal's Ctrl-C does. */
  readonly ownGroup?: boolean;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class WorkerProcess {
  readonly workerId: string;
  readonly child: ChildProcess;
  readonly logs: (LogEntry & { receivedAt: number })[] = [];
  readonly exited: Promise<Exit>;
  readonly ownGroup: boolean;
  stderr = '';
  private metricsPort: number | undefined;
  private partial = '';
  private exitValue: Exit | undefined;

  constructor(options: WorkerProcessOptions) {
    this.workerId = options.workerId ?? `proc-${randomUUID().slice(0, 8)}`;
    this.ownGroup = options.ownGroup ?? false;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      CAMUNDA_URL: options.camundaUrl,
      SANDBOX_POLICIES: options.folders.policiesDir,
      SANDBOX_SCRIPTS: options.folders.scriptsDir,
      WORKER_ID: this.workerId,
      METRICS_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      SANDBOX_EXECUTORS: '1',
      POLL_TIMEOUT_MS: '1000',
      LOG_LEVEL: 'info',
    };
    for (const [name, value] of Object.entries(options.env ?? {})) env[name] = String(value);

    this.child = spawn(process.execPath, ['--no-node-snapshot', MAIN, 'worker'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.ownGroup,
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.receive(chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitValue = { code, signal };
        running.delete(this);
        resolve(this.exitValue);
      });
    });
    running.add(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exitValue === undefined;
  }

  private receive(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        const entry = JSON.parse(line) as LogEntry;
        if (entry.msg === 'worker started' && typeof entry['metricsPort'] === 'number')
          this.metricsPort = entry['metricsPort'];
        this.logs.push({ ...entry, receivedAt: Date.now() });
      } catch {
        this.stderr += `(stdout, not JSON) ${line}\n`;
      }
    }
  }

  /** Waits until the worker logged `worker started` (it then polls). */
  async started(timeoutMs = 30_000): Promise<void> {
    await this.waitForLog((e) => e.msg === 'worker started', timeoutMs);
  }

  /** The first log entry matching, waiting for it; throws after the timeout or when the process exits first. */
  async waitForLog(
    match: (entry: LogEntry) => boolean,
    timeoutMs = 30_000,
  ): Promise<LogEntry & { receivedAt: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found) return found;
      if (!this.alive)
        throw new Error(
          `worker ${this.workerId} exited (${JSON.stringify(this.exitValue)}) before the log line; stderr: ${this.stderr.slice(-2000)}`,
        );
      if (Date.now() > deadline)
        throw new Error(
          `worker ${this.workerId}: no such log line within ${timeoutMs} ms; last lines: ${this.tail()}`,
        );
      await sleep(50);
    }
  }

  tail(lines = 15): string {
    return this.logs
      .slice(-lines)
      .map(({ receivedAt: _, ...e }) => JSON.stringify(e))
      .join('\n');
  }

  /** Task ids this worker logged as done with the given outcome (any outcome when omitted). */
  doneTaskIds(outcome?: string): string[] {
    return this.logs
      .filter((e) => e.msg === 'task done' && (outcome === undefined || e['outcome'] === outcome))
      .map((e) => String(e['taskId']));
  }

  private get baseUrl(): string {
    if (this.metricsPort === undefined)
      throw new Error(`worker ${this.workerId} has not reported its metrics port yet`);
    return `http://127.0.0.1:${this.metricsPort}`;
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  }

  /** A sample of the worker's /metrics (0 when the series does not exist yet). */
  async metric(name: string, labels: Record<string, string>): Promise<number> {
    return metricValue(await this.metrics(), name, labels) ?? 0;
  }

  async healthz(): Promise<number> {
    const response = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
    await response.arrayBuffer();
    return response.status;
  }

  async readyz(): Promise<{ status: number; body: { status: string; reasons: string[] } }> {
    const response = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
    return {
      status: response.status,
      body: (await response.json()) as { status: string; reasons: string[] },
    };
  }

  /** Sends a signal to the worker, or with `group` to its whole process group (needs `ownGroup`). */
  signal(signal: NodeJS.Signals, group = false): void {
    if (!this.alive) return;
    process.kill(group ? -this.pid : this.pid, signal);
  }

  /** Waits for the exit; SIGKILLs the process (and its group) when the timeout passes first. */
  async waitExit(timeoutMs = 30_000): Promise<Exit & { timedOut: boolean }> {
    const timer = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), timeoutMs).unref(),
    );
    const result = await Promise.race([this.exited, timer]);
    if (result !== 'timeout') return { ...result, timedOut: false };
    this.kill();
    return { ...(await this.exited), timedOut: true };
  }

  /** SIGKILL, group included when it has its own; resolves on exit. */
  kill(): Promise<Exit> {
    if (this.alive) {
      try {
        process.kill(this.ownGroup ? -this.pid : this.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    return this.exited;
  }
}

export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const worker = new WorkerProcess(options);
  try {
    await worker.started();
  } catch (err) {
    await worker.kill();
    throw err;
  }
  return worker;
}

/** Ends every worker process still running (afterAll). Its executors exit when their parent's IPC channel closes. */
export async function killAllWorkerProcesses(): Promise<void> {
  await Promise.all([...running].map((w) => w.kill()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a value other than undefined; throws after the timeout. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** An external task as the REST API lists it. */
export interface ExternalTaskRow {
  id: string;
  processInstanceId: string;
  workerId: string | null;
  lockExpirationTime: string | null;
  topicName: string;
  retries: number | null;
}

/** REST helpers the reliability tests share, on top of EngineRest. */
export class EngineProbe {
  readonly rest: EngineRest;

  constructor(baseUrl: string) {
    this.rest = new EngineRest(baseUrl);
  }

  /** Waits until the engine holds `count` tasks of `topic` locked for the worker. */
  lockedBy(worker: WorkerProcess, topic: string, count: number): Promise<ExternalTaskRow[]> {
    return waitFor(
      `${count} tasks locked by ${worker.workerId}`,
      async () => {
        const rows = await this.externalTasks(
          `topicName=${topic}&workerId=${worker.workerId}&locked=true`,
        );
        return rows.length === count ? rows : undefined;
      },
      20_000,
    );
  }

  externalTasks(query: string): Promise<ExternalTaskRow[]> {
    return this.rest.call('GET', `/external-task?${query}`);
  }

  /** Instances of a definition key still running. */
  async activeCount(key: string): Promise<number> {
    return (
      await this.rest.call<{ count: number }>(
        'GET',
        `/process-instance/count?processDefinitionKey=${key}`,
      )
    ).count;
  }

  async completedCount(key: string): Promise<number> {
    return (
      await this.rest.call<{ count: number }>(
        'GET',
        `/history/process-instance/count?processDefinitionKey=${key}&completed=true`,
      )
    ).count;
  }

  /** Historic activity instances of the step (one per run through it) for a definition key. */
  async stepRuns(
    key: string,
    activityId = 'step',
  ): Promise<{ processInstanceId: string; endTime: string | null }[]> {
    const rows: { processInstanceId: string; endTime: string | null }[] = [];
    for (let first = 0; ; first += 500) {
      const page = await this.rest.call<{ processInstanceId: string; endTime: string | null }[]>(
        'GET',
        `/history/activity-instance?processDefinitionKey=${key}&activityId=${activityId}&firstResult=${first}&maxResults=500`,
      );
      rows.push(...page);
      if (page.length < 500) return rows;
    }
  }

  /** Successful completions of external tasks in the history, with the worker that completed each. */
  async successLogs(
    processInstanceId: string,
  ): Promise<{ externalTaskId: string; workerId: string }[]> {
    return this.rest.call(
      'GET',
      `/history/external-task-log?processInstanceId=${processInstanceId}&successLog=true`,
    );
  }

  /** Deletes the deployments named `name`, cascading to their instances and history. */
  async deleteDeployments(name: string): Promise<void> {
    const deployments = await this.rest.call<{ id: string }[]>(
      'GET',
      `/deployment?name=${encodeURIComponent(name)}`,
    );
    for (const d of deployments)
      await this.rest.call(
        'DELETE',
        `/deployment/${d.id}?cascade=true&skipCustomListeners=true&skipIoMappings=true`,
      );
  }

  /** Starts `count` instances of `key`, a few at a time; returns their ids. */
  async startMany(key: string, count: number, parallel = 8): Promise<string[]> {
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(parallel, count) }, async () => {
        while (next < count) {
          next += 1;
          ids.push(await this.rest.start(key));
        }
      }),
    );
    return ids;
  }
}

/** Pids of a process's direct children (a worker's executors), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
