// Where the executor spends its time on the light script. Not part of the
// default `npm run bench` (BENCH_ONLY=profile runs it, or directly:
// `node --no-node-snapshot bench/profile.ts`; isolated-vm needs the flag in
// this process, since part of this runs the sandbox in-process).
//
// 1. runScript() in-process (no IPC): the sandbox's own cost per execution.
// 2. The same sequence step by step (a copy of src/sandbox/run-script.ts's
//    steps, timed one by one), with the isolate's CPU clock beside the wall
//    clock to tell work inside V8 from thread hops and host work.
// 3. Through an ExecutorPool of one process, one job at a time: the light
//    job and a trivial one ('1', no variables); the difference to (1) is what
//    IPC and the executor's event loop add.
// 4. A CPU profile inside the isolate (isolated-vm's startCpuProfiler):
//    which JavaScript runs, prelude or script.
// 5. A --cpu-prof of an executor process (host side: isolated-vm calls,
//    zod, IPC serialization, GC).
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serialize } from 'node:v8';

import ivm from 'isolated-vm';

import { CAPABILITIES } from '../src/capabilities/registry.ts';
import { ExecutorPool } from '../src/executor/executor-pool.ts';
import { ExecutionGuard } from '../src/sandbox/guard.ts';
import { IsolatePool } from '../src/sandbox/isolate-pool.ts';
import type { ScriptJob } from '../src/sandbox/job.ts';
import { isolateOutcomeSchema } from '../src/sandbox/outcome.ts';
import { runScript } from '../src/sandbox/run-script.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { benchJob, defaultPolicy, preludeInput } from './prelude-host.ts';
import { num, table } from './report.ts';
import { SCRIPTS } from './scripts.ts';
import { median } from './stats.ts';

const RUNS = Number(process.env['BENCH_PROFILE_RUNS'] ?? 400);
const policy = defaultPolicy();
const light = benchJob(
  SCRIPTS.find((s) => s.name === 'light')!,
  policy,
);
const trivial: ScriptJob = { ...light, source: '1', filename: 'trivial.js', variables: {} };
// The worker's default isolate pool: maxIdle ceil(MAX_PARALLEL / executors) = 4, 500 tasks per isolate.
const POOL_OPTIONS = { maxIdle: 4, maxTasksPerIsolate: 500 };
const logger = createLogger('silent');

// ------------------------------------------------------ 2. step by step

type Step = { wall: number[]; cpu: number[] };
const steps = new Map<string, Step>();
const PARSED = new Set<string>();
const pool = new IsolatePool(POOL_OPTIONS);

/** runScript's sequence for a completing script, each step timed (wall, and the isolate's CPU clock). */
async function steppedOnce(job: ScriptJob): Promise<void> {
  let last = performance.now();
  let pooled: Awaited<ReturnType<IsolatePool['acquire']>> | undefined;
  let lastCpu = 0n;
  const mark = (name: string) => {
    const now = performance.now();
    const cpu = pooled && !pooled.isolate.isDisposed ? pooled.isolate.cpuTime : 0n;
    const step = steps.get(name) ?? { wall: [], cpu: [] };
    step.wall.push(now - last);
    step.cpu.push(lastCpu === 0n ? 0 : Number(cpu - lastCpu) / 1e6);
    steps.set(name, step);
    last = now;
    lastCpu = cpu;
  };

  const inputJson = preludeInput(job);
  mark('build input JSON (host)');
  const hosts = new Map<string, unknown>();
  for (const [name, settings] of Object.entries(job.capabilities)) {
    const capability = CAPABILITIES.get(name)!;
    const signal = new AbortController().signal;
    hosts.set(
      name,
      capability.createHost(settings, {
        taskId: job.taskId,
        topic: job.topic,
        policy: job.policy,
        log: () => {},
        signal,
      }),
    );
  }
  mark('capability hosts (host)');
  pooled = await pool.acquire(job.limits.memoryMb);
  lastCpu = pooled.isolate.cpuTime;
  mark('acquire pooled isolate');
  const guard = new ExecutionGuard(pooled.isolate, job.limits.wallMs, job.limits.cpuMs);
  mark('guard timers');
  const key = createHash('sha256')
    .update(job.filename)
    .update('\0')
    .update(job.source)
    .digest('hex');
  if (!PARSED.has(key)) {
    (await pooled.isolate.compileScript(job.source, { filename: job.filename })).release();
    PARSED.add(key);
  }
  mark('syntax check (cached: sha256)');
  const context = await pooled.isolate.createContext();
  mark('createContext');
  const install = await pooled.prelude.run(context, { reference: true });
  mark('prelude: run compiled script');
  const callbacks = [
    new ivm.Callback(() => ({})),
    new ivm.Reference(async () => ({})),
    new ivm.Callback(() => {}, { ignored: true }),
  ];
  mark('host callbacks (Callback, Reference)');
  const run = await install.apply(undefined, [...callbacks, inputJson], {
    result: { reference: true },
  });
  mark('prelude: install (parse input, traps, shims)');
  const text = await run.apply(undefined, [job.source, job.filename], {
    result: { promise: true, copy: true },
  });
  mark('script run + encode outcome');
  const parsed = isolateOutcomeSchema.safeParse(JSON.parse(text as string));
  if (!parsed.success || parsed.data.kind !== 'completed') throw new Error(String(text));
  mark('parse + zod-validate outcome (host)');
  guard[Symbol.dispose]();
  install.release();
  run.release();
  context.release();
  pool.release(pooled, true);
  mark('release references, context, isolate');
}

// ---------------------------------------- 1 and 3, interleaved with 2

// The paths run in small batches, round-robin, so that the noise of a
// shared machine falls on each alike; every number is a median over all runs.
const executors = new ExecutorPool({ processes: 1, isolates: POOL_OPTIONS, logger });
await executors.start();
const completed = (outcome: { kind: string }) => {
  if (outcome.kind !== 'completed') throw new Error(JSON.stringify(outcome));
};
const paths: [string, () => Promise<unknown>][] = [
  ['runScript() in-process, light', async () => completed(await runScript(light, pool, () => {}))],
  ['ExecutorPool (1 process, IPC), light', async () => completed(await executors.run(light))],
  ['runScript steps timed one by one, light', () => steppedOnce(light)],
  [
    'runScript() in-process, trivial script',
    async () => completed(await runScript(trivial, pool, () => {})),
  ],
  [
    'ExecutorPool (1 process, IPC), trivial script',
    async () => completed(await executors.run(trivial)),
  ],
];
const timings = new Map<string, number[]>(paths.map(([name]) => [name, []]));
for (const [, once] of paths) for (let i = 0; i < 30; i++) await once();
steps.clear();
const BATCH = 20;
for (let done = 0; done < RUNS; done += BATCH) {
  for (const [name, once] of paths) {
    for (let i = 0; i < BATCH; i++) {
      const t = performance.now();
      await once();
      timings.get(name)!.push(performance.now() - t);
    }
  }
}
await executors.stop();

// ------------------------------------------- 4. inside the isolate (V8 profile)

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/**
 * Self time per function (ms), from the samples and their time deltas; with
 * a window (µs on the monotonic clock, which V8's profiler and
 * process.hrtime share on Linux), only the samples inside it.
 */
function selfTimes(profile: CpuProfile, window?: [number, number]): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window && (at < window[0] || at > window[1])) continue;
    const node = byId.get(samples[i]!)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.split('/').slice(-2).join('/');
    const name = `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
    totals.set(name, (totals.get(name) ?? 0) + (deltas[i + 1] ?? 0) / 1000);
  }
  return totals;
}

function top(totals: Map<string, number>, count: number, skip: RegExp = /^\((idle)\)/): string[][] {
  const all = [...totals.entries()].filter(([name]) => !skip.test(name));
  const sum = all.reduce((a, [, v]) => a + v, 0);
  return all
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => [name.slice(0, 90), num(ms), `${num((100 * ms) / sum, 2)}%`]);
}

// At most 100 runs: with isolated-vm's profiler on, a run after about 150
// stalls for seconds (seen on isolated-vm 7.0.1), which the CPU guard ends.
const PROFILED_RUNS = Math.min(RUNS, 100);
const profilePool = new IsolatePool({ maxIdle: 1, maxTasksPerIsolate: 1_000_000 });
const profiled = await profilePool.acquire(light.limits.memoryMb);
profiled.isolate.startCpuProfiler('light');
profilePool.release(profiled, true);
for (let i = 0; i < PROFILED_RUNS; i++) await runScript(light, profilePool, () => {});
const again = await profilePool.acquire(light.limits.memoryMb);
if (again !== profiled) throw new Error('the profiled isolate was not reused');
const isolateProfiles = (await again.isolate.stopCpuProfiler('light')) as unknown as {
  profile: CpuProfile;
}[];
profilePool.release(again, false);
const isolateTotals = new Map<string, number>();
for (const { profile } of isolateProfiles)
  for (const [k, v] of selfTimes(profile)) isolateTotals.set(k, (isolateTotals.get(k) ?? 0) + v);

// --------------------------------------------- 5. host side of an executor

const profileDir = mkdtempSync(join(tmpdir(), 'sandbox-bench-prof-'));
const savedOptions = process.env['NODE_OPTIONS'];
process.env['NODE_OPTIONS'] =
  `${savedOptions ?? ''} --cpu-prof --cpu-prof-dir=${profileDir}`.trim();
const profiledExecutors = new ExecutorPool({ processes: 1, isolates: POOL_OPTIONS, logger });
await profiledExecutors.start();
if (savedOptions === undefined) delete process.env['NODE_OPTIONS'];
else process.env['NODE_OPTIONS'] = savedOptions;
// Start-up (module loading, the first compiles) is left out: only samples
// taken while the measured jobs ran count.
for (let i = 0; i < 50; i++) await profiledExecutors.run(light);
const windowStart = Number(process.hrtime.bigint() / 1000n);
for (let i = 0; i < RUNS; i++) await profiledExecutors.run(light);
const windowEnd = Number(process.hrtime.bigint() / 1000n);
await profiledExecutors.stop();
let hostTotals = new Map<string, number>();
for (let i = 0; i < 50 && hostTotals.size === 0; i++) {
  const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length > 0)
    hostTotals = selfTimes(
      JSON.parse(readFileSync(join(profileDir, files[0]!), 'utf8')) as CpuProfile,
      [windowStart, windowEnd],
    );
  else await new Promise((r) => setTimeout(r, 100));
}
rmSync(profileDir, { recursive: true, force: true });

// ----------------------------------------------------------------- report

const stepRows = [...steps.entries()].map(([name, s]) => [
  name,
  num(median(s.wall)),
  num(s.wall.reduce((a, b) => a + b, 0) / s.wall.length),
  num(median(s.cpu)),
]);
const stepTotal = [...steps.values()].reduce((sum, s) => sum + median(s.wall), 0);
console.log(
  `Executor profile, light script (${RUNS} runs per path, interleaved in batches of ${BATCH}), ms per execution`,
);
console.log(
  table(
    ['path', 'median', 'mean'],
    [...timings.entries()].map(([name, list]) => [
      name,
      num(median(list)),
      num(list.reduce((x, y) => x + y, 0) / list.length),
    ]),
  ),
);
console.log(
  `IPC payload of the light job: ${serialize(light).length} bytes (v8 serialize, advanced serialization)`,
);
console.log('');
console.log(
  `Steps of runScript (a timed copy of its sequence); isolate CPU = isolate.cpuTime spent in the step. Sum of medians ${num(stepTotal)} ms`,
);
console.log(table(['step', 'median', 'mean', 'isolate CPU'], stepRows));
console.log('');
console.log(
  `Inside the isolate: self time by function (isolated-vm CPU profiler, ${PROFILED_RUNS} runs)`,
);
console.log(table(['function', 'ms', 'share'], top(isolateTotals, 15)));
console.log('');
console.log(
  `Executor process, host side, ${RUNS} light jobs after start-up: self time by function (--cpu-prof), idle excluded`,
);
console.log(table(['function', 'ms', 'share'], top(hostTotals, 15)));
const hostBusy = [...hostTotals.entries()]
  .filter(([name]) => !name.startsWith('(idle)'))
  .reduce((a, [, v]) => a + v, 0);
const hostIdle = hostTotals.get('(idle)') ?? 0;
console.log(
  `host thread busy ${num(hostBusy)} ms of ${num(hostBusy + hostIdle)} ms sampled (${num(hostBusy / RUNS)} ms per job)`,
);
pool.dispose();
