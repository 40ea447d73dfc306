// Issue 4 item 6: bad input never loses data. Each case ends its task with a
// clear message in the engine (an incident: none of them would go better on
// a retry), leaves the instance's other variables exactly as they were, and
// the worker goes on with the next task.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { processModel } from '../../src/engine-harness/bpmn.ts';
import type { TypedVariables } from '../../src/variables/camunda.ts';
import { processId, taskDone, waitFor } from '../support/e2e.ts';
import {
  engine,
  runModel,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  writePolicies,
  type TestWorker,
} from '../support/worker.ts';

const topic = uniqueTopic('bad-input');
const SCRIPT_FILE = 'calc/total.js';
const SCRIPT_TEXT = 'execution.getVariable("n") + 1\n';
const INPUT_LIMIT = 2048;

/** The variables every instance starts with, beside the bad one: they must come out unchanged. */
const KEEP: TypedVariables = {
  keepText: { type: 'String', value: 'must stay' },
  keepJson: { type: 'Json', value: '{"lines":[{"qty":2,"cents":150}],"note":"unchanged"}' },
  keepLong: { type: 'Long', value: '9007199254740993' },
  n: { type: 'Integer', value: 41 },
};

interface VariableRow {
  type: string;
  value: unknown;
  valueInfo?: Record<string, unknown>;
}

/** The instance's runtime variables as the engine holds them, serialized. */
function variablesOf(id: string): Promise<Record<string, VariableRow>> {
  return engine.call('GET', `/process-instance/${id}/variables?deserializeValues=false`);
}

async function expectUnchanged(id: string, extra: TypedVariables = {}): Promise<void> {
  const now = await variablesOf(id);
  const expected = { ...KEEP, ...extra };
  expect(Object.keys(now).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, typed] of Object.entries(expected)) {
    expect(now[name]?.type, name).toBe(typed.type);
    expect(String(now[name]?.value), name).toBe(String(typed.value));
  }
}

/** Waits for the instance's incident; returns its message and the external task's retries. */
async function incidentOf(id: string): Promise<{ message: string; retries: number | null }> {
  expect(await engine.settle(id, 45_000)).toBe('incident');
  const [incident] = await engine.incidents(id);
  const [task] = await engine.externalTasks(id);
  return { message: incident!.incidentMessage, retries: task?.retries ?? null };
}

describe('bad input ends its task with a clear message, loses nothing, and the worker goes on', () => {
  let worker: TestWorker;
  let benignRuns = 0;

  beforeAll(async () => {
    worker = await startTestWorker({
      policies: [
        testPolicy(topic, {
          limits: { inputBytes: INPUT_LIMIT },
          retries: { count: 0, backoffMs: 0 },
        }),
      ],
      scripts: { [SCRIPT_FILE]: SCRIPT_TEXT },
    });
  });
  afterAll(() => worker?.stop());

  /** A benign task after each case: the worker is still taking work. */
  async function expectWorkerGoesOn(): Promise<void> {
    benignRuns += 1;
    const id = await runModel(
      {
        id: processId(topic, `benign${benignRuns}`),
        step: {
          kind: 'sandbox',
          topic,
          script: 'execution.getVariable("n") * 2',
          resultVariable: 'doubled',
        },
      },
      { n: { type: 'Integer', value: 21 } },
    );
    expect(await engine.settle(id, 30_000)).toBe('completed');
    expect((await engine.historicVariables(id))['doubled']).toEqual({ type: 'Integer', value: 42 });
  }

  const model = (name: string, step: Record<string, unknown>) => ({
    id: processId(topic, name),
    step: { kind: 'sandbox' as const, topic, ...step },
  });

  it('a Json variable whose stored text is not JSON fails the task naming the variable, while the same text as a String works', async () => {
    const badText = '{"total": 12, "lines": [1, 2,';
    // As Camunda's REST API lets anyone write it: an Object in JSON format, and a Json.
    for (const broken of [
      {
        type: 'Object',
        value: badText,
        valueInfo: {
          objectTypeName: 'java.util.LinkedHashMap',
          serializationDataFormat: 'application/json',
        },
      },
      { type: 'Json', value: badText },
    ] as TypedVariables[string][]) {
      const id = await runModel(
        model(`malformed_${broken.type}`, {
          script: 'execution.getVariable("n")',
          resultVariable: 'out',
        }),
        { ...KEEP, broken },
      );
      const { message, retries } = await incidentOf(id);
      expect(message).toBe(
        "SCRIPT_VARIABLE_INVALID: variable 'broken': the stored Json is not valid JSON",
      );
      expect(retries).toBe(0);
      await expectUnchanged(id, { broken });
    }

    const asText = await runModel(
      model('malformed_string', {
        script: 'execution.getVariable("broken").length',
        resultVariable: 'length',
      }),
      {
        ...KEEP,
        broken: { type: 'String', value: badText },
      },
    );
    expect(await engine.settle(asText, 30_000)).toBe('completed');
    expect((await engine.historicVariables(asText))['length']).toEqual({
      type: 'Integer',
      value: badText.length,
    });
    await expectWorkerGoesOn();
  });

  it("variables over the policy's input limit fail the task with the limit named", async () => {
    const big = { type: 'String', value: 'x'.repeat(INPUT_LIMIT + 500) };
    const id = await runModel(model('oversized', { script: '1', resultVariable: 'out' }), {
      ...KEEP,
      big,
    });
    const { message, retries } = await incidentOf(id);
    expect(message).toBe(
      `SCRIPT_INPUT_TOO_LARGE: the task's variables are over the policy's input limit of ${INPUT_LIMIT} bytes`,
    );
    expect(retries).toBe(0);
    await expectUnchanged(id, { big });
    await expectWorkerGoesOn();
  });

  it('a variable of a type scripts cannot read fails the task that reads it, and a task that leaves it alone completes', async () => {
    const blob = { type: 'Bytes', value: Buffer.from('binary \u0000 data').toString('base64') };
    const reads = await runModel(
      model('wrong_type_read', { script: 'execution.getVariable("blob")', resultVariable: 'out' }),
      { ...KEEP, blob },
    );
    const { message } = await incidentOf(reads);
    expect(message).toBe(
      "VariableError: variable 'blob' has Camunda type Bytes, which scripts cannot read",
    );
    await expectUnchanged(reads, { blob });

    const ignores = await runModel(
      model('wrong_type_ignored', {
        script: 'execution.getVariable("n") + 1',
        resultVariable: 'out',
      }),
      { ...KEEP, blob },
    );
    expect(await engine.settle(ignores, 30_000)).toBe('completed');
    const after = await engine.historicVariables(ignores);
    expect(after['out']).toEqual({ type: 'Integer', value: 42 });
    expect(after['blob']?.type).toBe('Bytes');
    await expectWorkerGoesOn();
  });

  it('a script that is not valid JavaScript opens an incident naming the syntax error and its line', async () => {
    const id = await runModel(
      model('syntax', {
        script: 'const total = 1;\nif (total > 0 {\n  total\n}',
        resultVariable: 'out',
      }),
      KEEP,
    );
    const { message, retries } = await incidentOf(id);
    expect(message).toMatch(/^SCRIPT_SYNTAX_ERROR: SyntaxError: .*Unexpected token '\{'.*/);
    expect(message).toMatch(/:2\b/);
    expect(retries).toBe(0);
    await expectUnchanged(id);
    await expectWorkerGoesOn();
  });

  it('an external task without a script property opens an incident that says what to add', async () => {
    const id = await runModel(model('missing', { properties: { resultVariable: 'out' } }), KEEP);
    const { message } = await incidentOf(id);
    expect(message).toBe(
      'SCRIPT_SOURCE_MISSING: the task has no script: add a camunda:property named script or scriptRef to the external task',
    );
    await expectUnchanged(id);
    await expectWorkerGoesOn();
  });

  it('a scriptRef whose sha256 pin does not match the file opens a policy-violation incident naming both hashes', async () => {
    const actual = createHash('sha256').update(SCRIPT_TEXT).digest('hex');
    const wrong = 'ab'.repeat(32);
    const id = await runModel(
      model('wrong_pin', { scriptRef: `${SCRIPT_FILE}@sha256:${wrong}`, resultVariable: 'out' }),
      KEEP,
    );
    const { message } = await incidentOf(id);
    expect(message).toBe(
      `SCRIPT_PIN_MISMATCH: scriptRef '${SCRIPT_FILE}' is pinned to sha256:${wrong} but the file has sha256:${actual}`,
    );
    expect((await taskDone(worker, id))['outcome']).toBe('policy_violation');
    await expectUnchanged(id);

    // The right pin runs.
    const pinned = await runModel(
      model('right_pin', { scriptRef: `${SCRIPT_FILE}@sha256:${actual}`, resultVariable: 'out' }),
      KEEP,
    );
    expect(await engine.settle(pinned, 30_000)).toBe('completed');
    expect((await engine.historicVariables(pinned))['out']).toEqual({ type: 'Integer', value: 42 });
  });

  it('a Date the engine cannot store fails the task with the value named instead of leaving it locked and fetched again for ever', async () => {
    for (const [name, year] of [
      ['far_future', 'new Date(Date.UTC(10000, 0, 1))'],
      ['before_christ', 'new Date(Date.UTC(-1, 0, 1))'],
    ] as const) {
      const id = await runModel(
        model(`date_${name}`, {
          script: `execution.setVariable("when", ${year});\n"set"`,
          resultVariable: 'out',
        }),
        KEEP,
      );
      const { message, retries } = await incidentOf(id);
      expect(message).toMatch(
        /^variable 'when': [+-]\d{6}-01-01T00:00:00\.000Z is outside the years 0001 to 9999 that a Camunda Date can hold$/,
      );
      expect(retries).toBe(0);
      // Nothing of the refused completion landed.
      await expectUnchanged(id);
    }
    await expectWorkerGoesOn();
  });

  it('a BpmnError that no boundary event catches opens an incident with the engine reason instead of looping on the lock', async () => {
    const id = await runModel(
      model('uncaught_bpmn', {
        script:
          'execution.setVariable("partial", 1);\nthrow new BpmnError("NOT_CAUGHT", "nobody catches this")',
        resultVariable: 'out',
      }),
      KEEP,
    );
    const { message, retries } = await incidentOf(id);
    expect(message).toMatch(
      /^the engine refused the script's BPMN error 'NOT_CAUGHT': ProcessEngineException: ENGINE-13033 Propagation of bpmn error NOT_CAUGHT failed/,
    );
    expect(retries).toBe(0);
    expect((await taskDone(worker, id))['outcome']).toBe('failed');
    await expectUnchanged(id);

    // Caught by a boundary event, the same error takes the error path.
    const caught = await runModel(
      {
        ...model('caught_bpmn', {
          script: 'throw new BpmnError("NOT_CAUGHT", "caught this time")',
        }),
        catchError: 'NOT_CAUGHT',
      },
      KEEP,
    );
    expect(await engine.settle(caught, 30_000)).toBe('completed');
    expect(await engine.activityIds(caught)).toContain('error_end');
    await expectWorkerGoesOn();
  });

  it('a variable name longer than the engine can store fails the task instead of looping on the lock', async () => {
    const id = await runModel(
      model('long_name', {
        script: `execution.setVariable("${'v'.repeat(300)}", 1);\n"set"`,
        resultVariable: 'out',
      }),
      KEEP,
    );
    const { message, retries } = await incidentOf(id);
    expect(message).toMatch(
      /^the engine refused the script's completion: ProcessEnginePersistenceException: /,
    );
    expect(retries).toBe(0);
    await expectUnchanged(id);
    await expectWorkerGoesOn();
  });
});

describe('a topic whose policy is removed while the worker runs', () => {
  const goneTopic = uniqueTopic('bad-gone');
  const stayTopic = uniqueTopic('bad-stay');
  let worker: TestWorker;

  beforeAll(async () => {
    // A long poll, so that the poll in flight still names the topic being removed.
    worker = await startTestWorker({
      policies: [testPolicy(goneTopic), testPolicy(stayTopic)],
      config: { pollTimeoutMs: 20_000 },
    });
    for (const [name, t] of [
      ['gone', goneTopic],
      ['stay', stayTopic],
    ] as const) {
      const id = processId(t, name);
      await engine.deploy(id, [
        {
          name: `${id}.bpmn`,
          xml: processModel({
            id,
            step: {
              kind: 'sandbox',
              topic: t,
              script: 'execution.getVariable("n") + 1',
              resultVariable: 'out',
            },
          }),
        },
      ]);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  });
  afterAll(() => worker?.stop());

  it('fails a task already fetched with POLICY_NOT_FOUND, leaves later ones untouched in the engine, and runs them once a policy serves the topic again', async () => {
    const goneFile = join(worker.policiesDir, `${String(testPolicy(goneTopic)['name'])}.yaml`);
    rmSync(goneFile);
    expect(worker.worker.policies.reload()).toBe(true);

    // The poll in flight was sent while the policy existed: it brings this task.
    const fetched = await engine.start(processId(goneTopic, 'gone'), { ...KEEP });
    const { message, retries } = await incidentOf(fetched);
    expect(message).toBe(`POLICY_NOT_FOUND: no policy serves topic '${goneTopic}'`);
    expect(retries).toBe(0);
    await expectUnchanged(fetched);
    expect(worker.logs.some((l) => l.msg === 'task handler error')).toBe(false);

    // Later tasks of the topic are not fetched: they wait, unlocked, for a worker that serves it.
    const waiting = await engine.start(processId(goneTopic, 'gone'), { ...KEEP });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const [task] = await engine.call<
      { workerId: string | null; retries: number | null; lockExpirationTime: string | null }[]
    >('GET', `/external-task?processInstanceId=${waiting}`);
    expect(task).toMatchObject({ workerId: null, retries: null });
    expect(await engine.incidents(waiting)).toEqual([]);

    // The other topic still works.
    const other = await engine.start(processId(stayTopic, 'stay'), { ...KEEP });
    expect(await engine.settle(other, 30_000)).toBe('completed');

    // The policy comes back: the waiting task runs.
    writePolicies(worker.policiesDir, [testPolicy(goneTopic)]);
    expect(worker.worker.policies.reload()).toBe(true);
    expect(await engine.settle(waiting, 40_000)).toBe('completed');
    expect((await engine.historicVariables(waiting))['out']).toEqual({
      type: 'Integer',
      value: 42,
    });
    await waitFor('the reload log line', () =>
      worker.logs.some((l) => l.msg === 'policies reloaded') ? true : undefined,
    );
  });
});
