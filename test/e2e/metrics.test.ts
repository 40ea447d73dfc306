// Telemetry end to end: after a known set of tasks on a fresh topic, /metrics
// shows exactly the counts they caused; health endpoints; one log line per task.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InstanceTracker, processId, taskDone, taskDoneLines, waitFor } from '../support/e2e.ts';
import {
  metricValue,
  runModel,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  type TestWorker,
} from '../support/worker.ts';

const TASKS = 'camunda_sandbox_tasks_total';
const BLOCKED = 'camunda_sandbox_blocked_calls_total';
const DURATION = 'camunda_sandbox_script_duration_seconds';
const IN_FLIGHT = 'camunda_sandbox_tasks_in_flight';
const ENGINE = 'camunda_sandbox_engine_requests_total';

/** DESIGN.md's outcome label values. */
const OUTCOMES = [
  'completed',
  'bpmn_error',
  'failed',
  'timeout',
  'memory_limit',
  'policy_violation',
  'lock_lost',
];
/** Capability labels: the capabilities, then issue 3's escape names. */
const CAPABILITY_LABELS = [
  'console',
  'crypto',
  'fetch',
  'secrets',
  'require',
  'process',
  'Buffer',
  'module',
  'global',
  'Java',
  'Packages',
  'java',
  'javax',
  'load',
  'loadWithNewGlobal',
  'importPackage',
  'Polyglot',
];

// Values that must never reach a log line.
const CUSTOMER = 'customer-Zq9xPw-Meyer';
const NOTE = 'note-Kp3Lr8-paid-in-full';
const BIG = '9007199254740993';

const topic = uniqueTopic('e2e-metrics');
const idleTopic = uniqueTopic('e2e-idle');
const policy = `p-${topic}`;
const idlePolicy = `p-${idleTopic}`;

/** The known set: what each task does and the outcome it must be counted under. */
const CASES: {
  name: string;
  outcome: string;
  script?: string;
  catchError?: string;
  ran: boolean;
}[] = [
  {
    name: 'plain',
    outcome: 'completed',
    ran: true,
    script: `execution.setVariable('note', '${NOTE}');\nexecution.getVariable('customer').length`,
  },
  {
    name: 'bigint',
    outcome: 'completed',
    ran: true,
    script: "execution.setVariable('next', execution.getVariable('amount') + 1n);",
  },
  {
    name: 'caughtcrypto',
    outcome: 'completed',
    ran: true,
    script:
      "let id;\ntry { id = crypto.randomUUID(); } catch (e) { id = 'none'; }\nexecution.setVariable('id', id);",
  },
  {
    name: 'rejected',
    outcome: 'bpmn_error',
    ran: true,
    catchError: 'REJECTED',
    script: "throw new BpmnError('REJECTED', 'no stock');",
  },
  { name: 'throws', outcome: 'failed', ran: true, script: "throw new Error('tax table missing');" },
  { name: 'loop', outcome: 'timeout', ran: true, script: 'for (;;) {}' },
  {
    name: 'escape',
    outcome: 'policy_violation',
    ran: true,
    script: "require('fs').readFileSync('/etc/passwd');",
  },
  // Refused before it runs: counted as a task, not as a script execution.
  { name: 'noscript', outcome: 'failed', ran: false },
];

describe('Prometheus metrics, health endpoints and task logs', () => {
  let worker: TestWorker;

  beforeAll(async () => {
    worker = await startTestWorker({
      policies: [
        testPolicy(topic, {
          limits: { wallMs: 3000, cpuMs: 300 },
          retries: { count: 2, backoffMs: 60_000 },
        }),
        testPolicy(idleTopic),
      ],
    });
  });
  afterAll(() => worker?.stop());

  it('answers /healthz with 200 at once and /readyz with 200 once the engine has answered', async () => {
    const health = await fetch(`${worker.metricsUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await waitFor('/readyz to answer 200', async () => {
      const response = await fetch(`${worker.metricsUrl}/readyz`);
      return response.status === 200 ? response : undefined;
    });
    expect(await ready.json()).toEqual({ status: 'ready', reasons: [] });
  });

  it('pre-zeroes the series of every topic it serves, before any task', async () => {
    const text = await worker.metrics();
    for (const [t, p] of [
      [topic, policy],
      [idleTopic, idlePolicy],
    ] as const) {
      for (const outcome of OUTCOMES)
        expect(metricValue(text, TASKS, { topic: t, policy: p, outcome }), `${t} ${outcome}`).toBe(
          0,
        );
      for (const capability of CAPABILITY_LABELS) {
        expect(
          metricValue(text, BLOCKED, { topic: t, policy: p, capability }),
          `${t} ${capability}`,
        ).toBe(0);
      }
      expect(metricValue(text, IN_FLIGHT, { topic: t })).toBe(0);
    }
  });

  it('exports the default process and Node.js metrics', async () => {
    const text = await worker.metrics();
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_version_info',
    ]) {
      expect(text).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'));
    }
  });

  describe('after a known set of tasks', () => {
    const ids = new Map<string, string>();
    const instances = new InstanceTracker();

    beforeAll(async () => {
      // Started together, as a fleet would see them.
      await Promise.all(
        CASES.map(async (c) => {
          const id = await runModel(
            {
              id: processId(topic, c.name),
              step:
                c.script === undefined
                  ? { kind: 'sandbox', topic, properties: { note: 'no script' } }
                  : { kind: 'sandbox', topic, script: c.script },
              ...(c.catchError ? { catchError: c.catchError } : {}),
            },
            {
              customer: { type: 'String', value: CUSTOMER },
              amount: { type: 'Long', value: BIG },
            },
          );
          ids.set(c.name, instances.track(id));
        }),
      );
      for (const id of ids.values()) await taskDone(worker, id);
      await waitFor('tasks_in_flight to return to 0', async () =>
        metricValue(await worker.metrics(), IN_FLIGHT, { topic }) === 0 ? true : undefined,
      );
    }, 120_000);

    // Incidents, and the failed task waiting a minute for its retry, are not left in the shared engine.
    afterAll(() => instances.cleanup());

    it('counts each task exactly once under its outcome', async () => {
      const text = await worker.metrics();
      for (const outcome of OUTCOMES) {
        const expected = CASES.filter((c) => c.outcome === outcome).length;
        expect(metricValue(text, TASKS, { topic, policy, outcome }), outcome).toBe(expected);
      }
    });

    it('counts exactly the blocked calls the scripts made, by capability, caught or not', async () => {
      const text = await worker.metrics();
      for (const capability of CAPABILITY_LABELS) {
        const expected = capability === 'crypto' || capability === 'require' ? 1 : 0;
        expect(metricValue(text, BLOCKED, { topic, policy, capability }), capability).toBe(
          expected,
        );
      }
    });

    it('observes one script duration per script that ran', async () => {
      const text = await worker.metrics();
      expect(metricValue(text, `${DURATION}_count`, { topic, policy })).toBe(
        CASES.filter((c) => c.ran).length,
      );
      expect(metricValue(text, `${DURATION}_bucket`, { topic, policy, le: '+Inf' })).toBe(
        CASES.filter((c) => c.ran).length,
      );
      // The loop ran for its CPU limit: the sum holds at least that.
      expect(metricValue(text, `${DURATION}_sum`, { topic, policy })).toBeGreaterThanOrEqual(0.3);
    });

    it('counts the engine requests that reported the tasks', async () => {
      const text = await worker.metrics();
      const count = (operation: string, result: string) =>
        metricValue(text, ENGINE, { operation, result });
      expect(count('complete', 'success')).toBe(
        CASES.filter((c) => c.outcome === 'completed').length,
      );
      expect(count('handle_bpmn_error', 'success')).toBe(1);
      expect(count('handle_failure', 'success')).toBe(
        CASES.filter((c) => ['failed', 'timeout', 'policy_violation'].includes(c.outcome)).length,
      );
      expect(count('fetch_and_lock', 'success')).toBeGreaterThanOrEqual(1);
      for (const operation of ['complete', 'handle_bpmn_error', 'handle_failure'])
        expect(count(operation, 'error')).toBe(0);
    });

    it('leaves tasks_in_flight at 0 and the idle topic untouched', async () => {
      const text = await worker.metrics();
      expect(metricValue(text, IN_FLIGHT, { topic })).toBe(0);
      for (const outcome of OUTCOMES)
        expect(metricValue(text, TASKS, { topic: idleTopic, policy: idlePolicy, outcome })).toBe(0);
    });

    it("logs exactly one 'task done' line per task with its ids, topic, policy, script hash, outcome and duration", () => {
      for (const c of CASES) {
        const id = ids.get(c.name)!;
        const lines = taskDoneLines(worker, id);
        expect(lines, c.name).toHaveLength(1);
        const line = lines[0]!;
        expect(line, c.name).toMatchObject({
          level: 'info',
          taskId: expect.stringMatching(/\S/),
          processInstanceId: id,
          activityId: 'step',
          topic,
          policy,
          outcome: c.outcome,
          durationMs: expect.any(Number),
        });
        // A task with no script has no hash to log.
        if (c.script !== undefined) expect(line['scriptHash'], c.name).toMatch(/^[0-9a-f]{64}$/);
      }
    });

    it('writes no variable value to the log', () => {
      const raw = worker.rawLog();
      for (const value of [CUSTOMER, NOTE, BIG, '9007199254740994'])
        expect(raw).not.toContain(value);
    });
  });

  it('answers /readyz with 503 and a reason while the engine does not answer', async () => {
    const unreachable = await startTestWorker({
      policies: [testPolicy(uniqueTopic('e2e-unready'))],
      config: { camundaUrl: 'http://127.0.0.1:9/engine-rest' },
    });
    try {
      const response = await fetch(`${unreachable.metricsUrl}/readyz`);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({
        status: 'not ready',
        reasons: ['the engine has not answered recently'],
      });
      expect((await fetch(`${unreachable.metricsUrl}/healthz`)).status).toBe(200);
    } finally {
      await unreachable.stop();
    }
  });
});
