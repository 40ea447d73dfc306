// The benchmark's knobs, all from the environment, with defaults that keep a
// full run to a few minutes on 2 cores. A bad value stops the run with its name.
import { availableParallelism } from 'node:os';

function int(name: string, fallback: number, min = 1): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${name} must be an integer >= ${min}, got '${text}'`);
  return value;
}

function list<T extends string>(name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const text = process.env[name];
  if (text === undefined || text === '') return [...fallback];
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items)
    if (!(allowed as readonly string[]).includes(item))
      throw new Error(`${name}: unknown '${item}' (allowed: ${allowed.join(', ')})`);
  return items as T[];
}

/** `K=V K=V` → env: worker settings to try (e.g. `POLL_INTERVAL_MS=0`), applied to every sandbox worker here. */
function workerEnv(text: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of (text ?? '').split(/\s+/).filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`BENCH_WORKER_ENV: '${pair}' is not NAME=value`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

export const PARTS = ['alone', 'e2e', 'memory', 'profile'] as const;
/** The profile is for developers: on request only (BENCH_ONLY=profile). */
const DEFAULT_PARTS = ['alone', 'e2e', 'memory'] as const;
export type Part = (typeof PARTS)[number];
export const E2E_CONTENDERS = ['sandbox', 'bare', 'bare-same-client', 'inline'] as const;
export type E2eContender = (typeof E2E_CONTENDERS)[number];

export interface BenchConfig {
  /** Parts to run (BENCH_ONLY=alone,e2e,memory,profile; default all but profile). */
  parts: Part[];
  /** An engine to use instead of starting one (BENCH_CAMUNDA_URL); it is left running. */
  camundaUrl: string | undefined;
  /** Port for the engine this run starts (BENCH_ENGINE_PORT; default: a free port). */
  enginePort: number | undefined;
  /** Worker settings for every sandbox worker of the run (BENCH_WORKER_ENV="POLL_INTERVAL_MS=0 MAX_PARALLEL=16"). */
  workerEnv: Record<string, string>;
  /** Run the end-to-end worker compiled (as shipped, default) or from its .ts sources (BENCH_WORKER_FROM=dist|src). */
  workerFrom: 'dist' | 'src';
  alone: {
    rounds: number;
    /** Length of one measurement window, per contender, script and mode. */
    windowMs: number;
    /** Threads for node:vm and QuickJS: one per core, as the executor has one process per core. */
    threads: number;
  };
  e2e: {
    contenders: E2eContender[];
    rounds: number;
    /** Instances per contender per round in the throughput phase. */
    instances: number;
    /** Start requests in flight at once. */
    concurrency: number;
    /** Instances started but not ended, at most (keeps the engine's queue short and steady). */
    inflight: number;
    /** Instances per contender per round in the latency phase. */
    latencySamples: number;
    /** Their mean arrival rate per second (random arrivals). */
    latencyRate: number;
    /** Instances per contender before round 1, not measured (JIT, GraalJS, pools). */
    warmup: number;
  };
  memory: {
    /** Heavy-script instances run through the worker while its memory is sampled. */
    instances: number;
  };
}

export function loadBenchConfig(): BenchConfig {
  const cores = availableParallelism();
  const port = process.env['BENCH_ENGINE_PORT'];
  return {
    parts: list('BENCH_ONLY', PARTS, DEFAULT_PARTS),
    camundaUrl: process.env['BENCH_CAMUNDA_URL'] || undefined,
    enginePort: port ? int('BENCH_ENGINE_PORT', 0) : undefined,
    workerEnv: workerEnv(process.env['BENCH_WORKER_ENV']),
    workerFrom: list('BENCH_WORKER_FROM', ['dist', 'src'] as const, ['dist'])[0]!,
    alone: {
      rounds: int('BENCH_ROUNDS', 5),
      windowMs: int('BENCH_ALONE_MS', 1000, 100),
      threads: int('BENCH_THREADS', cores),
    },
    e2e: {
      contenders: list('BENCH_E2E_CONTENDERS', E2E_CONTENDERS, E2E_CONTENDERS),
      rounds: int('BENCH_E2E_ROUNDS', 3),
      instances: int('BENCH_E2E_INSTANCES', 300),
      concurrency: int('BENCH_E2E_CONCURRENCY', 8),
      inflight: int('BENCH_E2E_INFLIGHT', 32),
      latencySamples: int('BENCH_E2E_LATENCY_SAMPLES', 40),
      latencyRate: int('BENCH_E2E_LATENCY_RATE', 8),
      warmup: int('BENCH_E2E_WARMUP', 60, 0),
    },
    memory: {
      instances: int('BENCH_MEMORY_INSTANCES', 200),
    },
  };
}
