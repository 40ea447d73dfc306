import { fork, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Logger } from 'pino';

import { SandboxError } from '../errors.ts';
import type { IsolatePoolOptions } from '../sandbox/isolate-pool.ts';
import type { ExecutionEvent, ScriptJob } from '../sandbox/job.ts';
import type { ScriptOutcome } from '../sandbox/outcome.ts';
import { EXECUTOR_EXEC_ARGV, type FromExecutor, type ToExecutor } from './protocol.ts';

// Run the entry in the same form as this module: .ts from source, .js when built.
const EXECUTOR_MAIN = fileURLToPath(
  new URL(`./main${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
);

/** How long a job waits for a replacement executor before it fails. */
const EXECUTOR_WAIT_MS = 10_000;

export type RestartReason = 'crash' | 'killed' | 'oom' | 'unresponsive';

export interface ExecutorPoolOptions {
  /** Executor processes to keep running. */
  readonly processes: number;
  readonly isolates: IsolatePoolOptions;
  readonly logger: Logger;
  readonly onRestart?: (reason: RestartReason) => void;
}

interface Pending {
  readonly resolve: (outcome: ScriptOutcome) => void;
  readonly reject: (err: Error) => void;
  readonly onEvent: (event: ExecutionEvent) => void;
}

/** One executor child process and the jobs it has in flight. */
class Executor {
  readonly child: ChildProcess;
  readonly pending = new Map<number, Pending>();
  readonly ready: Promise<void>;

  constructor(
    options: ExecutorPoolOptions,
    onExit: (executor: Executor, reason: RestartReason) => void,
  ) {
    this.child = fork(EXECUTOR_MAIN, [JSON.stringify(options.isolates)], {
      execArgv: EXECUTOR_EXEC_ARGV,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve) => {
      this.child.once('message', () => resolve());
      this.child.once('exit', () => resolve());
    });
    this.child.on('message', (message: FromExecutor) => this.receive(message));
    // A send to an executor that has just died fails with EPIPE, emitted here:
    // unheard, it would crash the worker. Its 'exit' ends the jobs as crashed.
    this.child.on('error', (err) =>
      options.logger.warn({ pid: this.child.pid, err: err.message }, 'executor channel error'),
    );
    this.child.on('exit', (code, signal) => onExit(this, exitReason(code, signal)));
  }

  get load(): number {
    return this.pending.size;
  }

  run(id: number, job: ScriptJob, pending: Pending): void {
    this.pending.set(id, pending);
    const message: ToExecutor = { type: 'run', id, job };
    this.child.send(message);
  }

  private receive(message: FromExecutor): void {
    if (message.type === 'ready') return;
    const pending = this.pending.get(message.id);
    if (!pending) return;
    switch (message.type) {
      case 'event':
        pending.onEvent(message.event);
        return;
      case 'done':
        this.pending.delete(message.id);
        pending.resolve(message.outcome);
        return;
      case 'failed':
        this.pending.delete(message.id);
        pending.reject(
          new SandboxError('EXECUTOR_CRASHED', `the sandbox failed: ${message.message}`),
        );
        return;
    }
  }
}

function exitReason(code: number | null, signal: NodeJS.Signals | null): RestartReason {
  if (signal === 'SIGKILL' || signal === 'SIGTERM') return 'killed';
  // V8's fatal out-of-memory handler aborts the process.
  if (signal === 'SIGABRT' || signal === 'SIGTRAP' || code === 134) return 'oom';
  return 'crash';
}

/**
 * Keeps a fixed number of executor processes running and hands each job to
 * the least busy one. When an executor dies, its jobs end as `crashed` (the
 * worker reports them as failures with retries counting down, since the job
 * may not be the cause) and a replacement starts.
 */
export class ExecutorPool {
  private readonly options: ExecutorPoolOptions;
  private readonly executors: Executor[] = [];
  private nextId = 1;
  private stopped = false;
  private recentRestarts: number[] = [];
  /** Jobs waiting for an executor to be ready. */
  private waiters: (() => void)[] = [];

  constructor(options: ExecutorPoolOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.options.processes; i++) this.executors.push(this.spawn());
    await Promise.all(this.executors.map((e) => e.ready));
  }

  /** Pids of the running executors (for tests and the health endpoint). */
  pids(): number[] {
    return this.executors.map((e) => e.child.pid).filter((pid): pid is number => pid !== undefined);
  }

  /**
   * Runs a job on the least busy executor. While none is running (one died
   * and its replacement is starting), the job waits for the replacement for
   * up to EXECUTOR_WAIT_MS rather than failing at once.
   */
  run(
    job: ScriptJob,
    onEvent: (event: ExecutionEvent) => void = () => {},
    deadline = Date.now() + EXECUTOR_WAIT_MS,
  ): Promise<ScriptOutcome> {
    const executor = this.leastBusy();
    if (executor) {
      const id = this.nextId++;
      return new Promise((resolve, reject) => executor.run(id, job, { resolve, reject, onEvent }));
    }
    const unavailable = new SandboxError('EXECUTOR_UNAVAILABLE', 'no executor process is running');
    if (this.stopped || Date.now() >= deadline) return Promise.reject(unavailable);

    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(unavailable), deadline - Date.now());
      this.waiters.push(() => {
        clearTimeout(timer);
        this.run(job, onEvent, deadline).then(resolve, reject);
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(
      this.executors.map(
        (e) =>
          new Promise<void>((resolve) => {
            if (e.child.exitCode !== null || e.child.signalCode !== null) return resolve();
            e.child.once('exit', () => resolve());
            e.child.disconnect();
            setTimeout(() => e.child.kill('SIGKILL'), 2000).unref();
          }),
      ),
    );
  }

  private leastBusy(): Executor | undefined {
    let best: Executor | undefined;
    for (const e of this.executors) {
      if (!e.child.connected) continue;
      if (!best || e.load < best.load) best = e;
    }
    return best;
  }

  private spawn(): Executor {
    const executor = new Executor(this.options, (dead, reason) => this.replace(dead, reason));
    void executor.ready.then(() => {
      const waiting = this.waiters;
      this.waiters = [];
      for (const wake of waiting) wake();
    });
    return executor;
  }

  private replace(dead: Executor, reason: RestartReason): void {
    for (const pending of dead.pending.values()) {
      pending.resolve({
        kind: 'crashed',
        message: `the executor process running the script exited (${reason})`,
      });
    }
    dead.pending.clear();

    const index = this.executors.indexOf(dead);
    if (index < 0 || this.stopped) return;
    this.options.logger.warn(
      { pid: dead.child.pid, reason },
      'executor exited; starting a replacement',
    );
    this.options.onRestart?.(reason);

    // A crash loop would otherwise spin a core: past 5 restarts a minute, wait.
    const now = Date.now();
    this.recentRestarts = [...this.recentRestarts.filter((t) => now - t < 60_000), now];
    const delay = this.recentRestarts.length > 5 ? 5000 : 0;
    const start = () => {
      if (!this.stopped) this.executors[index] = this.spawn();
    };
    if (delay === 0) start();
    else setTimeout(start, delay).unref();
  }
}
