// Item 8 of issue 4: throughput with 1, 2 and 3 worker processes against one
// engine, each run checked for exactly-once execution. Bounded: one run per
// worker count, each with its own timeout.
//
//   node bench/scale.ts [--instances 300] [--workers 1,2,3] [--max-parallel 16] [--repeat 1]
//
// With --repeat R the worker counts are interleaved R times (1,2,3,1,2,3, ...)
// and the median per worker count is printed too: on a shared machine the
// load of other processes moves single runs a lot (the load average is printed).
//
// CAMUNDA_URL (default http://127.0.0.1:8080/engine-rest) must point at a
// running engine; the bench deploys its own process and deletes it afterwards.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { scaleRun, type ScaleRunResult } from '../test/support/scale.ts';
import { killAllWorkerProcesses } from '../test/support/worker-process.ts';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '300' },
    workers: { type: 'string', default: '1,2,3' },
    'max-parallel': { type: 'string', default: '16' },
    repeat: { type: 'string', default: '1' },
  },
});
const camundaUrl = process.env['CAMUNDA_URL'] ?? 'http://127.0.0.1:8080/engine-rest';
const instances = Number(values.instances);
const counts = values.workers.split(',').map(Number);
const maxParallel = Number(values['max-parallel']);
const repeat = Math.max(1, Number(values.repeat));
// The local engine's pid (scripts/engine.mjs writes it), to report its CPU time.
const enginePid = (() => {
  try {
    return (
      Number(
        readFileSync(
          new URL(`../.engine/engine-${new URL(camundaUrl).port || '80'}.pid`, import.meta.url),
          'utf8',
        ).trim(),
      ) || undefined
    );
  } catch {
    return undefined;
  }
})();

process.once('SIGINT', () => {
  void killAllWorkerProcesses().then(() => process.exit(130));
});

const results: ScaleRunResult[] = [];
let failed = false;
try {
  for (const workers of Array.from({ length: repeat }, () => counts).flat()) {
    console.error(
      `-- ${workers} worker(s), ${instances} instances, MAX_PARALLEL ${maxParallel} each`,
    );
    const result = await scaleRun({
      camundaUrl,
      workers,
      instances,
      maxParallel,
      enginePid,
      timeoutMs: 300_000,
      progress: (line) => console.error(`   ${line}`),
    });
    results.push(result);
    if (result.fetchErrors > 0)
      console.error(
        `   ${result.fetchErrors} failed fetches: ${result.fetchErrorMessages.join(' | ')}`,
      );
    const problems =
      result.missing +
      result.duplicateRuns +
      result.duplicateCompletions +
      result.duplicateDoneLines +
      result.failedOrLost;
    if (problems > 0) failed = true;
  }
} finally {
  await killAllWorkerProcesses();
}

const base = results.find((r) => r.workers === counts[0])?.tasksPerSecond ?? 1;
console.log(
  `scale: ${instances} short-script tasks per run, engine ${camundaUrl}, MAX_PARALLEL ${maxParallel} per worker`,
);
console.log(
  'workers  elapsed_ms  tasks/s  speedup  per-worker       missing  dup_runs  dup_completions  dup_done_lines  failed_or_lost  fetch_errors' +
    '  worker_cpu_ms/task  engine_cpu_ms/task  cores_busy  load_avg',
);
for (const r of results) {
  console.log(
    [
      String(r.workers).padEnd(7),
      String(r.elapsedMs).padStart(10),
      String(r.tasksPerSecond).padStart(8),
      `${(r.tasksPerSecond / base).toFixed(2)}x`.padStart(8),
      r.perWorker.join('/').padEnd(16),
      String(r.missing).padStart(7),
      String(r.duplicateRuns).padStart(9),
      String(r.duplicateCompletions).padStart(16),
      String(r.duplicateDoneLines).padStart(15),
      String(r.failedOrLost).padStart(15),
      String(r.fetchErrors).padStart(12),
      (r.workersCpuMs / r.instances).toFixed(1).padStart(18),
      (r.engineCpuMs === undefined ? '-' : (r.engineCpuMs / r.instances).toFixed(1)).padStart(18),
      ((r.workersCpuMs + (r.engineCpuMs ?? 0)) / r.elapsedMs).toFixed(2).padStart(10),
      String(r.loadAverage).padStart(8),
    ].join('  '),
  );
}
if (failed) {
  console.log('FAILED: a task was lost or ran more than once');
  process.exitCode = 1;
}

if (repeat > 1) {
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const baseMedian = median(
    results.filter((r) => r.workers === counts[0]).map((r) => r.tasksPerSecond),
  );
  console.log(`median of ${repeat} runs:`);
  for (const workers of counts) {
    const rates = results.filter((r) => r.workers === workers).map((r) => r.tasksPerSecond);
    console.log(
      `  ${workers} worker(s): ${median(rates).toFixed(1)} tasks/s (${(median(rates) / baseMedian).toFixed(2)}x; runs ${rates.join(', ')})`,
    );
  }
}
