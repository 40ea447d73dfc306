import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  engine,
  runModel,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  type TestWorker,
} from '../support/worker.ts';

describe('a sandboxed external task against the real engine', () => {
  const topic = uniqueTopic('smoke');
  let worker: TestWorker;

  beforeAll(async () => {
    worker = await startTestWorker({ policies: [testPolicy(topic)] });
  });
  afterAll(() => worker?.stop());

  it('completes with the variables the script set', async () => {
    const id = await runModel({
      id: `smoke_${topic.replace(/-/g, '_')}`,
      step: {
        kind: 'sandbox',
        topic,
        script: 'execution.setVariable("x", 41 + 1);\n"ok"',
        resultVariable: 'r',
      },
    });
    expect(await engine.settle(id, 30_000)).toBe('completed');
    const variables = await engine.historicVariables(id);
    expect(variables['x']).toEqual({ type: 'Integer', value: 42 });
    expect(variables['r']).toEqual({ type: 'String', value: 'ok' });
  });
});
