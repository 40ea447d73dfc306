// `npm run bench`: the sandbox's performance in one command (issue 5).
//
//   1. the sandbox alone: the worker's executor against bare node:vm and QuickJS;
//   2. end to end against a real engine: sandbox worker, bare worker, inline GraalJS;
//   3. the worker's resident memory, idle and at full parallelism;
//
// then a table of the targets. Progress goes to stderr, results to stdout.
// Knobs (environment variables, defaults in parentheses):
//   BENCH_ONLY                 parts to run (alone,e2e,memory; `profile`, where the
//                              executor spends its time, only on request)
//   BENCH_ROUNDS (5), BENCH_ALONE_MS (1000), BENCH_THREADS (cores)      part 1
//   BENCH_E2E_ROUNDS (3), BENCH_E2E_INSTANCES (300), BENCH_E2E_CONCURRENCY (8),
//   BENCH_E2E_INFLIGHT (32), BENCH_E2E_LATENCY_SAMPLES (40),
//   BENCH_E2E_LATENCY_RATE (8 per second), BENCH_E2E_WARMUP (60),
//   BENCH_E2E_CONTENDERS (sandbox,bare,bare-same-client,inline)         part 2
//   BENCH_MEMORY_INSTANCES (200)                                        part 3
//   BENCH_PROFILE_RUNS (400)                                            profile
//   BENCH_CAMUNDA_URL          use a running engine (left running) instead of
//                              starting one on a free port (BENCH_ENGINE_PORT)
//   BENCH_WORKER_ENV           worker settings to try, e.g. "POLL_INTERVAL_MS=0"
//   BENCH_WORKER_FROM          dist (compiled, as shipped) or src (.ts sources)
//   BENCH_JSON                 a file to write the raw results to
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadConfig } from '../src/config/config.ts';
import { buildWorker } from './build-worker.ts';
import { loadBenchConfig } from './config.ts';
import { runEndToEnd, type E2eSummary } from './end-to-end.ts';
import { ensureEngine, type EngineHandle } from './engine.ts';
import { runMemoryUnderLoad, snapshot, type MemorySummary } from './memory.ts';
import { ROOT } from './prelude-host.ts';
import { aloneReport, e2eReport, machineReport, memoryReport, targetsReport } from './report.ts';
import { runSandboxAlone, type AloneSummary } from './sandbox-alone.ts';
import { SandboxWorkerProcess } from './sandbox-worker.ts';
import { sleep } from './stats.ts';

const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const config = loadBenchConfig();
const started = performance.now();

// Whatever this run started is stopped on the way out, Ctrl-C included.
const cleanups: (() => Promise<void>)[] = [];
const cleanUp = async () => {
  for (const cleanup of cleanups.splice(0).reverse())
    await cleanup().catch((err) => progress(`cleanup failed: ${String(err)}`));
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping what this run started`);
    void cleanUp().finally(() => process.exit(130));
  });
}

console.log(machineReport());
console.log('');

let alone: AloneSummary | undefined;
let e2e: E2eSummary | undefined;
let memory: MemorySummary | undefined;
try {
  if (config.parts.includes('alone')) {
    // Before the engine starts: nothing else of ours is using the cores.
    alone = await runSandboxAlone(config, progress);
    console.log(aloneReport(alone, config.alone.rounds, config.alone.windowMs));
    console.log('');
  }

  if (config.parts.includes('e2e') || config.parts.includes('memory')) {
    progress(
      config.camundaUrl
        ? `using the engine at ${config.camundaUrl}`
        : 'starting an engine for this run',
    );
    const engine: EngineHandle = await ensureEngine(config.camundaUrl, config.enginePort);
    cleanups.push(() => engine.stop());
    const suffix = randomBytes(4).toString('hex');
    if (!engine.owned) cleanups.push(() => deleteDeployments(engine, suffix));

    const topic = `bench-sandbox-${suffix}`;
    // The configuration the worker process will compute from its environment.
    const settings = loadConfig(
      {},
      {
        CAMUNDA_URL: engine.url,
        SANDBOX_POLICIES: join(ROOT, 'sandbox-policies'),
        ...config.workerEnv,
      },
    );
    const main =
      config.workerFrom === 'dist' ? buildWorker(progress) : join(ROOT, 'src', 'cli', 'main.ts');
    progress(
      `starting the sandbox worker (${config.workerFrom === 'dist' ? 'compiled' : 'from the .ts sources'})`,
    );
    const worker = await SandboxWorkerProcess.start({
      camundaUrl: engine.url,
      topic,
      env: config.workerEnv,
      main,
    });
    cleanups.push(() => worker.stop());
    await sleep(2000);
    const idle = snapshot(worker);

    if (config.parts.includes('e2e')) {
      e2e = await runEndToEnd(
        config,
        engine,
        { topic, settings, pid: worker.pid, executorPids: () => worker.executorPids() },
        suffix,
        progress,
      );
      console.log(e2eReport(e2e));
      console.log('');
    }
    if (config.parts.includes('memory')) {
      memory = await runMemoryUnderLoad(
        config,
        engine.rest,
        worker,
        topic,
        settings.maxParallel,
        suffix,
        idle,
        progress,
      );
      console.log(memoryReport(memory, config.workerFrom));
      console.log('');
    }
  }

  if (config.parts.includes('profile')) {
    // Its own process: it runs isolates in-process, which needs --no-node-snapshot.
    progress('profiling the executor on the light script');
    const profiled = spawnSync(
      process.execPath,
      ['--no-node-snapshot', join(ROOT, 'bench', 'profile.ts')],
      {
        cwd: ROOT,
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    if (profiled.status !== 0)
      throw new Error(`bench/profile.ts failed (${profiled.status ?? profiled.signal})`);
    console.log('');
  }

  if (alone || e2e || memory) console.log(targetsReport(alone, e2e, memory));
  console.log(`\n(${Math.round((performance.now() - started) / 1000)} s)`);
  const jsonFile = process.env['BENCH_JSON'];
  if (jsonFile)
    writeFileSync(
      jsonFile,
      JSON.stringify({ machine: machineReport(), config, alone, e2e, memory }, null, 2),
    );
} catch (err) {
  progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}

/** On an engine we did not start, remove what this run deployed (and its instances). */
async function deleteDeployments(engine: EngineHandle, suffix: string): Promise<void> {
  const deployments = await engine.rest.call<{ id: string }[]>(
    'GET',
    `/deployment?nameLike=${encodeURIComponent(`%${suffix}%`)}`,
  );
  for (const d of deployments)
    await engine.rest.call(
      'DELETE',
      `/deployment/${d.id}?cascade=true&skipCustomListeners=true&skipIoMappings=true`,
    );
}
