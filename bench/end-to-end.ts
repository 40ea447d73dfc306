// Part 2: end to end against a real engine. One process (start → one step →
// end) whose step is the light script, served four ways:
//
// - sandbox: an external task on the sandbox worker's topic (the worker runs
//   as its own process with the default policy and configuration);
// - bare: a camunda-external-task-client-js worker that completes at once,
//   tuned to go as fast as the engine lets it (the engine's own limit);
// - bare-same-client: the same bare worker with the sandbox worker's client
//   settings (tells the sandbox's cost apart from its polling settings);
// - inline: the same script as a GraalJS script task inside the engine.
//
// Each round runs every contender, in a rotated order, through two phases:
//
// - throughput: N instances started by C concurrent requests, with at most W
//   instances in flight (started, not ended), so the engine's queue stays
//   short and steady instead of piling N tasks up front. Instances per
//   second are taken from the engine's own history clock: N / (last endTime
//   − first startTime), which is blind to how often we poll for the end;
// - latency: M instances arriving at random at a low rate R (the same
//   arrival times for every contender of a round), start-to-end as a user
//   sees it under a light load, from history (durationInMillis = endTime −
//   startTime); p50 and p99 over the samples of all rounds.
//
// Instances of a phase are told apart by business key; a run's process
// definitions and topics carry a random suffix, so a shared engine is safe.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import type { WorkerConfig } from '../src/config/config.ts';
import { processModel } from '../src/engine-harness/bpmn.ts';
import type { EngineRest } from '../src/engine-harness/engine-rest.ts';
import type { TypedVariables } from '../src/variables/camunda.ts';
import type { BenchConfig, E2eContender } from './config.ts';
import type { BareWorkerSettings } from './bare-worker.ts';
import { startCpuMeter, type CpuRoles } from './cpu.ts';
import { enginePid } from './engine.ts';
import { benchJob, completionVariables, defaultPolicy, ROOT } from './prelude-host.ts';
import { LIGHT_SCRIPT, LIGHT_VARIABLES, SCRIPTS } from './scripts.ts';
import { median, quantile, rotate, sleep } from './stats.ts';

const RESULT_VARIABLE = 'result';

export interface PhaseResult {
  /** Instances per second, engine clock. */
  perSecond: number;
  /** Start-to-end per instance, ms (history). */
  latenciesMs: number[];
}

export interface E2eCell {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Median start-to-end in the throughput phase (W in flight): queueing included. */
  loadedP50Ms: number;
  rounds: number[];
  /** CPU time per instance in the throughput phase, ms, by party (engine, worker, executors, driver). */
  cpuMsPerInstance: Record<string, number>;
}

export interface E2eSummary {
  setup: {
    engineVersion: string;
    instances: number;
    concurrency: number;
    inflight: number;
    latencySamples: number;
    latencyRate: number;
    rounds: number;
    worker: string;
    bare: string;
    bareSameClient: string;
  };
  cells: Partial<Record<E2eContender, E2eCell>>;
  ratios: {
    sandboxVsBare?: number;
    sandboxVsBareSameClient?: number;
    bareSameClientVsBare?: number;
    sandboxVsInline?: number;
    /** Median over rounds of the in-round sandbox p50 − inline p50 (latency phase), ms. */
    addedP50Ms?: number;
  };
}

/** Camunda writes `2026-01-02T03:04:05.678+0000`; Date.parse wants `+00:00`. */
function engineTime(text: string): number {
  return Date.parse(text.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
}

interface HistoricInstance {
  id: string;
  startTime: string;
  endTime: string | null;
  durationInMillis: number | null;
  state: string;
}

async function history(
  engine: EngineRest,
  key: string,
  businessKey: string,
  expected: number,
): Promise<HistoricInstance[]> {
  const rows = await engine.call<HistoricInstance[]>(
    'GET',
    `/history/process-instance?processDefinitionKey=${key}&processInstanceBusinessKey=${businessKey}&finished=true&firstResult=0&maxResults=${expected}`,
  );
  if (rows.length !== expected)
    throw new Error(
      `${key}/${businessKey}: ${rows.length} of ${expected} instances in the history`,
    );
  return rows;
}

async function finishedCount(
  engine: EngineRest,
  key: string,
  businessKey: string,
): Promise<number> {
  const { count } = await engine.call<{ count: number }>(
    'GET',
    `/history/process-instance/count?processDefinitionKey=${key}&processInstanceBusinessKey=${businessKey}&finished=true`,
  );
  return count;
}

export interface DriveOptions {
  instances: number;
  concurrency: number;
  inflight: number;
  timeoutMs: number;
  /** Called every poll while instances run (memory sampling). */
  onTick?: () => void;
}

/**
 * Starts `instances` instances of `key` with bounded concurrency and at most
 * `inflight` unfinished at any time; resolves when all have ended.
 */
export async function driveInstances(
  engine: EngineRest,
  key: string,
  businessKey: string,
  variables: TypedVariables,
  options: DriveOptions,
): Promise<PhaseResult> {
  let started = 0;
  let endedByStart = 0; // inline: the start request answers `ended: true`
  let endedPolled = 0;
  const ended = () => Math.max(endedByStart, endedPolled);
  let failure: unknown;
  const deadline = Date.now() + options.timeoutMs;

  const starter = async () => {
    while (started < options.instances && failure === undefined) {
      if (started - ended() >= options.inflight) {
        await sleep(2);
        continue;
      }
      started += 1;
      try {
        const instance = await engine.call<{ id: string; ended: boolean }>(
          'POST',
          `/process-definition/key/${key}/start`,
          {
            variables,
            businessKey,
          },
        );
        if (instance.ended) endedByStart += 1;
      } catch (err) {
        failure ??= err;
      }
    }
  };
  const poller = async () => {
    while (ended() < options.instances && failure === undefined) {
      if (Date.now() > deadline) {
        failure = new Error(
          `${key}: ${ended()} of ${options.instances} instances ended within ${options.timeoutMs} ms`,
        );
        break;
      }
      options.onTick?.();
      // Inline instances end inside their start request: no need to ask.
      if (started > endedByStart)
        endedPolled = await finishedCount(engine, key, businessKey).catch(
          (err) => ((failure ??= err), 0),
        );
      await sleep(20);
    }
  };
  await Promise.all([...Array.from({ length: options.concurrency }, starter), poller()]);
  if (failure !== undefined) throw failure;

  const rows = await history(engine, key, businessKey, options.instances);
  const first = Math.min(...rows.map((r) => engineTime(r.startTime)));
  const last = Math.max(...rows.map((r) => engineTime(r.endTime!)));
  return {
    perSecond: (options.instances / Math.max(1, last - first)) * 1000,
    latenciesMs: rows.map(
      (r) => r.durationInMillis ?? engineTime(r.endTime!) - engineTime(r.startTime),
    ),
  };
}

/** A small seeded generator (mulberry32): every contender gets the same arrival times in a round. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * M instances arriving at random (exponential gaps, mean 1/rate), each
 * started on time whether or not the earlier ones have ended: a light,
 * steady load. Random arrivals, not one-after-the-other: a closed loop would
 * start each instance right after the last one ended, i.e. always in the
 * pause a worker takes after a fetch, and so measure that pause every time.
 */
async function latencyPhase(
  engine: EngineRest,
  key: string,
  businessKey: string,
  samples: number,
  ratePerSecond: number,
  seed: number,
): Promise<number[]> {
  const random = seeded(seed);
  const starts: Promise<unknown>[] = [];
  let due = performance.now();
  for (let i = 0; i < samples; i++) {
    due += (-Math.log(1 - random()) / ratePerSecond) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    starts.push(
      engine.call('POST', `/process-definition/key/${key}/start`, {
        variables: LIGHT_VARIABLES,
        businessKey,
      }),
    );
  }
  await Promise.all(starts);
  const deadline = Date.now() + 60_000;
  while ((await finishedCount(engine, key, businessKey)) < samples) {
    if (Date.now() > deadline)
      throw new Error(`${key}: the latency instances did not all end within 60 s`);
    await sleep(20);
  }
  return (await history(engine, key, businessKey, samples)).map((r) => r.durationInMillis!);
}

function startBareWorker(settings: BareWorkerSettings): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bench', 'bare-worker.ts'), JSON.stringify(settings)],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    child.once('exit', (code) =>
      reject(new Error(`the bare worker exited (${code}) before it was ready`)),
    );
    child.stdout!.setEncoding('utf8').once('data', () => resolve(child));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export interface SandboxSide {
  topic: string;
  /** The configuration the sandbox worker runs with (defaults + BENCH_WORKER_ENV). */
  settings: WorkerConfig;
  pid: number;
  executorPids: () => number[];
}

export async function runEndToEnd(
  config: BenchConfig,
  engine: { rest: EngineRest; version: string; url: string },
  sandbox: SandboxSide,
  suffix: string,
  progress: (line: string) => void,
): Promise<E2eSummary> {
  const {
    contenders,
    rounds,
    instances,
    concurrency,
    inflight,
    latencySamples,
    latencyRate,
    warmup,
  } = config.e2e;
  const rest = engine.rest;
  const key = (c: E2eContender) => `bench_${c.replace(/-/g, '_')}_${suffix}`;
  const topic = (c: E2eContender) => (c === 'sandbox' ? sandbox.topic : `bench-${c}-${suffix}`);

  for (const c of contenders) {
    const step =
      c === 'inline'
        ? { kind: 'inline' as const, script: LIGHT_SCRIPT, resultVariable: RESULT_VARIABLE }
        : {
            kind: 'sandbox' as const,
            topic: topic(c),
            script: LIGHT_SCRIPT,
            resultVariable: RESULT_VARIABLE,
          };
    await rest.deploy(key(c), [
      { name: `${key(c)}.bpmn`, xml: processModel({ id: key(c), step }) },
    ]);
  }

  const light = SCRIPTS.find((s) => s.name === 'light')!;
  const completion = await completionVariables(benchJob(light, defaultPolicy()), RESULT_VARIABLE);
  const w = sandbox.settings;
  const lockDurationMs = defaultPolicy().limits.wallMs + w.lockMarginMs;
  const bareSettings: Record<'bare' | 'bare-same-client', BareWorkerSettings> = {
    bare: {
      baseUrl: engine.url,
      topic: topic('bare'),
      maxTasks: w.maxParallel,
      intervalMs: 0,
      asyncResponseTimeoutMs: w.pollTimeoutMs,
      lockDurationMs,
      variables: completion,
    },
    'bare-same-client': {
      baseUrl: engine.url,
      topic: topic('bare-same-client'),
      maxTasks: w.maxParallel,
      maxParallelExecutions: w.maxParallel,
      intervalMs: w.pollIntervalMs,
      asyncResponseTimeoutMs: w.pollTimeoutMs,
      lockDurationMs,
      variables: completion,
    },
  };
  const describe = (s: BareWorkerSettings) =>
    `maxTasks ${s.maxTasks}, parallel cap ${s.maxParallelExecutions ?? 'none'}, poll pause ${s.intervalMs} ms, long poll ${s.asyncResponseTimeoutMs} ms`;

  const children: ChildProcess[] = [];
  const bareChild: Partial<Record<E2eContender, ChildProcess>> = {};
  // Who uses the cores while a contender runs: the engine (when this machine
  // runs it), the contender's worker and executors, and this driver.
  const jvm = enginePid(engine.url);
  const cpuRoles = (c: E2eContender): CpuRoles => ({
    engine: () => (jvm === undefined ? [] : [jvm]),
    ...(c === 'sandbox' ? { worker: () => [sandbox.pid], executors: sandbox.executorPids } : {}),
    ...(bareChild[c]?.pid === undefined ? {} : { worker: () => [bareChild[c]!.pid!] }),
    driver: () => [process.pid],
  });
  try {
    for (const c of contenders) {
      if (c === 'bare' || c === 'bare-same-client') {
        children.push((bareChild[c] = await startBareWorker(bareSettings[c])));
      }
    }

    const throughput = (c: E2eContender, bk: string, n: number) =>
      driveInstances(rest, key(c), bk, LIGHT_VARIABLES, {
        instances: n,
        concurrency,
        inflight,
        timeoutMs: Math.max(120_000, n * 500),
      });

    // Warm-up, not recorded: the JVM's JIT and GraalJS's first contexts
    // (the very first inline instance takes seconds), the worker's isolate
    // pool and code caches, connection pools.
    for (const c of contenders) {
      progress(`end to end: warming up ${c}`);
      if (warmup > 0) await throughput(c, 'warmup', warmup);
      await latencyPhase(rest, key(c), 'warmup-latency', 5, latencyRate, 99);
    }

    const perRound: Record<
      string,
      { perSecond: number; p50: number; loadedP50: number; cpu: Record<string, number> }[]
    > = {};
    const pooled: Record<string, number[]> = {};
    for (let round = 0; round < rounds; round++) {
      const results: Record<string, PhaseResult> = {};
      const cpu: Record<string, Record<string, number>> = {};
      for (const c of rotate(contenders, round)) {
        progress(`end to end: round ${round + 1} of ${rounds}: ${c}, ${instances} instances`);
        const meter = startCpuMeter(cpuRoles(c));
        results[c] = await throughput(c, `r${round}`, instances);
        cpu[c] = Object.fromEntries(
          Object.entries(meter()).map(([role, ms]) => [role, ms / instances]),
        );
      }
      const latencies: Record<string, number[]> = {};
      for (const c of rotate(contenders, round)) {
        progress(
          `end to end: round ${round + 1} of ${rounds}: ${c}, ${latencySamples} instances arriving at ${latencyRate}/s`,
        );
        latencies[c] = await latencyPhase(
          rest,
          key(c),
          `r${round}-latency`,
          latencySamples,
          latencyRate,
          round + 1,
        );
      }
      for (const c of contenders) {
        (perRound[c] ??= []).push({
          perSecond: results[c]!.perSecond,
          p50: quantile(latencies[c]!, 0.5),
          loadedP50: quantile(results[c]!.latenciesMs, 0.5),
          cpu: cpu[c]!,
        });
        (pooled[c] ??= []).push(...latencies[c]!);
      }
    }

    const cells: E2eSummary['cells'] = {};
    for (const c of contenders) {
      const list = perRound[c]!;
      cells[c] = {
        perSecond: median(list.map((r) => r.perSecond)),
        // Percentiles over every round's samples: a p99 needs more than one round's 40.
        p50Ms: quantile(pooled[c]!, 0.5),
        p99Ms: quantile(pooled[c]!, 0.99),
        loadedP50Ms: median(list.map((r) => r.loadedP50)),
        rounds: list.map((r) => r.perSecond),
        cpuMsPerInstance: Object.fromEntries(
          Object.keys(list[0]!.cpu).map((role) => [
            role,
            median(list.map((r) => r.cpu[role] ?? 0)),
          ]),
        ),
      };
    }
    const inRound = (
      a: E2eContender,
      b: E2eContender,
      f: (x: (typeof perRound)[string][number], y: (typeof perRound)[string][number]) => number,
    ) =>
      perRound[a] && perRound[b]
        ? median(perRound[a]!.map((x, i) => f(x, perRound[b]![i]!)))
        : undefined;
    const ratio = (a: E2eContender, b: E2eContender) =>
      inRound(a, b, (x, y) => x.perSecond / y.perSecond);

    return {
      setup: {
        engineVersion: engine.version,
        instances,
        concurrency,
        inflight,
        latencySamples,
        latencyRate,
        rounds,
        worker: `MAX_PARALLEL ${w.maxParallel}, ${w.executors} executors, POLL_INTERVAL_MS ${w.pollIntervalMs}, POLL_TIMEOUT_MS ${w.pollTimeoutMs}, LOG_LEVEL ${w.logLevel}`,
        bare: describe(bareSettings.bare),
        bareSameClient: describe(bareSettings['bare-same-client']),
      },
      cells,
      ratios: {
        sandboxVsBare: ratio('sandbox', 'bare'),
        sandboxVsBareSameClient: ratio('sandbox', 'bare-same-client'),
        bareSameClientVsBare: ratio('bare-same-client', 'bare'),
        sandboxVsInline: ratio('sandbox', 'inline'),
        addedP50Ms: inRound('sandbox', 'inline', (x, y) => x.p50 - y.p50),
      },
    };
  } finally {
    for (const child of children) await stopChild(child);
  }
}
