// Issue 4 item 4: a bounded load test through a real worker and the real
// engine. Benign Json calculations run beside infinite loops, memory bombs,
// deep recursion, microtask floods, catastrophic regular expressions, huge
// outputs, never-settling promises and blocked-call floods, while executor
// processes are killed from outside. It prints the benign throughput kept
// against an all-benign run of the same size, measured first in the same test.
import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { processModel } from '../../src/engine-harness/bpmn.ts';
import { ExecutorPool } from '../../src/executor/executor-pool.ts';
import { policySchema } from '../../src/policy/schema.ts';
import type { ScriptJob } from '../../src/sandbox/job.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { processId } from '../support/e2e.ts';
import {
  engine,
  metricValue,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  type TestWorker,
} from '../support/worker.ts';

const BENIGN = 60;
const SLOW_BENIGN_EVERY = 6; // every 6th benign task also does ~100 ms of arithmetic
const HOSTILE_LIMITS = { memoryMb: 32, wallMs: 3000, cpuMs: 800 };

const benignTopic = uniqueTopic('mix-benign');
const hostileTopic = uniqueTopic('mix-hostile');

const BENIGN_SCRIPT = `const order = execution.getVariable('order');
let total = 0;
for (const line of order.lines) total += line.qty * line.cents;
execution.setVariable('lineCount', order.lines.length);
total`;
const SLOW_BENIGN_SCRIPT = `const order = execution.getVariable('order');
let h = 0;
for (let i = 0; i < 20000000; i++) h = (h * 31 + i) | 0;
execution.setVariable('work', h);
execution.setVariable('lineCount', order.lines.length);
order.lines.reduce((sum, line) => sum + line.qty * line.cents, 0)`;

/** Each hostile kind: its script, how many run, and the incident it must end with. */
const HOSTILE: Record<string, { script: string; count: number; message: RegExp }> = {
  loop: {
    script: 'for (;;) {}',
    count: 3,
    message: /^the script ran over its CPU limit of 800 ms$/,
  },
  memory: {
    script: 'const hoard = [];\nfor (;;) hoard.push(new Array(100000).fill(1.5));',
    count: 3,
    // On a loaded machine the garbage collector's work can reach the CPU limit first.
    message: /^the script ran over its (memory limit of 32 MB|CPU limit of 800 ms)$/,
  },
  recursion: {
    script: 'function down(n) { return down(n + 1) + 1; }\ndown(0)',
    count: 2,
    message: /^RangeError: Maximum call stack size exceeded$/,
  },
  microtasks: {
    script: 'function again() { Promise.resolve().then(again); }\nagain();\n"never"',
    count: 3,
    message: /^the script ran over its CPU limit of 800 ms$/,
  },
  regex: {
    script: "/(a+)+$/.test('a'.repeat(40) + '!')",
    count: 3,
    message: /^the script ran over its CPU limit of 800 ms$/,
  },
  output: {
    script: "'x'.repeat(5000000)",
    count: 2,
    message:
      /^OutputTooLarge: the script's output is \d+ (characters|bytes), over the policy's limit/,
  },
  never: {
    script: 'new Promise(() => {})',
    count: 2,
    message: /^the script ran over its time limit of 3000 ms$/,
  },
  // Each blocked call waits for the host, so this one mostly meets the wall limit.
  blocked: {
    script: 'for (;;) { try { process.env; } catch (e) {} }',
    count: 2,
    message: /^the script ran over its (time limit of 3000 ms|CPU limit of 800 ms)$/,
  },
};
const HOSTILE_COUNT = Object.values(HOSTILE).reduce((n, h) => n + h.count, 0);
/** A hostile task hit by one of the kills may end with the crash instead, once its retry is spent. */
const CRASH_MESSAGE = /^the sandbox executor crashed while running the script/;

function order(i: number): { lines: { qty: number; cents: number }[] } {
  return {
    lines: [
      { qty: i + 1, cents: 199 },
      { qty: 2, cents: 1000 + i },
      { qty: 3, cents: 5 },
    ],
  };
}
const expectedTotal = (i: number) => (i + 1) * 199 + 2 * (1000 + i) + 15;

interface MemoryWatch {
  stop(): { workerMaxMb: number; executorMaxMb: number; executorSumMaxMb: number };
}

function vmRssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0; // the process is gone (killed, being replaced)
  }
}

/** Samples the worker's RSS (this process) and each executor's VmRSS. */
function watchMemory(worker: TestWorker): MemoryWatch {
  let workerMax = 0;
  let executorMax = 0;
  let executorSumMax = 0;
  const sample = () => {
    workerMax = Math.max(workerMax, process.memoryUsage().rss / 1048576);
    const each = worker.worker.executors.pids().map(vmRssMb);
    executorMax = Math.max(executorMax, ...each);
    executorSumMax = Math.max(
      executorSumMax,
      each.reduce((a, b) => a + b, 0),
    );
  };
  sample();
  const timer = setInterval(sample, 200);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return {
        workerMaxMb: Math.round(workerMax),
        executorMaxMb: Math.round(executorMax),
        executorSumMaxMb: Math.round(executorSumMax),
      };
    },
  };
}

async function finishedCount(ids: string[]): Promise<number> {
  const { count } = await engine.call<{ count: number }>(
    'POST',
    '/history/process-instance/count',
    { processInstanceIds: ids, finished: true },
  );
  return count;
}

async function waitAllFinished(ids: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await finishedCount(ids)) < ids.length) {
    if (Date.now() > deadline)
      throw new Error(
        `only ${await finishedCount(ids)} of ${ids.length} instances finished in ${timeoutMs} ms`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitAllIncidents(ids: string[], timeoutMs: number): Promise<Map<string, string>> {
  const messages = new Map<string, string>();
  const deadline = Date.now() + timeoutMs;
  while (messages.size < ids.length) {
    for (const id of ids) {
      if (messages.has(id)) continue;
      const [incident] = await engine.incidents(id);
      if (incident) messages.set(id, incident.incidentMessage);
    }
    if (messages.size === ids.length) break;
    if (Date.now() > deadline)
      throw new Error(
        `only ${messages.size} of ${ids.length} hostile instances have an incident after ${timeoutMs} ms`,
      );
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return messages;
}

async function checkBenign(ids: { id: string; i: number }[]): Promise<void> {
  const rows = await engine.call<
    { processInstanceId: string; name: string; type: string; value: unknown }[]
  >('POST', '/history/variable-instance?deserializeValues=false', {
    processInstanceIdIn: ids.map((b) => b.id),
    variableNameIn: ['total', 'lineCount'],
  });
  for (const { id, i } of ids) {
    const mine = Object.fromEntries(
      rows.filter((r) => r.processInstanceId === id).map((r) => [r.name, r.value]),
    );
    expect(mine, `benign task ${i}`).toEqual({ total: expectedTotal(i), lineCount: 3 });
  }
}

describe('hostile scripts beside benign ones, with executors killed from outside', () => {
  let worker: TestWorker;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    worker = await startTestWorker({
      policies: [
        testPolicy(benignTopic, {
          retries: { count: 3, backoffMs: 200, factor: 1 },
          limits: { memoryMb: 64, wallMs: 10_000, cpuMs: 5000 },
        }),
        testPolicy(hostileTopic, {
          retries: { count: 1, backoffMs: 200, factor: 1 },
          limits: HOSTILE_LIMITS,
        }),
      ],
      config: { executors: 2, maxParallel: 8, logLevel: 'info' },
    });
    const models: [string, string, string][] = [
      ['benign', benignTopic, BENIGN_SCRIPT],
      ['slow', benignTopic, SLOW_BENIGN_SCRIPT],
      ...Object.entries(HOSTILE).map(([kind, { script }]): [string, string, string] => [
        kind,
        hostileTopic,
        script,
      ]),
    ];
    for (const [name, topic, script] of models) {
      const id = processId(topic, name);
      keys[name] = id;
      await engine.deploy(id, [
        {
          name: `${id}.bpmn`,
          xml: processModel({
            id,
            step: {
              kind: 'sandbox',
              topic,
              script,
              resultVariable: name === 'benign' || name === 'slow' ? 'total' : 'result',
            },
          }),
        },
      ]);
    }
  });
  afterAll(() => worker?.stop());

  const startBenign = (i: number) =>
    engine.start(
      i % SLOW_BENIGN_EVERY === SLOW_BENIGN_EVERY - 1 ? keys['slow']! : keys['benign']!,
      {
        order: { type: 'Json', value: JSON.stringify(order(i)) },
      },
    );

  it(
    'completes every benign task with the right result, ends every hostile one with its incident, and keeps memory bounded',
    { timeout: 150_000 },
    async () => {
      const testStarted = Date.now();
      const rssBeforeMb = process.memoryUsage().rss / 1048576;

      // 1. All benign: the reference throughput.
      const baseStarted = performance.now();
      const baseline: { id: string; i: number }[] = [];
      for (let i = 0; i < BENIGN; i++) baseline.push({ id: await startBenign(i), i });
      await waitAllFinished(
        baseline.map((b) => b.id),
        60_000,
      );
      const baseSeconds = (performance.now() - baseStarted) / 1000;
      await checkBenign(baseline);

      // 2. The same benign work with the hostile mix interleaved, and kills.
      const memory = watchMemory(worker);
      const restartsBefore =
        metricValue(await worker.metrics(), 'camunda_sandbox_executor_restarts_total', {
          reason: 'killed',
        }) ?? 0;
      const mixStarted = performance.now();
      const benign: { id: string; i: number }[] = [];
      const hostile: { id: string; kind: string }[] = [];
      const hostileQueue = Object.entries(HOSTILE).flatMap(([kind, { count }]) =>
        Array.from({ length: count }, () => kind),
      );
      const every = Math.floor(BENIGN / HOSTILE_COUNT);
      let kills = 0;
      let killing = true;
      const benignCrashed = () =>
        worker.logs
          .filter(
            (l) => l.msg === 'task done' && l['topic'] === benignTopic && l['outcome'] === 'failed',
          )
          .map((l) => String(l['processInstanceId']));

      // The killer: SIGKILL an executor while tasks run, until a benign task was among the victims.
      const killer = (async () => {
        await new Promise((resolve) => setTimeout(resolve, 1200));
        while (killing && kills < 6 && benignCrashed().length === 0) {
          const pids = worker.worker.executors.pids();
          const pid = pids[kills % pids.length];
          if (pid !== undefined) {
            process.kill(pid, 'SIGKILL');
            kills += 1;
          }
          await new Promise((resolve) => setTimeout(resolve, 1500));
        }
      })();

      for (let i = 0; i < BENIGN; i++) {
        benign.push({ id: await startBenign(i), i });
        if (i % every === every - 1 && hostileQueue.length > 0) {
          const kind = hostileQueue.shift()!;
          hostile.push({ id: await engine.start(keys[kind]!), kind });
        }
      }
      for (const kind of hostileQueue) hostile.push({ id: await engine.start(keys[kind]!), kind });

      await waitAllFinished(
        benign.map((b) => b.id),
        90_000,
      );
      const mixSeconds = (performance.now() - mixStarted) / 1000;
      killing = false;
      await killer;
      const incidents = await waitAllIncidents(
        hostile.map((h) => h.id),
        60_000,
      );
      const figures = memory.stop();

      // Every benign task: completed, right result; those hit by a kill completed on their retry.
      await checkBenign(benign);
      const crashedBenign = new Set(benignCrashed());
      expect(kills).toBeGreaterThan(0);
      expect(crashedBenign.size, 'a kill hit at least one benign task').toBeGreaterThan(0);
      for (const id of crashedBenign) expect(benign.map((b) => b.id)).toContain(id);

      // Every hostile task: an incident with its own message (or, if a kill also
      // caught it on its retry, the crash), and no benign instance has one.
      let ownOutcome = 0;
      for (const { id, kind } of hostile) {
        const message = incidents.get(id)!;
        const own = HOSTILE[kind]!.message.test(message);
        if (own) ownOutcome += 1;
        else expect(message, `${kind} incident`).toMatch(CRASH_MESSAGE);
      }
      expect(ownOutcome).toBeGreaterThanOrEqual(HOSTILE_COUNT - 2);
      for (const kind of Object.keys(HOSTILE)) {
        expect(
          hostile.some(
            ({ id, kind: k }) => k === kind && HOSTILE[kind]!.message.test(incidents.get(id)!),
          ),
          `${kind} ends with its own outcome`,
        ).toBe(true);
      }

      // The worker is unharmed: still polling, executors replaced, blocked calls all counted.
      expect(worker.worker.state).toBe('polling');
      expect(worker.worker.executors.pids()).toHaveLength(2);
      const metrics = await worker.metrics();
      const restarts =
        (metricValue(metrics, 'camunda_sandbox_executor_restarts_total', { reason: 'killed' }) ??
          0) - restartsBefore;
      expect(restarts).toBe(kills);
      // Two floods of tens of thousands of calls each, counted, in a log of bounded size.
      expect(
        metricValue(metrics, 'camunda_sandbox_blocked_calls_total', {
          topic: hostileTopic,
          capability: 'process',
        }),
      ).toBeGreaterThan(1000);
      expect(worker.logs.filter((l) => l.msg === 'blocked call').length).toBeLessThanOrEqual(
        HOSTILE['blocked']!.count * 2 * 101,
      );

      // Memory stays bounded: the worker (this process) and each executor.
      expect(figures.workerMaxMb - rssBeforeMb).toBeLessThan(300);
      expect(figures.executorMaxMb).toBeLessThan(700);

      const mixThroughput = BENIGN / mixSeconds;
      const baseThroughput = BENIGN / baseSeconds;
      const retained = mixThroughput / baseThroughput;
      console.log(
        [
          `hostile mix: ${BENIGN} benign + ${HOSTILE_COUNT} hostile tasks, ${kills} executor kill(s), ${crashedBenign.size} benign task(s) crashed and completed on retry`,
          `  all benign: ${baseSeconds.toFixed(1)} s, ${baseThroughput.toFixed(1)} tasks/s`,
          `  with hostile mix: ${mixSeconds.toFixed(1)} s for the benign tasks, ${mixThroughput.toFixed(1)} tasks/s`,
          `  benign throughput retained: ${(retained * 100).toFixed(0)} %`,
          `  hostile incidents with their own outcome: ${ownOutcome}/${HOSTILE_COUNT}`,
          `  memory: worker RSS ${rssBeforeMb.toFixed(0)} MB before, ${figures.workerMaxMb} MB max; executor VmRSS max ${figures.executorMaxMb} MB each, ${figures.executorSumMaxMb} MB together`,
          `  test time: ${((Date.now() - testStarted) / 1000).toFixed(1)} s`,
        ].join('\n'),
      );
      expect(retained).toBeGreaterThan(0.1);
      expect(Date.now() - testStarted).toBeLessThan(120_000);
    },
  );
});

describe('executors under floods and kills, without the engine', () => {
  const policy = policySchema.parse({
    name: 'flood',
    topics: ['flood'],
    limits: HOSTILE_LIMITS,
    capabilities: { secrets: { allow: ['X'] } },
  });
  const job = (source: string): ScriptJob => ({
    taskId: 'flood',
    topic: 'flood',
    policy: 'flood',
    source,
    filename: 'flood.js',
    variables: {},
    meta: {
      executionId: null,
      processInstanceId: null,
      processDefinitionId: null,
      processDefinitionKey: null,
      activityId: null,
      activityInstanceId: null,
      businessKey: null,
      tenantId: null,
      topicName: 'flood',
    },
    limits: policy.limits,
    capabilities: { secrets: policy.capabilities.secrets },
  });
  let pool: ExecutorPool;
  beforeAll(async () => {
    pool = new ExecutorPool({
      processes: 1,
      isolates: { maxIdle: 4, maxTasksPerIsolate: 100 },
      logger: createLogger('silent'),
    });
    await pool.start();
  });
  afterAll(() => pool?.stop());

  it('eight blocked-call floods at once in one executor end at their limits, with bounded events and memory', async () => {
    const [pid] = pool.pids();
    let maxRss = 0;
    const timer = setInterval(() => (maxRss = Math.max(maxRss, vmRssMb(pid!))), 50);
    let events = 0;
    let counted = 0;
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        pool.run(
          job(
            i % 2
              ? 'for (;;) { try { process.env; } catch (e) {} }'
              : "for (;;) { try { secrets.get('NOT_ALLOWED'); } catch (e) {} }",
          ),
          (event) => {
            events += 1;
            if (event.kind === 'blocked') counted += event.count ?? 1;
          },
        ),
      ),
    );
    clearInterval(timer);
    const seconds = (performance.now() - started) / 1000;
    for (const outcome of outcomes) expect(outcome).toMatchObject({ kind: 'timeout' });
    // Each script's limits held (3 s of wall time, with some slack for a busy machine).
    expect(seconds).toBeLessThan(8);
    // At most 100 events per task one by one, then one summed event per capability.
    expect(events).toBeLessThanOrEqual(8 * 101);
    expect(counted).toBeGreaterThan(events);
    expect(maxRss).toBeLessThan(400);
    console.log(
      `8 blocked-call floods: ${seconds.toFixed(1)} s, ${events} events for ${counted} blocked calls, executor VmRSS max ${Math.round(maxRss)} MB`,
    );

    const next = await pool.run(job('"still serving"'));
    expect(next).toMatchObject({ kind: 'completed', result: { t: 'string', v: 'still serving' } });
  });

  it('a job sent to an executor that died a moment before ends as crashed, and the worker process lives on', async () => {
    const outcomes: Promise<string>[] = [];
    for (let round = 0; round < 3; round++) {
      const [pid] = pool.pids();
      process.kill(pid!, 'SIGKILL');
      // Hold the event loop so that the exit is not seen yet: the send then meets a closed pipe (EPIPE).
      const until = Date.now() + 100;
      while (Date.now() < until) {
        /* busy */
      }
      outcomes.push(pool.run(job('"after the kill"')).then((o) => o.kind));
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(await Promise.all(outcomes)).toEqual(['crashed', 'crashed', 'crashed']);
    expect(await pool.run(job('"serving again"'))).toMatchObject({
      kind: 'completed',
      result: { t: 'string', v: 'serving again' },
    });
  });
});
