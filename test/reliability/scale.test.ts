// Issue 4, item 8: several worker processes share the topics of one engine as
// competing consumers, and each task runs exactly once. The throughput with 1,
// 2 and 3 workers is measured by `node bench/scale.ts` (too slow for CI).
import { afterAll, describe, expect, it } from 'vitest';

import { scaleRun } from '../support/scale.ts';
import { ENGINE_URL } from '../support/worker.ts';
import { killAllWorkerProcesses } from '../support/worker-process.ts';

describe('three worker processes against one engine', () => {
  afterAll(() => killAllWorkerProcesses());

  it('run each of 300 tasks exactly once between them: one run of the step per instance, one completion, one done line', async () => {
    const result = await scaleRun({
      camundaUrl: ENGINE_URL,
      workers: 3,
      instances: 300,
      maxParallel: 16,
      timeoutMs: 90_000,
    });
    console.log(
      `[scale] 3 workers, 300 tasks: ${result.elapsedMs} ms, ${result.tasksPerSecond} tasks/s, per worker ${result.perWorker.join('/')}`,
    );
    expect(result).toMatchObject({
      missing: 0,
      duplicateRuns: 0,
      duplicateCompletions: 0,
      duplicateDoneLines: 0,
      failedOrLost: 0,
    });
    expect(result.perWorker.reduce((a, b) => a + b, 0)).toBe(300);
    // Competing consumers: every worker took a share.
    for (const share of result.perWorker) expect(share).toBeGreaterThan(0);
  }, 180_000);
});
