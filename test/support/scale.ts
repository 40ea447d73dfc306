// One scaling run, shared by test/reliability/scale.test.ts and bench/scale.ts:
// N instances of a short-script process wait (suspended) while K worker
// processes start on the same topic; then they are activated at once and the
// run measures until every instance has completed. It then checks that each
// task ran exactly once: one historic run of the step per instance, one
// successful completion per external task, and the workers' 'task done' lines
// together cover each task id exactly once.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

import { processModel } from '../../src/engine-harness/bpmn.ts';
import { testPolicy } from './worker.ts';
import {
  childPids,
  EngineProbe,
  startWorkerProcess,
  waitFor,
  workerFolders,
  type WorkerProcess,
} from './worker-process.ts';

export interface ScaleRunOptions {
  readonly camundaUrl: string;
  readonly workers: number;
  readonly instances: number;
  /** MAX_PARALLEL of each worker. */
  readonly maxParallel?: number;
  readonly timeoutMs?: number;
  /** A process whose CPU time to report as the engine's (its pid), when known. */
  readonly enginePid?: number;
  /** Logs progress lines (the bench passes console.error). */
  readonly progress?: (line: string) => void;
}

export interface ScaleRunResult {
  readonly workers: number;
  readonly instances: number;
  /** From activation to the last instance completed. */
  readonly elapsedMs: number;
  readonly tasksPerSecond: number;
  /** Tasks each worker completed. */
  readonly perWorker: number[];
  /** Exactly-once findings: each should be 0. */
  readonly missing: number;
  readonly duplicateRuns: number;
  readonly duplicateCompletions: number;
  readonly duplicateDoneLines: number;
  readonly failedOrLost: number;
  /** CPU time used during the measured part, in ms: the workers with their executors, and the engine (when its pid was given). */
  readonly workersCpuMs: number;
  readonly engineCpuMs: number | undefined;
  /** The machine's 1-minute load average when the run began. */
  readonly loadAverage: number;
  /** Failed fetch-and-lock requests, all workers together (each one pauses that worker's polling). */
  readonly fetchErrors: number;
  /** Distinct fetch-and-lock error messages seen. */
  readonly fetchErrorMessages: string[];
}

/** The short script: reads a variable, sets one. */
export const SHORT_SCRIPT =
  'const n = execution.getVariable("n");\nexecution.setVariable("doubled", n * 2);\n"ok"';

export async function scaleRun(
  options: ScaleRunOptions,
  track: (worker: WorkerProcess) => void = () => {},
): Promise<ScaleRunResult> {
  const { camundaUrl, workers: workerCount, instances } = options;
  const progress = options.progress ?? (() => {});
  const engine = new EngineProbe(camundaUrl);
  const topic = `scale-${randomUUID().slice(0, 8)}`;
  const key = `scale_${topic.slice(6)}`;
  const started: WorkerProcess[] = [];
  try {
    await engine.rest.deploy(key, [
      {
        name: `${key}.bpmn`,
        xml: processModel({ id: key, step: { kind: 'sandbox', topic, script: SHORT_SCRIPT } }),
      },
    ]);

    // The instances wait at the step, suspended, until every worker is up.
    const ids: string[] = [];
    for (let first = 0; first < instances; first += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, instances - first) }, (_, i) =>
          engine.rest.start(key, { n: { type: 'Integer', value: first + i } }),
        ),
      );
      ids.push(...batch);
    }
    await engine.rest.call('PUT', `/process-definition/key/${key}/suspended`, {
      suspended: true,
      includeProcessInstances: true,
    });
    progress(`${instances} instances started and suspended`);

    const folders = workerFolders([
      testPolicy(topic, { limits: { memoryMb: 32, wallMs: 5000, cpuMs: 2000 } }),
    ]);
    const env = {
      MAX_PARALLEL: options.maxParallel ?? 16,
      POLL_TIMEOUT_MS: 1000,
      LOG_LEVEL: 'info',
    };
    const workers = await Promise.all(
      Array.from({ length: workerCount }, (_, i) =>
        startWorkerProcess({ camundaUrl, folders, workerId: `${topic}-w${i + 1}`, env }),
      ),
    );
    started.push(...workers);
    workers.forEach(track);
    progress(`${workerCount} worker(s) polling`);

    const cpuPids = workers.flatMap((w) => [w.pid, ...childPids(w.pid)]);
    const loadAverage = Math.round(loadavg()[0]! * 10) / 10;
    const workersCpuBefore = cpuPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
    const engineCpuBefore = options.enginePid === undefined ? 0 : cpuMs(options.enginePid);
    const activated = Date.now();
    await engine.rest.call('PUT', `/process-definition/key/${key}/suspended`, {
      suspended: false,
      includeProcessInstances: true,
    });
    await waitFor(
      `${instances} completed instances`,
      async () => ((await engine.completedCount(key)) === instances ? true : undefined),
      options.timeoutMs ?? 120_000,
      100,
    );
    const elapsedMs = Date.now() - activated;
    const workersCpuMs = cpuPids.reduce((sum, pid) => sum + cpuMs(pid), 0) - workersCpuBefore;
    const engineCpuMs =
      options.enginePid === undefined ? undefined : cpuMs(options.enginePid) - engineCpuBefore;
    progress(`${instances} instances completed in ${elapsedMs} ms`);

    // Exactly once.
    const runs = await engine.stepRuns(key);
    const runsPerInstance = new Map<string, number>();
    for (const run of runs)
      runsPerInstance.set(
        run.processInstanceId,
        (runsPerInstance.get(run.processInstanceId) ?? 0) + 1,
      );
    const missing = ids.filter((id) => !runsPerInstance.has(id)).length;
    const duplicateRuns = runs.length - runsPerInstance.size;

    const successCount = (
      await engine.rest.call<{ count: number }>(
        'GET',
        `/history/external-task-log/count?processDefinitionKey=${key}&successLog=true`,
      )
    ).count;
    const duplicateCompletions = successCount - instances;

    // Give the workers' last log lines a moment to arrive on their pipes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const done = workers.flatMap((w) => w.logs.filter((e) => e.msg === 'task done'));
    const doneIds = done.map((e) => String(e['taskId']));
    const duplicateDoneLines = doneIds.length - new Set(doneIds).size;
    const failedOrLost =
      done.filter((e) => e['outcome'] !== 'completed').length + (instances - new Set(doneIds).size);

    return {
      workers: workerCount,
      instances,
      elapsedMs,
      tasksPerSecond: Math.round((instances / elapsedMs) * 1000 * 10) / 10,
      perWorker: workers.map((w) => w.doneTaskIds('completed').length),
      missing,
      duplicateRuns,
      duplicateCompletions,
      duplicateDoneLines,
      failedOrLost,
      workersCpuMs,
      engineCpuMs,
      loadAverage,
      fetchErrors: workers.reduce(
        (sum, w) => sum + w.logs.filter((e) => e.msg === 'fetch-and-lock failed').length,
        0,
      ),
      fetchErrorMessages: [
        ...new Set(
          workers.flatMap((w) =>
            w.logs
              .filter((e) => e.msg === 'fetch-and-lock failed')
              .map((e) => String(e['err']).slice(0, 200)),
          ),
        ),
      ],
    };
  } finally {
    await Promise.all(
      started.map(async (w) => {
        w.signal('SIGTERM');
        await w.waitExit(20_000);
      }),
    );
    await engine.deleteDeployments(key).catch(() => undefined);
  }
}

/** User plus system CPU time of a process so far, in ms (0 when it cannot be read). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}
