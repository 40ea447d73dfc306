// Issue 2 end to end: deploy, start, work, then read what landed in the real
// engine through its REST API (history, external tasks, incidents).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseJsonExact } from '../../src/variables/plain.ts';
import {
  externalTaskRows,
  historicVariableRows,
  InstanceTracker,
  processId,
  taskDone,
  taskDoneLines,
  waitFor,
} from '../support/e2e.ts';
import type { ModelOptions } from '../../src/engine-harness/bpmn.ts';
import type { TypedVariables } from '../../src/variables/camunda.ts';
import {
  engine,
  runModel,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  writePolicies,
  type TestWorker,
} from '../support/worker.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Camunda writes dates in the server's zone (`+0100`); compare instants. */
function instant(camundaDate: unknown): string {
  return new Date(String(camundaDate).replace(/([+-]\d{2})(\d{2})$/, '$1:$2')).toISOString();
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

// Topics, one per policy under test.
const varsTopic = uniqueTopic('e2e-vars');
const retryTopic = uniqueTopic('e2e-retry');
const limitsTopic = uniqueTopic('e2e-limits');
const hangTopic = uniqueTopic('e2e-hang');
const memoryTopic = uniqueTopic('e2e-memory');
const refOnlyTopic = uniqueTopic('e2e-refonly');

const RETRY_BACKOFF_MS = 1500;
// CPU far below wall, so that a loop meets the CPU limit even on a busy machine.
const LIMITS = { memoryMb: 32, wallMs: 15_000, cpuMs: 300 };
const HANG_LIMITS = { memoryMb: 32, wallMs: 2000, cpuMs: 1000 };

const instances = new InstanceTracker();
/** Deploys and starts a one-step model; the instance is deleted at the end if it is still open. */
async function start(model: ModelOptions, variables?: TypedVariables): Promise<string> {
  return instances.track(await runModel(model, variables));
}

const TOTAL_SCRIPT =
  'const lines = execution.getVariable("lines");\nlines.reduce((sum, line) => sum + line.qty * line.cents, 0)\n';

describe('the worker runs real Camunda external tasks in the sandbox', () => {
  let worker: TestWorker;

  beforeAll(async () => {
    worker = await startTestWorker({
      policies: [
        testPolicy(varsTopic),
        testPolicy(retryTopic, { retries: { count: 2, backoffMs: RETRY_BACKOFF_MS, factor: 1 } }),
        // Retries are granted here so that an incident at once shows the limit, not the policy.
        testPolicy(limitsTopic, { limits: LIMITS, retries: { count: 3, backoffMs: 1000 } }),
        testPolicy(hangTopic, { limits: HANG_LIMITS, retries: { count: 3, backoffMs: 1000 } }),
        testPolicy(memoryTopic, {
          limits: { memoryMb: 16, wallMs: 10_000, cpuMs: 5000 },
          retries: { count: 3, backoffMs: 1000 },
        }),
        testPolicy(refOnlyTopic, { sources: { inline: false, registry: true } }),
      ],
      scripts: { 'orders/total.js': TOTAL_SCRIPT },
    });
  });
  afterAll(async () => {
    await worker?.stop();
    await instances.cleanup();
  });

  describe('variables', () => {
    it('stores every variable a script sets with the Camunda type of the DESIGN.md table, Longs and nested big integers exact', async () => {
      const script = `
const l = execution.getVariable('l');
const j = execution.getVariable('j');
const dt = execution.getVariable('dt');
execution.setVariable('seen', [
  typeof execution.getVariable('s'), typeof execution.getVariable('b'), typeof execution.getVariable('i'),
  typeof l, String(l), typeof execution.getVariable('lSafe'), typeof execution.getVariable('d'),
  dt instanceof Date, dt.toISOString(), dt.getUTCFullYear(),
  typeof j, Array.isArray(j.order.lines), typeof j.order.lines[0].cents, String(j.order.lines[0].cents),
  execution.getVariable('n') === null, execution.hasVariable('n'), execution.hasVariable('absent'),
].join('|'));
execution.setVariable('oString', 'text \u2713 "quoted"');
execution.setVariable('oBoolean', false);
execution.setVariable('oInteger', -2147483648);
execution.setVariable('oLongSafe', 4294967296);
execution.setVariable('oLongBig', l + 1n);
execution.setVariable('oLongMax', 9223372036854775807n);
execution.setVariable('oLongMin', -9223372036854775808n);
execution.setVariable('oDouble', 0.1 + 0.2);
execution.setVariable('oDate', new Date(dt.getTime() + 86400000));
execution.setVariable('oJson', { total: j.order.lines[0].cents * 2n, lines: j.order.lines, nested: { deep: [1, { big: 12345678901234567890n }] } });
execution.setVariable('oJsonBack', j);
execution.setVariable('oNull', null);
execution.setVariable('oUndefined', undefined);
'finished'`;
      const id = await start(
        {
          id: processId(varsTopic, 'types'),
          step: { kind: 'sandbox', topic: varsTopic, script, resultVariable: 'r' },
        },
        {
          s: { type: 'String', value: 'hello' },
          b: { type: 'Boolean', value: true },
          i: { type: 'Integer', value: 42 },
          l: { type: 'Long', value: '9007199254740993' },
          lSafe: { type: 'Long', value: 5 },
          d: { type: 'Double', value: 2.5 },
          dt: { type: 'Date', value: '2024-01-02T03:04:05.678+0000' },
          j: {
            type: 'Json',
            value:
              '{"order":{"lines":[{"sku":"A-1","qty":2,"cents":9007199254740993}]},"tags":["x"]}',
          },
          n: { type: 'Null', value: null },
        },
      );
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const v = await engine.historicVariables(id);

      // Camunda → JavaScript: every type arrives as the script expects it.
      expect(v['seen']).toEqual({
        type: 'String',
        value:
          'string|boolean|number|bigint|9007199254740993|number|number|true|2024-01-02T03:04:05.678Z|2024|' +
          'object|true|bigint|9007199254740993|true|true|false',
      });
      // JavaScript → Camunda.
      expect(v['oString']).toEqual({ type: 'String', value: 'text \u2713 "quoted"' });
      expect(v['oBoolean']).toEqual({ type: 'Boolean', value: false });
      expect(v['oInteger']).toEqual({ type: 'Integer', value: -2147483648 });
      expect(v['oLongSafe']).toEqual({ type: 'Long', value: 4294967296 });
      expect(v['oLongBig']).toEqual({ type: 'Long', value: 9007199254740994n });
      expect(v['oLongMax']).toEqual({ type: 'Long', value: 9223372036854775807n });
      expect(v['oLongMin']).toEqual({ type: 'Long', value: -9223372036854775808n });
      expect(v['oDouble']).toEqual({ type: 'Double', value: 0.30000000000000004 });
      expect(v['oDate']?.type).toBe('Date');
      expect(instant(v['oDate']?.value)).toBe('2024-01-03T03:04:05.678Z');
      expect(v['oJson']?.type).toBe('Json');
      expect(parseJsonExact(String(v['oJson']?.value))).toEqual({
        total: 18014398509481986n,
        lines: [{ sku: 'A-1', qty: 2, cents: 9007199254740993n }],
        nested: { deep: [1, { big: 12345678901234567890n }] },
      });
      expect(v['oJsonBack']?.type).toBe('Json');
      expect(parseJsonExact(String(v['oJsonBack']?.value))).toEqual({
        order: { lines: [{ sku: 'A-1', qty: 2, cents: 9007199254740993n }] },
        tags: ['x'],
      });
      expect(v['oNull']).toEqual({ type: 'Null', value: null });
      expect(v).not.toHaveProperty('oUndefined');
      expect(v['r']).toEqual({ type: 'String', value: 'finished' });
      // The inputs are left as they were.
      expect(v['l']).toEqual({ type: 'Long', value: 9007199254740993n });
      expect(v['j']?.type).toBe('Json');
      expect(v['dt']?.type).toBe('Date');
    });

    it('puts the awaited completion value of an async script into resultVariable', async () => {
      const script =
        '(async () => {\n  const lines = execution.getVariable("lines");\n  await null;\n  return { count: lines.length, first: lines[0].sku };\n})()';
      const id = await start(
        {
          id: processId(varsTopic, 'result'),
          step: { kind: 'sandbox', topic: varsTopic, script, resultVariable: 'summary' },
        },
        { lines: { type: 'Json', value: '[{"sku":"A-1"},{"sku":"B-2"}]' } },
      );
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const v = await engine.historicVariables(id);
      expect(v['summary']?.type).toBe('Json');
      expect(JSON.parse(String(v['summary']?.value))).toEqual({ count: 2, first: 'A-1' });
    });

    it('sets a local variable on the task scope and a process variable on the instance', async () => {
      // A boundary event makes the task a scope of its own, so local and process scope differ.
      const script =
        'execution.setVariableLocal("scratch", "task only");\nexecution.setVariable("kept", "for the process");';
      const id = await start({
        id: processId(varsTopic, 'local'),
        step: { kind: 'sandbox', topic: varsTopic, script },
        catchError: 'NEVER_RAISED',
      });
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const rows = await historicVariableRows(id);
      const scratch = rows.find((r) => r.name === 'scratch');
      const kept = rows.find((r) => r.name === 'kept');
      expect(scratch).toMatchObject({ type: 'String', value: 'task only' });
      expect(kept).toMatchObject({ type: 'String', value: 'for the process' });
      expect(kept?.activityInstanceId).toBe(id);
      expect(scratch?.activityInstanceId).not.toBe(id);
      expect(scratch?.activityInstanceId).toMatch(/^step:/);
    });
  });

  describe('BPMN errors', () => {
    it('takes the boundary event of a thrown BpmnError, with the variables it carries', async () => {
      const script =
        "execution.setVariable('checkedBy', 'credit check');\n" +
        "throw new BpmnError('ORDER_REJECTED', 'credit limit exceeded', { reason: 'credit', exposure: 9007199254740993n });";
      const id = await start({
        id: processId(varsTopic, 'bpmnerror'),
        step: { kind: 'sandbox', topic: varsTopic, script },
        catchError: 'ORDER_REJECTED',
      });
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const path = await engine.activityIds(id);
      expect(path).toContain('on_error');
      expect(path).toContain('error_end');
      expect(path).not.toContain('end');
      const v = await engine.historicVariables(id);
      expect(v['reason']).toEqual({ type: 'String', value: 'credit' });
      expect(v['exposure']).toEqual({ type: 'Long', value: 9007199254740993n });
      expect(v['checkedBy']).toEqual({ type: 'String', value: 'credit check' });
      expect((await taskDone(worker, id))['outcome']).toBe('bpmn_error');
    });
  });

  describe('failures and incidents', () => {
    it('reports a script error with retries counting down per the policy, the script stack in the details, then an incident', async () => {
      const script = [
        'function check(order) {',
        "  if (order.lines.length === 0) throw new Error('order ' + order.id + ' has no lines');",
        '}',
        'check({ id: 42, lines: [] });',
      ].join('\n');
      const id = await start({
        id: processId(retryTopic, 'retry'),
        step: { kind: 'sandbox', topic: retryTopic, script },
      });

      // Watch the task while it fails: the retries the engine holds after each failure.
      const seen: number[] = [];
      let details = '';
      const observe = async () => {
        const [task] = await externalTaskRows(id);
        if (task && task.retries !== null && seen.at(-1) !== task.retries) {
          seen.push(task.retries);
          expect(task.errorMessage).toBe('Error: order 42 has no lines');
          details ||= await engine.errorDetails(task.id);
        }
      };
      const outcome = await waitFor(
        'the third failure to open an incident',
        async () => {
          await observe();
          if ((await engine.incidents(id)).length === 0) return undefined;
          // The last failure can land between the two reads: read the task once more.
          await observe();
          return 'incident';
        },
        60_000,
      );
      expect(outcome).toBe('incident');
      expect(seen).toEqual([2, 1, 0]);

      // The details hold the script's stack with its own line numbers, and nothing of the worker.
      expect(details).toContain('Error: order 42 has no lines');
      expect(details).toMatch(/at check \(step\.js:2:\d+\)/);
      expect(details).toMatch(/step\.js:4:\d+/);
      for (const hostFrame of [
        'node:internal',
        'src/',
        '.ts:',
        'sandbox-prelude',
        'isolated-vm',
        'node_modules',
      ]) {
        expect(details).not.toContain(hostFrame);
      }

      const [incident] = await engine.incidents(id);
      expect(incident).toMatchObject({
        incidentType: 'failedExternalTask',
        incidentMessage: 'Error: order 42 has no lines',
        activityId: 'step',
      });

      // Three attempts, each waited for by the policy's backoff.
      const lines = taskDoneLines(worker, id);
      expect(lines.map((l) => l['outcome'])).toEqual(['failed', 'failed', 'failed']);
      const times = lines.map((l) => Date.parse(String(l['time'])));
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(RETRY_BACKOFF_MS - 100);
      expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(RETRY_BACKOFF_MS - 100);
    });

    it('opens an incident at once for an infinite loop, naming the CPU limit', async () => {
      const id = await start({
        id: processId(limitsTopic, 'loop'),
        step: { kind: 'sandbox', topic: limitsTopic, script: 'let n = 0;\nwhile (true) { n++; }' },
      });
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [task] = await externalTaskRows(id);
      expect(task?.retries).toBe(0);
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toBe(
        `the script ran over its CPU limit of ${LIMITS.cpuMs} ms`,
      );
      const done = await taskDone(worker, id);
      expect(done['outcome']).toBe('timeout');
      expect(taskDoneLines(worker, id)).toHaveLength(1);
      // Stopped by the CPU limit, well before the wall limit.
      expect(done['executionMs']).toBeLessThan(LIMITS.wallMs);
    });

    it('opens an incident at once for a memory bomb', async () => {
      const script =
        'const hoard = [];\nfor (;;) hoard.push(new Array(1_000_000).fill(hoard.length));';
      const id = await start({
        id: processId(memoryTopic, 'bomb'),
        step: { kind: 'sandbox', topic: memoryTopic, script },
      });
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [task] = await externalTaskRows(id);
      expect(task?.retries).toBe(0);
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toBe('the script ran over its memory limit of 16 MB');
      expect((await taskDone(worker, id))['outcome']).toBe('memory_limit');
    });

    it('opens an incident for a never-settling promise within the wall limit', async () => {
      const started = Date.now();
      const id = await start({
        id: processId(hangTopic, 'hang'),
        step: { kind: 'sandbox', topic: hangTopic, script: 'new Promise(() => {})' },
      });
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toBe(
        `the script ran over its time limit of ${HANG_LIMITS.wallMs} ms`,
      );
      const done = await taskDone(worker, id);
      expect(done['outcome']).toBe('timeout');
      // The isolate ran for the wall limit and not much longer.
      expect(done['executionMs']).toBeGreaterThanOrEqual(HANG_LIMITS.wallMs - 50);
      expect(done['executionMs']).toBeLessThan(HANG_LIMITS.wallMs + 1500);
      expect(Date.now() - started).toBeLessThan(HANG_LIMITS.wallMs + 20_000);
    });
  });

  describe('script sources', () => {
    it('runs a scriptRef from the script folder whose sha256 pin matches', async () => {
      const hash = sha256(TOTAL_SCRIPT);
      const id = await start(
        {
          id: processId(varsTopic, 'ref'),
          step: {
            kind: 'sandbox',
            topic: varsTopic,
            scriptRef: `orders/total.js@sha256:${hash}`,
            resultVariable: 'total',
          },
        },
        { lines: { type: 'Json', value: '[{"qty":2,"cents":500},{"qty":1,"cents":700}]' } },
      );
      expect(await engine.settle(id, 60_000)).toBe('completed');
      expect((await engine.historicVariables(id))['total']).toEqual({
        type: 'Integer',
        value: 1700,
      });
      expect((await taskDone(worker, id))['scriptHash']).toBe(hash);
    });

    it('opens an incident when a scriptRef pin does not match the file', async () => {
      const wrong = '0'.repeat(64);
      const id = await start({
        id: processId(varsTopic, 'badpin'),
        step: {
          kind: 'sandbox',
          topic: varsTopic,
          scriptRef: `orders/total.js@sha256:${wrong}`,
          resultVariable: 'total',
        },
      });
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toBe(
        `SCRIPT_PIN_MISMATCH: scriptRef 'orders/total.js' is pinned to sha256:${wrong} but the file has sha256:${sha256(TOTAL_SCRIPT)}`,
      );
      expect((await taskDone(worker, id))['outcome']).toBe('policy_violation');
    });

    it('refuses an inline script with an incident when the policy accepts only the script folder', async () => {
      const id = await start({
        id: processId(refOnlyTopic, 'inline'),
        step: {
          kind: 'sandbox',
          topic: refOnlyTopic,
          script: 'execution.setVariable("ran", true)',
        },
      });
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toBe(
        `SCRIPT_SOURCE_REFUSED: policy 'p-${refOnlyTopic}' does not accept inline scripts: use scriptRef`,
      );
      const done = await taskDone(worker, id);
      expect(done['outcome']).toBe('policy_violation');
      expect(done['executionMs']).toBeUndefined();
    });

    it('opens an incident with a clear message when the task has no script property', async () => {
      const id = await start({
        id: processId(varsTopic, 'noscript'),
        step: {
          kind: 'sandbox',
          topic: varsTopic,
          properties: { note: 'the modeler forgot the script' },
        },
      });
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toBe(
        'SCRIPT_SOURCE_MISSING: the task has no script: add a camunda:property named script or scriptRef to the external task',
      );
    });
  });

  it('keeps running after all of that: a benign task completes', async () => {
    expect(worker.worker.state).toBe('polling');
    const id = await start(
      {
        id: processId(varsTopic, 'after'),
        step: {
          kind: 'sandbox',
          topic: varsTopic,
          script: 'execution.getVariable("a") + 1',
          resultVariable: 'b',
        },
      },
      { a: { type: 'Integer', value: 1 } },
    );
    expect(await engine.settle(id, 60_000)).toBe('completed');
    expect((await engine.historicVariables(id))['b']).toEqual({ type: 'Integer', value: 2 });
    expect(
      worker.logs.filter((l) => l.msg === 'task handler failed' || l.msg === 'task handler error'),
    ).toEqual([]);
  });
});

describe("camunda-sandbox run, the modeler's local tool", () => {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-run-'));
  const policies = join(dir, 'policies');

  beforeAll(() => {
    writeFileSync(
      join(dir, 'vars.json'),
      '{"amount": {"type": "Long", "value": 9007199254740993}, "lines": [{"qty": 2}, {"qty": 3}]}',
    );
    writeFileSync(
      join(dir, 'ok.js'),
      'const amount = execution.getVariable("amount");\nexecution.setVariable("next", amount + 1n);\nexecution.getVariable("lines").reduce((n, l) => n + l.qty, 0)\n',
    );
    writeFileSync(
      join(dir, 'fails.js'),
      'const x = 1;\nthrow new Error("no tax table for " + x);\n',
    );
    writeFileSync(
      join(dir, 'rejects.js'),
      'throw new BpmnError("OUT_OF_STOCK", "nothing left", { sku: "A-1" });\n',
    );
    // A policies folder of its own: `run` takes the policy by name.
    mkdirSync(policies);
    writePolicies(policies, [
      { name: 'local', topics: ['local'], retries: { count: 2, backoffMs: 1000 } },
    ]);
  });

  function cli(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          join(ROOT, 'src/cli/main.ts'),
          'run',
          join(dir, script),
          '--vars',
          join(dir, 'vars.json'),
          '--policies',
          policies,
          '--policy',
          'local',
          '--result-variable',
          'count',
        ],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('prints what the engine would receive for a completed script and exits 0', async () => {
    const { code, stdout, stderr } = await cli('ok.js');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = parseJsonExact(stdout) as { outcome: string; engine: Record<string, unknown> };
    expect(report.outcome).toBe('completed');
    expect(report.engine).toMatchObject({
      kind: 'complete',
      variables: {
        next: { type: 'Long', value: '9007199254740994' },
        count: { type: 'Integer', value: 5 },
      },
      localVariables: {},
    });
  });

  it('exits non-zero with the failure and its retries when the script throws', async () => {
    const { code, stdout } = await cli('fails.js');
    expect(code).not.toBe(0);
    expect(code).not.toBe(2);
    const report = JSON.parse(stdout) as { outcome: string; engine: Record<string, unknown> };
    expect(report.outcome).toBe('failed');
    expect(report.engine).toMatchObject({
      kind: 'failure',
      errorMessage: 'Error: no tax table for 1',
      retries: 2,
      retryTimeout: 1000,
    });
    expect(String(report.engine['errorDetails'])).toMatch(/fails\.js:2:\d+/);
  });

  it('exits 2 on a BPMN error', async () => {
    const { code, stdout } = await cli('rejects.js');
    expect(code).toBe(2);
    const report = JSON.parse(stdout) as { outcome: string; engine: Record<string, unknown> };
    expect(report.outcome).toBe('bpmn_error');
    expect(report.engine).toMatchObject({
      kind: 'bpmnError',
      code: 'OUT_OF_STOCK',
      message: 'nothing left',
      variables: { sku: { type: 'String', value: 'A-1' } },
    });
  });
});
