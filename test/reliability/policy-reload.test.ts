// Issue 4 item 7: policies change on disk while the worker runs. A valid
// change applies to the next task; an invalid one is refused with a logged
// message naming file, line and field, the last good policies stay, and
// camunda_sandbox_policy_reloads_total{result="rejected"} counts it.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { processModel } from '../../src/engine-harness/bpmn.ts';
import { processId, waitFor } from '../support/e2e.ts';
import {
  engine,
  metricValue,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  writePolicies,
  type TestWorker,
} from '../support/worker.ts';

const topic = uniqueTopic('reload');
const newTopic = uniqueTopic('reload-new');

// A task that says whether crypto is granted, and one that needs ~400 ms of CPU.
const CRYPTO_SCRIPT =
  'let answer;\ntry { answer = crypto.randomUUID().length; } catch (e) { answer = e.name; }\nanswer';
const BUSY_SCRIPT =
  'let n = 0;\nconst until = Date.now() + 400;\nwhile (Date.now() < until) n++;\n"finished"';

const base = testPolicy(topic, { limits: { wallMs: 10_000, cpuMs: 5000 } });
const policyName = String(base['name']);

describe('policies changed on disk while the worker runs', () => {
  let worker: TestWorker;
  let policyFile: string;

  beforeAll(async () => {
    worker = await startTestWorker({ policies: [base] });
    policyFile = join(worker.policiesDir, `${policyName}.yaml`);
    for (const [name, script, t] of [
      ['crypto', CRYPTO_SCRIPT, topic],
      ['busy', BUSY_SCRIPT, topic],
      ['fresh', '"served"', newTopic],
    ] as const) {
      const id = processId(t, name);
      await engine.deploy(id, [
        {
          name: `${id}.bpmn`,
          xml: processModel({
            id,
            step: { kind: 'sandbox', topic: t, script, resultVariable: 'out' },
          }),
        },
      ]);
    }
  });
  afterAll(() => worker?.stop());

  async function run(
    name: 'crypto' | 'busy' | 'fresh',
    t = topic,
  ): Promise<{ state: string; out?: unknown; incident?: string }> {
    const id = await engine.start(processId(t, name));
    const state = await engine.settle(id, 30_000);
    if (state === 'incident')
      return { state, incident: (await engine.incidents(id))[0]?.incidentMessage };
    return { state, out: (await engine.historicVariables(id))['out']?.value };
  }

  const reloads = async (result: 'applied' | 'rejected') =>
    metricValue(await worker.metrics(), 'camunda_sandbox_policy_reloads_total', { result }) ?? 0;

  /** Writes the file and waits until the worker has re-read the folder (the watcher debounces). */
  async function change(write: () => void, expect: 'applied' | 'rejected'): Promise<void> {
    const before = await reloads(expect);
    write();
    await waitFor(
      `a reload ${expect}`,
      async () => ((await reloads(expect)) > before ? true : undefined),
      10_000,
    );
    // Let a burst of file events settle into its last reload.
    await new Promise((resolve) => setTimeout(resolve, 400));
  }

  it('a valid change, a new capability and a lower CPU limit, applies to the next task', async () => {
    expect(await run('crypto')).toEqual({ state: 'completed', out: 'SandboxPolicyError' });
    expect(await run('busy')).toEqual({ state: 'completed', out: 'finished' });

    await change(
      () =>
        writePolicies(worker.policiesDir, [
          { ...base, limits: { wallMs: 10_000, cpuMs: 100 }, capabilities: { crypto: {} } },
        ]),
      'applied',
    );
    expect(
      worker.logs.some(
        (l) => l.msg === 'policies reloaded' && (l['policies'] as string[]).includes(policyName),
      ),
    ).toBe(true);

    expect(await run('crypto')).toEqual({ state: 'completed', out: 36 });
    expect(await run('busy')).toEqual({
      state: 'incident',
      incident: 'the script ran over its CPU limit of 100 ms',
    });
  });

  it('a new policy file with a new topic is served without a restart', async () => {
    await change(() => writePolicies(worker.policiesDir, [testPolicy(newTopic)]), 'applied');
    expect(await run('fresh', newTopic)).toEqual({ state: 'completed', out: 'served' });
  });

  it('invalid changes are refused with a message naming file, line and field, counted, and the last good policies keep serving', async () => {
    const good = { ...base, limits: { wallMs: 10_000, cpuMs: 100 }, capabilities: { crypto: {} } };
    const cases: { what: string; write: () => void; logged: RegExp }[] = [
      {
        what: 'an unknown key',
        write: () =>
          writeFileSync(
            policyFile,
            `name: ${policyName}\ntopics: [${topic}]\nlimits:\n  memoryMB: 64\n`,
          ),
        logged: new RegExp(`${policyName}\\.yaml:4: limits\\.memoryMB: `),
      },
      {
        what: 'a wrong type',
        write: () =>
          writeFileSync(
            policyFile,
            `name: ${policyName}\ntopics: [${topic}]\nlimits:\n  cpuMs: fast\n`,
          ),
        logged: new RegExp(`${policyName}\\.yaml:4: limits\\.cpuMs: `),
      },
      {
        what: 'broken YAML',
        write: () =>
          writeFileSync(
            policyFile,
            `name: ${policyName}\ntopics: [${topic}\nlimits: {cpuMs: 100\n`,
          ),
        logged: new RegExp(`${policyName}\\.yaml:\\d+: \\(file\\): not valid YAML`),
      },
      {
        what: 'a second policy serving the same topic',
        write: () =>
          writeFileSync(
            join(worker.policiesDir, 'zz-duplicate.yaml'),
            `name: zz-duplicate\ntopics: [${topic}]\n`,
          ),
        logged: new RegExp(
          `zz-duplicate\\.yaml:2: topics\\.0: topic '${topic}' is already served by policy '${policyName}'`,
        ),
      },
      {
        what: 'every policy file deleted',
        write: () => {
          for (const file of [
            'zz-duplicate.yaml',
            `${policyName}.yaml`,
            `${String(testPolicy(newTopic)['name'])}.yaml`,
          ])
            rmSync(join(worker.policiesDir, file), { force: true });
        },
        logged: /the folder has no policy \(\*\.yaml\) file/,
      },
    ];

    for (const { what, write, logged } of cases) {
      // Each case starts from the good folder.
      await change(() => {
        rmSync(join(worker.policiesDir, 'zz-duplicate.yaml'), { force: true });
        writePolicies(worker.policiesDir, [good, testPolicy(newTopic)]);
      }, 'applied');
      const rejectedBefore = await reloads('rejected');
      const linesBefore = worker.logs.length;
      await change(write, 'rejected');
      expect(await reloads('rejected'), what).toBeGreaterThan(rejectedBefore);
      const line = worker.logs
        .slice(linesBefore)
        .find((l) => l.msg === 'policy change rejected; keeping the last good policies');
      expect(line?.level, what).toBe('error');
      expect(String(line?.['err']), what).toMatch(logged);

      // The last good policies stay: crypto granted, CPU limit 100 ms, the new topic served.
      expect(await run('crypto'), what).toEqual({ state: 'completed', out: 36 });
      expect(await run('busy'), what).toEqual({
        state: 'incident',
        incident: 'the script ran over its CPU limit of 100 ms',
      });
      expect(await run('fresh', newTopic), what).toEqual({ state: 'completed', out: 'served' });
      expect(worker.worker.ready().ready, what).toBe(true);
    }

    // Fixed on disk again, the folder applies.
    await change(
      () =>
        writePolicies(worker.policiesDir, [{ ...good, limits: { wallMs: 10_000, cpuMs: 5000 } }]),
      'applied',
    );
    expect(await run('busy')).toEqual({ state: 'completed', out: 'finished' });
    const metrics = await worker.metrics();
    expect(
      metricValue(metrics, 'camunda_sandbox_policy_reloads_total', { result: 'rejected' }),
    ).toBeGreaterThanOrEqual(5);
  });
});
