// Issue 4, item 1: a graceful stop (SIGTERM, SIGINT) of a worker PROCESS with
// tasks in flight. Either the tasks finish within the grace period and the
// process exits 0, or they are unlocked and a second worker takes them at once
// instead of waiting for their locks to expire.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { processModel } from '../../src/engine-harness/bpmn.ts';
import { ENGINE_URL, testPolicy, uniqueTopic } from '../support/worker.ts';
import {
  EngineProbe,
  killAllWorkerProcesses,
  sleep,
  startWorkerProcess,
  waitFor,
  workerFolders,
  type WorkerProcess,
} from '../support/worker-process.ts';

const engine = new EngineProbe(ENGINE_URL);
const deployed: string[] = [];

/** A script that holds its task for `ms` of wall time (bounded: Date.now, not an endless loop). */
const spin = (ms: number) => `const end = Date.now() + ${ms};\nwhile (Date.now() < end) {}\n"spun"`;

/** Roomy limits: the spinning script is never cut short. Lock = wallMs + LOCK_MARGIN_MS (default 30 s) = 70 s. */
const LIMITS = { memoryMb: 32, wallMs: 40_000, cpuMs: 40_000 };
const LOCK_MS = LIMITS.wallMs + 30_000;

async function deployScenario(
  step: { script: string } | { scriptRef: string },
  scripts: Record<string, string> = {},
) {
  const topic = uniqueTopic('shutdown');
  const key = `shutdown_${topic.replace(/-/g, '_')}`;
  deployed.push(key);
  await engine.rest.deploy(key, [
    {
      name: `${key}.bpmn`,
      xml: processModel({
        id: key,
        step: { kind: 'sandbox', topic, resultVariable: 'r', ...step },
      }),
    },
  ]);
  const folders = workerFolders([testPolicy(topic, { limits: LIMITS })], scripts);
  return { topic, key, folders };
}

/** Waits until `worker` holds the lock of every external task of `key`'s instances. */
/**
 * Waits until the engine has locked `count` tasks for the worker AND the
 * worker runs them. Locked alone is not enough: a fetch response still in
 * transit when the signal comes is unlocked on arrival (rightly), and then
 * the worker has fewer tasks in flight than the test assumes.
 */
async function lockedBy(worker: WorkerProcess, topic: string, count: number) {
  const rows = await engine.lockedBy(worker, topic, count);
  await waitFor(
    `${count} tasks in flight in ${worker.workerId}`,
    async () =>
      (await worker.metric('camunda_sandbox_tasks_in_flight', { topic })) === count
        ? true
        : undefined,
    20_000,
  );
  return rows;
}

async function allCompleted(key: string, count: number, timeoutMs: number): Promise<void> {
  await waitFor(
    `${count} completed instances of ${key}`,
    async () => ((await engine.completedCount(key)) === count ? true : undefined),
    timeoutMs,
    200,
  );
}

describe('a worker process stopped by a signal with tasks in flight', () => {
  beforeAll(async () => {
    await engine.rest.version();
  });
  afterAll(async () => {
    await killAllWorkerProcesses();
    for (const key of deployed) await engine.deleteDeployments(key);
  });

  it('lets tasks in flight finish within the grace period on SIGTERM, logs draining then stopped, and exits 0', async () => {
    const { topic, key, folders } = await deployScenario({ script: spin(1500) });
    const worker = await startWorkerProcess({
      camundaUrl: ENGINE_URL,
      folders,
      env: { MAX_PARALLEL: 4, SHUTDOWN_GRACE_MS: 20_000 },
    });
    const ids = await engine.startMany(key, 3);
    await lockedBy(worker, topic, 3);

    const signalled = Date.now();
    worker.signal('SIGTERM');
    const exit = await worker.waitExit(25_000);
    const drainMs = Date.now() - signalled;

    expect(exit).toEqual({ code: 0, signal: null, timedOut: false });
    const states = worker.logs
      .filter((e) => e.msg.startsWith('worker ') && 'state' in e)
      .map((e) => e['state']);
    expect(states).toEqual(['polling', 'draining', 'stopped']);
    expect(worker.logs.find((e) => e['state'] === 'draining')?.['reason']).toBe('received SIGTERM');
    expect(worker.doneTaskIds('completed')).toHaveLength(3);
    expect(worker.logs.some((e) => e.msg === 'task unlocked')).toBe(false);
    // The tasks were done before the exit: every instance has already ended.
    for (const id of ids) expect((await engine.rest.historicInstance(id)).state).toBe('COMPLETED');
    console.log(`[shutdown] SIGTERM with 3 tasks in flight: drained and exited 0 in ${drainMs} ms`);
  });

  it('unlocks the tasks still running when the grace period is over, so that a second worker takes them at once', async () => {
    // The step's script comes from each worker's script folder: it holds the first
    // worker's tasks for 30 s (longer than the second worker needs to start on a
    // loaded machine) and takes the second worker half a second.
    const { topic, key, folders } = await deployScenario(
      { scriptRef: 'hold.js' },
      { 'hold.js': spin(30_000) },
    );
    const first = await startWorkerProcess({
      camundaUrl: ENGINE_URL,
      folders,
      env: { MAX_PARALLEL: 4, SHUTDOWN_GRACE_MS: 300 },
    });
    const ids = await engine.startMany(key, 3);
    await lockedBy(first, topic, 3);
    // The second worker is already polling when the first one stops.
    const secondFolders = workerFolders([testPolicy(topic, { limits: LIMITS })], {
      'hold.js': spin(500),
    });
    const second = await startWorkerProcess({
      camundaUrl: ENGINE_URL,
      folders: secondFolders,
      env: { MAX_PARALLEL: 4 },
    });
    expect(first.doneTaskIds()).toHaveLength(0);

    const signalled = Date.now();
    first.signal('SIGTERM');
    const exit = await first.waitExit(15_000);
    const exitMs = Date.now() - signalled;
    expect(exit).toEqual({ code: 0, signal: null, timedOut: false });
    expect(first.logs.some((e) => e.msg.startsWith('grace period over'))).toBe(true);
    // Each running task is unlocked (a task can be unlocked twice: the engine may hand an unlocked
    // task straight back to this worker's own pending long poll, whose tasks a draining worker unlocks too).
    const unlocked = new Set(
      first.logs.filter((e) => e.msg === 'task unlocked').map((e) => e['taskId']),
    );
    expect(unlocked.size).toBe(3);
    expect(first.doneTaskIds()).toHaveLength(0);

    // No task is still locked by the stopped worker: each is free, or already the second one's, or done.
    for (const row of await engine.externalTasks(`topicName=${topic}`)) {
      expect(row.workerId === null || row.workerId === second.workerId).toBe(true);
      if (row.workerId === null) expect(row.lockExpirationTime).toBeNull();
    }

    await allCompleted(key, 3, 30_000);
    const totalMs = Date.now() - signalled;
    const done = second.logs.filter((e) => e.msg === 'task done');
    expect(done.map((e) => e['outcome'])).toEqual(['completed', 'completed', 'completed']);
    // When the second worker's handler started on the last of the three.
    const takenMs =
      Math.max(...done.map((e) => e.receivedAt - Number(e['durationMs']))) - signalled;
    for (const id of ids) {
      const logs = await engine.successLogs(id);
      expect(logs.map((l) => l.workerId)).toEqual([second.workerId]);
    }
    // None waited for its lock (70 s) to expire.
    expect(takenMs).toBeLessThan(5000);
    expect(totalMs).toBeLessThan(LOCK_MS / 3);
    console.log(
      `[shutdown] grace 300 ms: first worker exited 0 after ${exitMs} ms, second worker had taken all 3 unlocked tasks ${takenMs} ms after SIGTERM, ` +
        `all completed ${totalMs} ms after SIGTERM (lock duration ${LOCK_MS} ms)`,
    );
    second.signal('SIGTERM');
    expect((await second.waitExit(20_000)).code).toBe(0);
  });

  it('drains the same way on SIGINT sent to its whole process group, as a Ctrl-C in a terminal does', async () => {
    const { topic, key, folders } = await deployScenario({ script: spin(1500) });
    const worker = await startWorkerProcess({
      camundaUrl: ENGINE_URL,
      folders,
      ownGroup: true,
      env: { MAX_PARALLEL: 4, SHUTDOWN_GRACE_MS: 20_000 },
    });
    const ids = await engine.startMany(key, 2);
    await lockedBy(worker, topic, 2);

    const signalled = Date.now();
    worker.signal('SIGINT', true);
    const exit = await worker.waitExit(25_000);
    const drainMs = Date.now() - signalled;

    expect(exit).toEqual({ code: 0, signal: null, timedOut: false });
    expect(worker.logs.find((e) => e['state'] === 'draining')?.['reason']).toBe('received SIGINT');
    expect(worker.logs.some((e) => e['state'] === 'stopped')).toBe(true);
    // The executors ignore the terminal's signal and finish their scripts for the worker.
    expect(worker.doneTaskIds('completed')).toHaveLength(2);
    for (const id of ids) expect((await engine.rest.historicInstance(id)).state).toBe('COMPLETED');
    console.log(
      `[shutdown] SIGINT to the process group with 2 tasks in flight: drained and exited 0 in ${drainMs} ms`,
    );
  });

  it('gives back a task that the engine hands to its still pending long poll after the grace period, instead of leaving it locked', async () => {
    const { topic, key, folders } = await deployScenario({ script: spin(100) });
    // A long poll of 8 s is pending at the engine when the stop comes; the grace period is far shorter.
    const first = await startWorkerProcess({
      camundaUrl: ENGINE_URL,
      folders,
      env: { POLL_TIMEOUT_MS: 8000, SHUTDOWN_GRACE_MS: 300 },
    });
    await sleep(1000);
    // Started after the first, so its polls queue behind the first one's at the engine.
    const second = await startWorkerProcess({
      camundaUrl: ENGINE_URL,
      folders,
      env: { POLL_TIMEOUT_MS: 1000 },
    });

    const signalled = Date.now();
    first.signal('SIGTERM');
    await sleep(800);
    // The engine answers the oldest pending request first: the stopping worker's.
    const [id] = await engine.startMany(key, 1);
    await allCompleted(key, 1, 20_000);
    const completedMs = Date.now() - signalled;

    expect((await first.waitExit(15_000)).code).toBe(0);
    const logs = await engine.successLogs(id!);
    expect(logs.map((l) => l.workerId)).toEqual([second.workerId]);
    expect(completedMs).toBeLessThan(LOCK_MS / 3);
    const handedBack = first.logs.some((e) => e.msg === 'task unlocked');
    console.log(
      `[shutdown] task created ${800} ms after SIGTERM, while the stopping worker's long poll was pending: ` +
        `${handedBack ? 'unlocked by the stopping worker, ' : ''}completed by the second worker ${completedMs} ms after SIGTERM`,
    );
    expect(await engine.externalTasks(`topicName=${topic}`)).toEqual([]);
    second.signal('SIGTERM');
    expect((await second.waitExit(20_000)).code).toBe(0);
  });
});
