// Part 1: the sandbox alone, no engine. Executions per second of the same
// script, with the same prelude and input, in three engines:
//
// - executor: the worker's own ExecutorPool (taken from a Worker built with
//   the default configuration, so its process count and isolate pool are
//   exactly the worker's), driven through IPC as the task runner drives it.
//   Throughput with the worker's MAX_PARALLEL jobs in flight (fills every
//   executor process, hence every core), and single-stream latency (one job
//   at a time: what one task waits for its script, IPC included);
// - node:vm: a fresh ordinary-global context per execution in worker threads,
//   one per core: the floor (V8 with no isolation and no limits);
// - QuickJS (quickjs-emscripten, WebAssembly): a fresh context per execution
//   in worker threads, one per core: the sandbox a user might pick instead.
//
// Rounds interleave the contenders, each round in a rotated order, so that the
// drift of a shared, noisy machine falls on all of them alike; every number
// reported is the median over rounds, every ratio the median of the ratios
// measured within each round.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker as Thread } from 'node:worker_threads';

import { loadConfig } from '../src/config/config.ts';
import type { ExecutorPool } from '../src/executor/executor-pool.ts';
import type { ScriptJob } from '../src/sandbox/job.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { Worker } from '../src/worker/worker.ts';
import type { MeasureReply, ThreadEngine } from './alone-thread.ts';
import type { BenchConfig } from './config.ts';
import { benchJob, defaultPolicy, ROOT } from './prelude-host.ts';
import { SCRIPTS } from './scripts.ts';
import { median, quantile, rotate } from './stats.ts';

export type AloneContender = 'executor' | 'vm' | 'quickjs';
export type AloneMode = 'parallel' | 'single';
export const ALONE_CONTENDERS: readonly AloneContender[] = ['executor', 'vm', 'quickjs'];

interface Window {
  perSecond: number;
  p50Ms: number;
}

export interface AloneCell {
  perSecond: number;
  p50Ms: number;
  /** Per-round throughputs, to show the spread. */
  rounds: number[];
}

export interface AloneSummary {
  setup: { executors: number; lanes: number; threads: number; policy: string };
  /** cells[script][contender][mode] */
  cells: Record<string, Record<AloneContender, Record<AloneMode, AloneCell>>>;
  /** Median over rounds of the in-round ratio executor/other, both cores busy. */
  ratios: Record<
    string,
    { vsQuickjs: number; vsVm: number; vsQuickjsSingle: number; vsVmSingle: number }
  >;
}

/** Measures one contender for one window. */
interface Runner {
  measure(script: string, mode: AloneMode, windowMs: number): Promise<Window>;
  result(script: string): Promise<unknown>;
  close(): Promise<void>;
}

function executorRunner(
  pool: ExecutorPool,
  jobs: Record<string, ScriptJob>,
  lanes: number,
): Runner {
  const once = async (job: ScriptJob) => {
    const outcome = await pool.run(job);
    if (outcome.kind !== 'completed')
      throw new Error(
        `the executor did not complete the ${job.filename}: ${JSON.stringify(outcome)}`,
      );
    return outcome.result;
  };
  return {
    async measure(script, mode, windowMs) {
      const job = jobs[script]!;
      const latencies: number[] = [];
      const started = performance.now();
      const end = started + windowMs;
      // Closed loop per lane: a lane sends its next job when its last one ends,
      // as the worker does with its MAX_PARALLEL task slots.
      const lane = async () => {
        do {
          const t = performance.now();
          await once(job);
          latencies.push(performance.now() - t);
        } while (performance.now() < end);
      };
      await Promise.all(Array.from({ length: mode === 'parallel' ? lanes : 1 }, lane));
      const elapsed = performance.now() - started;
      return { perSecond: (latencies.length / elapsed) * 1000, p50Ms: quantile(latencies, 0.5) };
    },
    result: (script) => once(jobs[script]!),
    close: () => pool.stop(),
  };
}

async function threadRunner(
  engine: ThreadEngine,
  jobs: Record<string, ScriptJob>,
  count: number,
): Promise<Runner> {
  const threads = await Promise.all(
    Array.from({ length: count }, async () => {
      const thread = new Thread(new URL('./alone-thread.ts', import.meta.url), {
        workerData: { engine, jobs },
      });
      await new Promise<void>((resolve, reject) => {
        thread.once('message', () => resolve());
        thread.once('error', reject);
      });
      return thread;
    }),
  );
  const ask = (thread: Thread, script: string, durationMs: number) =>
    new Promise<MeasureReply>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      thread.once('error', onError);
      thread.once('message', (reply: MeasureReply) => {
        thread.off('error', onError);
        resolve(reply);
      });
      thread.postMessage({ script, durationMs });
    });
  return {
    async measure(script, mode, windowMs) {
      const busy = mode === 'parallel' ? threads : threads.slice(0, 1);
      const replies = await Promise.all(busy.map((t) => ask(t, script, windowMs)));
      const count = replies.reduce((sum, r) => sum + r.count, 0);
      const elapsed = Math.max(...replies.map((r) => r.elapsedMs));
      return {
        perSecond: (count / elapsed) * 1000,
        p50Ms: quantile(
          replies.flatMap((r) => r.latenciesMs),
          0.5,
        ),
      };
    },
    result: async (script) => (await ask(threads[0]!, script, 1)).result,
    close: async () => {
      await Promise.all(threads.map((t) => t.terminate()));
    },
  };
}

export async function runSandboxAlone(
  config: BenchConfig,
  progress: (line: string) => void,
): Promise<AloneSummary> {
  const { rounds, windowMs, threads } = config.alone;
  const policy = defaultPolicy();
  const jobs = Object.fromEntries(SCRIPTS.map((s) => [s.name, benchJob(s, policy)]));

  // The worker's executors, exactly as `camunda-sandbox worker` would build
  // them with its defaults (and BENCH_WORKER_ENV): the Worker is constructed
  // but never started, so it neither polls nor serves metrics.
  const scratch = mkdtempSync(join(tmpdir(), 'sandbox-bench-'));
  const workerConfig = loadConfig(
    {
      policiesDir: join(ROOT, 'sandbox-policies'),
      scriptsDir: scratch,
      metricsPort: 0,
      logLevel: 'silent',
    },
    config.workerEnv,
  );
  const worker = new Worker(workerConfig, createLogger('silent'));
  await worker.executors.start();

  const runners: Record<AloneContender, Runner> = {
    executor: executorRunner(worker.executors, jobs, workerConfig.maxParallel),
    vm: await threadRunner('vm', jobs, threads),
    quickjs: await threadRunner('quickjs', jobs, threads),
  };

  try {
    // Same answer everywhere, or the comparison is void.
    for (const script of SCRIPTS) {
      const answers = await Promise.all(
        ALONE_CONTENDERS.map(async (c) => JSON.stringify(await runners[c].result(script.name))),
      );
      if (new Set(answers).size !== 1)
        throw new Error(`the ${script.name} script answers differently: ${answers.join(' / ')}`);
    }

    // Warm-up, not recorded: JIT, isolate pools, QuickJS's wasm module.
    progress('sandbox alone: warming up');
    for (const script of SCRIPTS) {
      for (const c of ALONE_CONTENDERS)
        await runners[c].measure(script.name, 'parallel', Math.min(500, windowMs));
    }

    const windows: Record<string, Record<string, Window[]>> = {};
    const key = (c: AloneContender, m: AloneMode) => `${c}/${m}`;
    for (let round = 0; round < rounds; round++) {
      progress(`sandbox alone: round ${round + 1} of ${rounds}`);
      for (const script of SCRIPTS) {
        for (const mode of ['parallel', 'single'] as const) {
          for (const c of rotate(ALONE_CONTENDERS, round)) {
            const w = await runners[c].measure(script.name, mode, windowMs);
            ((windows[script.name] ??= {})[key(c, mode)] ??= []).push(w);
          }
        }
      }
    }

    const cells = {} as AloneSummary['cells'];
    const ratios = {} as AloneSummary['ratios'];
    for (const script of SCRIPTS) {
      const byKey = windows[script.name]!;
      const cell = (c: AloneContender, m: AloneMode): AloneCell => {
        const list = byKey[key(c, m)]!;
        return {
          perSecond: median(list.map((w) => w.perSecond)),
          p50Ms: median(list.map((w) => w.p50Ms)),
          rounds: list.map((w) => w.perSecond),
        };
      };
      cells[script.name] = Object.fromEntries(
        ALONE_CONTENDERS.map((c) => [
          c,
          { parallel: cell(c, 'parallel'), single: cell(c, 'single') },
        ]),
      ) as Record<AloneContender, Record<AloneMode, AloneCell>>;
      const ratio = (other: AloneContender, mode: AloneMode) =>
        median(
          byKey[key('executor', mode)]!.map(
            (w, i) => w.perSecond / byKey[key(other, mode)]![i]!.perSecond,
          ),
        );
      ratios[script.name] = {
        vsQuickjs: ratio('quickjs', 'parallel'),
        vsVm: ratio('vm', 'parallel'),
        vsQuickjsSingle: ratio('quickjs', 'single'),
        vsVmSingle: ratio('vm', 'single'),
      };
    }
    return {
      setup: {
        executors: workerConfig.executors,
        lanes: workerConfig.maxParallel,
        threads,
        policy: policy.name,
      },
      cells,
      ratios,
    };
  } finally {
    for (const runner of Object.values(runners)) await runner.close();
    worker.policies.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
