// Issue 4, item 3: the engine goes away while the worker runs and comes back.
// The worker keeps running, /readyz turns 503 and back to 200, fetch retries
// back off, and every task is completed once the engine is back.
//
// It needs its own engine, on port 18080 with PostgreSQL (so that the data
// survives the restart): the shared engine on 8080 is never stopped. Skipped
// when PostgreSQL (psql -h 127.0.0.1 -U postgres) is not reachable. Takes about
// a minute: two engine starts.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { processModel } from '../../src/engine-harness/bpmn.ts';
import { testPolicy, uniqueTopic } from '../support/worker.ts';
import {
  EngineProbe,
  killAllWorkerProcesses,
  sleep,
  startWorkerProcess,
  waitFor,
  workerFolders,
  type WorkerProcess,
} from '../support/worker-process.ts';

const PORT = 18080;
const DATABASE = 'sandbox_outage';
const ENGINE_URL = `http://127.0.0.1:${PORT}/engine-rest`;
const ENGINE_SCRIPT = fileURLToPath(new URL('../../scripts/engine.mjs', import.meta.url));
const engine = new EngineProbe(ENGINE_URL);

function psql(sql: string) {
  return spawnSync(
    'psql',
    [
      '-h',
      '127.0.0.1',
      '-U',
      'postgres',
      '-d',
      'postgres',
      '-XAtq',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      sql,
    ],
    { encoding: 'utf8' },
  );
}

const postgresReachable = (() => {
  const probe = psql('SELECT 1');
  return !probe.error && probe.status === 0;
})();

/** Runs `node scripts/engine.mjs <command> --port 18080 --db postgres` without blocking the event loop. */
function engineCommand(command: 'start' | 'stop'): Promise<void> {
  const args = [
    ENGINE_SCRIPT,
    command,
    '--port',
    String(PORT),
    ...(command === 'start' ? ['--db', 'postgres'] : []),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ENGINE_PG_DB: DATABASE },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('exit', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`engine ${command} failed (${code}): ${stderr.slice(-2000)}`)),
    );
  });
}

const FETCH_ERRORS = { operation: 'fetch_and_lock', result: 'error' };

describe.skipIf(!postgresReachable)('a worker whose engine goes down and comes back', () => {
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    // A leftover from an interrupted run: this script's own engine on 18080 only.
    await engineCommand('stop');
    psql(`DROP DATABASE IF EXISTS "${DATABASE}" WITH (FORCE)`);
    await engineCommand('start');
  }, 240_000);

  afterAll(async () => {
    if (worker && worker.logs.length > 0 && process.env['OUTAGE_DEBUG'])
      console.log(worker.tail(80));
    await killAllWorkerProcesses();
    await engineCommand('stop').catch((err: Error) => console.error(err.message));
    const drop = psql(`DROP DATABASE IF EXISTS "${DATABASE}" WITH (FORCE)`);
    if (drop.status !== 0) console.error(`could not drop ${DATABASE}: ${drop.stderr}`);
  }, 60_000);

  it('keeps running, turns not ready and ready again, backs off its fetches and completes every task once the engine is back', async () => {
    const topic = uniqueTopic('outage');
    const key = `outage_${topic.replace(/-/g, '_')}`;
    const instances = 12;
    // Lock = wallMs 3000 + LOCK_MARGIN_MS 2000: the locks taken before the outage expire during it.
    await engine.rest.deploy(key, [
      {
        name: `${key}.bpmn`,
        xml: processModel({
          id: key,
          step: {
            kind: 'sandbox',
            topic,
            script: 'const end = Date.now() + 1000;\nwhile (Date.now() < end) {}\n"ok"',
            resultVariable: 'r',
          },
        }),
      },
    ]);
    const folders = workerFolders([
      testPolicy(topic, { limits: { memoryMb: 32, wallMs: 3000, cpuMs: 3000 } }),
    ]);
    worker = await startWorkerProcess({
      camundaUrl: ENGINE_URL,
      folders,
      env: { MAX_PARALLEL: 2, POLL_TIMEOUT_MS: 1000, READY_WINDOW_MS: 2000, LOCK_MARGIN_MS: 2000 },
    });
    const w = worker;
    await waitFor(
      '/readyz 200',
      async () => ((await w.readyz()).status === 200 ? true : undefined),
      10_000,
    );

    const ids = await engine.startMany(key, instances);
    // Some done, two in flight: then the engine goes.
    await waitFor(
      'two tasks done and two in flight',
      async () => {
        const done = await engine.completedCount(key);
        const locked = await engine.externalTasks(
          `topicName=${topic}&workerId=${w.workerId}&locked=true`,
        );
        return done >= 2 && locked.length === 2 ? true : undefined;
      },
      30_000,
      50,
    );

    const errorsBefore = await w.metric('camunda_sandbox_engine_requests_total', FETCH_ERRORS);
    expect((await w.readyz()).status).toBe(200);
    const stopping = Date.now();
    await engineCommand('stop');
    const down = Date.now();

    // Not ready within the ready window (plus a poll), while alive and healthy.
    const notReady = await waitFor(
      '/readyz 503',
      async () => {
        const r = await w.readyz();
        return r.status === 503 ? r : undefined;
      },
      10_000,
      100,
    );
    const notReadyMs = Date.now() - stopping;
    expect(notReady.body.reasons).toContain('the engine has not answered recently');
    // READY_WINDOW_MS (2 s) after the last answer, which came before the stop ended.
    expect(notReadyMs).toBeLessThan(down - stopping + 2000 + 3000);
    expect(await w.healthz()).toBe(200);

    // Outage: long enough for the locks taken before it to expire.
    const timeline: string[] = [];
    while (Date.now() - down < 8000) {
      const errors =
        (await w.metric('camunda_sandbox_engine_requests_total', FETCH_ERRORS)) - errorsBefore;
      timeline.push(`${((Date.now() - down) / 1000).toFixed(1)}s:${errors}`);
      expect((await w.readyz()).status).toBe(503);
      await sleep(1000);
    }

    const restartStarted = Date.now();
    const restarting = engineCommand('start');
    // The worker keeps polling through the restart; sample the error count as it goes.
    let restarted = false;
    void restarting.then(
      () => (restarted = true),
      () => (restarted = true),
    );
    while (!restarted) {
      const errors =
        (await w.metric('camunda_sandbox_engine_requests_total', FETCH_ERRORS)) - errorsBefore;
      timeline.push(`${((Date.now() - down) / 1000).toFixed(1)}s:${errors}`);
      await sleep(1000);
    }
    await restarting;
    const up = Date.now();
    const outageMs = up - down;
    const outageErrors =
      (await w.metric('camunda_sandbox_engine_requests_total', FETCH_ERRORS)) - errorsBefore;
    expect(w.alive).toBe(true);

    await waitFor(
      '/readyz 200 again',
      async () => ((await w.readyz()).status === 200 ? true : undefined),
      60_000,
      100,
    );
    const readyAgainMs = Date.now() - up;
    await waitFor(
      `${instances} completed instances`,
      async () => ((await engine.completedCount(key)) === instances ? true : undefined),
      90_000,
      200,
    );
    const recoveredMs = Date.now() - up;

    // Nothing lost, nothing completed twice.
    for (const id of ids) {
      expect((await engine.rest.historicInstance(id)).state).toBe('COMPLETED');
      expect(await engine.rest.activityIds(id)).toEqual(['start', 'step', 'end']);
      expect(await engine.successLogs(id)).toHaveLength(1);
    }
    expect(await engine.externalTasks(`topicName=${topic}`)).toEqual([]);
    expect(w.alive).toBe(true);

    // Once the engine answers again the worker polls at its normal pace: no idle backoff pause between
    // the tasks it completes after the restart.
    const doneAfter = w.logs
      .filter((e) => e.msg === 'task done' && e['outcome'] === 'completed' && e.receivedAt >= up)
      .map((e) => e.receivedAt);
    const drainAfterMs = Math.max(...doneAfter) - Math.min(...doneAfter);
    expect(drainAfterMs).toBeLessThan(15_000);

    // Backed off: a handful of failed fetches over the whole outage, not one per poll interval.
    expect(outageErrors).toBeGreaterThanOrEqual(3);
    expect(outageErrors).toBeLessThan(Math.max(10, outageMs / 1000));
    const lockLost = await w.metric('camunda_sandbox_tasks_total', { topic, outcome: 'lock_lost' });
    const reportRetries = w.logs.filter((e) =>
      e.msg.startsWith('engine did not take the report'),
    ).length;
    console.log(
      `[outage] engine stop took ${down - stopping} ms, down ${(outageMs / 1000).toFixed(1)} s (restart took ${((up - restartStarted) / 1000).toFixed(1)} s); ` +
        `/readyz 503 ${notReadyMs} ms after the stop began; ${outageErrors} failed fetches during the outage (timeline ${timeline.join(' ')}); ` +
        `/readyz 200 ${readyAgainMs} ms and all ${instances} instances completed ${recoveredMs} ms after the engine was back ` +
        `(first to last completion after it: ${drainAfterMs} ms); ` +
        `0 lost; reports retried ${reportRetries}x, given up as lock_lost ${lockLost}x (their tasks ran again)`,
    );
  }, 240_000);
});
