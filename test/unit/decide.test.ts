// DESIGN.md "Outcomes": what the engine receives for each thing a script did.
import { describe, expect, it } from 'vitest';

import { SandboxError } from '../../src/errors.ts';
import { policySchema, type Policy } from '../../src/policy/schema.ts';
import type { ScriptOutcome } from '../../src/sandbox/outcome.ts';
import { decide, decideRefusal, type Decision, type TaskFacts } from '../../src/worker/decide.ts';

const policy: Policy = policySchema.parse({
  name: 'orders',
  topics: ['orders'],
  retries: { count: 3, backoffMs: 1000, factor: 2, maxBackoffMs: 60_000 },
});

function facts(overrides: Partial<TaskFacts> = {}): TaskFacts {
  return { policy, retries: null, resultVariable: undefined, ...overrides };
}

function failure(decision: Decision): Extract<Decision['report'], { kind: 'failure' }> {
  if (decision.report.kind !== 'failure')
    throw new Error(`expected a failure report, got ${JSON.stringify(decision.report)}`);
  return decision.report;
}

const STACK =
  "TypeError: Cannot read properties of undefined (reading 'qty')\n    at eval (total.js:4:17)";
const scriptError: ScriptOutcome = {
  kind: 'error',
  name: 'TypeError',
  message: "Cannot read properties of undefined (reading 'qty')",
  stack: STACK,
  policyViolation: false,
};

describe('a script that finished', () => {
  it('completes with its process variables and local variables, typed for the engine', () => {
    const decision = decide(
      {
        kind: 'completed',
        variables: {
          total: { t: 'long', v: '9007199254740993' },
          due: { t: 'date', v: '2024-01-02T03:04:05.678Z' },
        },
        localVariables: { audit: { t: 'json', v: '{"ok":true}' } },
      },
      facts(),
    );
    expect(decision).toEqual({
      outcome: 'completed',
      report: {
        kind: 'complete',
        variables: {
          total: { type: 'Long', value: '9007199254740993' },
          due: { type: 'Date', value: '2024-01-02T03:04:05.678+0000' },
        },
        localVariables: { audit: { type: 'Json', value: '{"ok":true}' } },
      },
    });
  });

  it('sets resultVariable from the result', () => {
    const decision = decide(
      {
        kind: 'completed',
        result: { t: 'double', v: 12.5 },
        variables: { n: { t: 'integer', v: 1 } },
        localVariables: {},
      },
      facts({ resultVariable: 'total' }),
    );
    expect(decision.report).toEqual({
      kind: 'complete',
      variables: { n: { type: 'Integer', value: 1 }, total: { type: 'Double', value: 12.5 } },
      localVariables: {},
    });
  });

  it('the result wins over a variable of the same name the script set', () => {
    const decision = decide(
      {
        kind: 'completed',
        result: { t: 'string', v: 'from result' },
        variables: { total: { t: 'string', v: 'set' } },
        localVariables: {},
      },
      facts({ resultVariable: 'total' }),
    );
    expect(decision.report).toMatchObject({
      variables: { total: { type: 'String', value: 'from result' } },
    });
  });

  it('a null result sets resultVariable to Null', () => {
    const decision = decide(
      { kind: 'completed', result: { t: 'null' }, variables: {}, localVariables: {} },
      facts({ resultVariable: 'r' }),
    );
    expect(decision.report).toMatchObject({ variables: { r: { type: 'Null', value: null } } });
  });

  it('without a result, resultVariable is not set', () => {
    const decision = decide(
      { kind: 'completed', variables: {}, localVariables: {} },
      facts({ resultVariable: 'total' }),
    );
    expect(decision.report).toEqual({ kind: 'complete', variables: {}, localVariables: {} });
  });

  it('without resultVariable, the result is not sent', () => {
    const decision = decide(
      { kind: 'completed', result: { t: 'integer', v: 7 }, variables: {}, localVariables: {} },
      facts(),
    );
    expect(decision.report).toEqual({ kind: 'complete', variables: {}, localVariables: {} });
  });

  it('a variable the engine cannot take fails the task at once, naming it', () => {
    const decision = decide(
      {
        kind: 'completed',
        variables: { upload: { t: 'unsupported', type: 'File' } },
        localVariables: {},
      },
      facts({ retries: 2 }),
    );
    expect(decision.outcome).toBe('failed');
    expect(failure(decision)).toMatchObject({ retries: 0, retryTimeout: 0 });
    expect(failure(decision).errorMessage).toContain("variable 'upload'");
  });

  it('a result the engine cannot take fails the task, naming resultVariable', () => {
    const decision = decide(
      {
        kind: 'completed',
        result: { t: 'unsupported', type: 'Bytes' },
        variables: {},
        localVariables: {},
      },
      facts({ resultVariable: 'total' }),
    );
    expect(failure(decision).errorMessage).toContain("variable 'total'");
  });
});

describe('a script that threw BpmnError', () => {
  it('raises the BPMN error with code, message and typed variables', () => {
    const decision = decide(
      {
        kind: 'bpmnError',
        code: 'CREDIT_REJECTED',
        message: 'limit exceeded',
        variables: { score: { t: 'integer', v: 420 } },
      },
      facts(),
    );
    expect(decision).toEqual({
      outcome: 'bpmn_error',
      report: {
        kind: 'bpmnError',
        code: 'CREDIT_REJECTED',
        message: 'limit exceeded',
        variables: { score: { type: 'Integer', value: 420 } },
      },
    });
  });

  it('a BPMN error variable the engine cannot take fails the task instead', () => {
    const decision = decide(
      {
        kind: 'bpmnError',
        code: 'E',
        message: 'm',
        variables: { doc: { t: 'unsupported', type: 'File' } },
      },
      facts(),
    );
    expect(decision.outcome).toBe('failed');
    expect(failure(decision).errorMessage).toContain("variable 'doc'");
  });
});

describe('a script that threw anything else', () => {
  it('reports the failure with name and message, and the script stack as details', () => {
    const decision = decide(scriptError, facts());
    expect(decision.outcome).toBe('failed');
    expect(failure(decision)).toMatchObject({
      errorMessage: "TypeError: Cannot read properties of undefined (reading 'qty')",
      errorDetails: STACK,
    });
  });

  it('without a stack, the details are the name and message', () => {
    const decision = decide(
      { kind: 'error', name: 'string', message: 'plain text', policyViolation: false },
      facts(),
    );
    expect(failure(decision)).toMatchObject({
      errorMessage: 'string: plain text',
      errorDetails: 'string: plain text',
    });
  });

  it('retries start at the policy count and count down, with the policy backoff growing each time', () => {
    const sequence: [number | null, number, number][] = [];
    let engineRetries: number | null = null;
    for (let attempt = 0; attempt < 4; attempt++) {
      const report = failure(decide(scriptError, facts({ retries: engineRetries })));
      sequence.push([engineRetries, report.retries, report.retryTimeout]);
      engineRetries = report.retries;
    }
    expect(sequence).toEqual([
      [null, 3, 1000],
      [3, 2, 2000],
      [2, 1, 4000],
      [1, 0, 0],
    ]);
  });

  it('the retry timeout is capped at maxBackoffMs', () => {
    const capped = policySchema.parse({
      name: 'c',
      topics: ['c'],
      retries: { count: 10, backoffMs: 1000, factor: 10, maxBackoffMs: 5000 },
    });
    expect(failure(decide(scriptError, facts({ policy: capped, retries: 9 }))).retryTimeout).toBe(
      5000,
    );
  });

  it('a policy with no retries opens an incident on the first failure', () => {
    const none = policySchema.parse({ name: 'n', topics: ['n'], retries: { count: 0 } });
    expect(failure(decide(scriptError, facts({ policy: none })))).toMatchObject({
      retries: 0,
      retryTimeout: 0,
    });
  });

  it('retries an operator raised after an incident count down from there', () => {
    expect(failure(decide(scriptError, facts({ retries: 9 })))).toMatchObject({
      retries: 8,
      retryTimeout: 1000,
    });
  });

  it('the error message is cut to the 666 characters the engine keeps, the whole text in the details', () => {
    const message = 'x'.repeat(1000);
    const report = failure(
      decide({ kind: 'error', name: 'Error', message, policyViolation: false }, facts()),
    );
    expect(report.errorMessage).toHaveLength(666);
    expect(report.errorMessage.startsWith(`Error: ${'x'.repeat(600)}`)).toBe(true);
    expect(report.errorDetails).toBe(`Error: ${message}`);
  });

  it('a message of exactly 666 characters is kept whole', () => {
    const message = 'y'.repeat(666 - 'Error: '.length);
    expect(
      failure(decide({ kind: 'error', name: 'Error', message, policyViolation: false }, facts()))
        .errorMessage,
    ).toBe(`Error: ${message}`);
  });

  it('output over the limit opens an incident at once', () => {
    const decision = decide(
      {
        kind: 'error',
        name: 'OutputTooLarge',
        message: 'too big',
        policyViolation: false,
        outputTooLarge: true,
      },
      facts({ retries: 3 }),
    );
    expect(decision.outcome).toBe('failed');
    expect(failure(decision)).toMatchObject({
      retries: 0,
      retryTimeout: 0,
      errorMessage: 'OutputTooLarge: too big',
    });
  });
});

describe('outcomes that would fail the same way again open an incident at once', () => {
  it('a CPU timeout', () => {
    const decision = decide({ kind: 'timeout', limit: 'cpu', limitMs: 200 }, facts({ retries: 3 }));
    expect(decision.outcome).toBe('timeout');
    expect(failure(decision)).toMatchObject({
      retries: 0,
      retryTimeout: 0,
      errorMessage: 'the script ran over its CPU limit of 200 ms',
    });
  });

  it('a wall-clock timeout', () => {
    const decision = decide({ kind: 'timeout', limit: 'wall', limitMs: 300 }, facts());
    expect(decision.outcome).toBe('timeout');
    expect(failure(decision)).toMatchObject({
      retries: 0,
      errorMessage: 'the script ran over its time limit of 300 ms',
    });
  });

  it('the memory limit', () => {
    const decision = decide({ kind: 'memoryLimit', limitMb: 16 }, facts());
    expect(decision.outcome).toBe('memory_limit');
    expect(failure(decision)).toMatchObject({
      retries: 0,
      errorMessage: 'the script ran over its memory limit of 16 MB',
    });
  });

  it('an uncaught blocked call is a policy violation', () => {
    const decision = decide(
      {
        kind: 'error',
        name: 'SandboxPolicyError',
        message: 'require is not available in the sandbox',
        stack:
          'SandboxPolicyError: require is not available in the sandbox\n    at eval (task.js:1:1)',
        policyViolation: true,
      },
      facts(),
    );
    expect(decision.outcome).toBe('policy_violation');
    expect(failure(decision)).toMatchObject({
      retries: 0,
      retryTimeout: 0,
      errorMessage: 'SandboxPolicyError: require is not available in the sandbox',
      errorDetails:
        'SandboxPolicyError: require is not available in the sandbox\n    at eval (task.js:1:1)',
    });
  });

  it('a sha256 pin that does not match is a policy violation', () => {
    const decision = decide(
      { kind: 'rejected', code: 'SCRIPT_PIN_MISMATCH', message: 'pinned to sha256:aa' },
      facts(),
    );
    expect(decision.outcome).toBe('policy_violation');
    expect(failure(decision)).toMatchObject({
      retries: 0,
      errorMessage: 'SCRIPT_PIN_MISMATCH: pinned to sha256:aa',
    });
  });

  it('a script source the policy refuses is a policy violation', () => {
    const decision = decide(
      { kind: 'rejected', code: 'SCRIPT_SOURCE_REFUSED', message: 'no inline' },
      facts(),
    );
    expect(decision.outcome).toBe('policy_violation');
    expect(failure(decision).retries).toBe(0);
  });

  it.each(['SCRIPT_INPUT_TOO_LARGE', 'SCRIPT_SYNTAX_ERROR', 'SCRIPT_REF_INVALID'])(
    'a rejection %s fails at once',
    (code) => {
      const decision = decide({ kind: 'rejected', code, message: 'why' }, facts({ retries: 2 }));
      expect(decision.outcome).toBe('failed');
      expect(failure(decision)).toMatchObject({
        retries: 0,
        retryTimeout: 0,
        errorMessage: `${code}: why`,
      });
    },
  );
});

describe('a crashed executor', () => {
  it('is a failure whose retries count down, since the task may not be the cause', () => {
    const first = decide(
      { kind: 'crashed', message: 'executor exited with signal SIGSEGV' },
      facts(),
    );
    expect(first.outcome).toBe('failed');
    expect(failure(first)).toMatchObject({ retries: 3, retryTimeout: 1000 });
    expect(failure(first).errorMessage).toContain('executor exited with signal SIGSEGV');
    expect(
      failure(decide({ kind: 'crashed', message: 'gone' }, facts({ retries: 1 }))),
    ).toMatchObject({ retries: 0, retryTimeout: 0 });
  });
});

describe('decideRefusal: a task whose setup is wrong', () => {
  it('a SandboxError keeps its code', () => {
    const decision = decideRefusal(new SandboxError('SCRIPT_PIN_MISMATCH', 'pin differs'), facts());
    expect(decision.outcome).toBe('policy_violation');
    expect(failure(decision).errorMessage).toBe('SCRIPT_PIN_MISMATCH: pin differs');
  });

  it('any other error counts as a missing source and fails at once', () => {
    const decision = decideRefusal(new Error('boom'), facts());
    expect(decision.outcome).toBe('failed');
    expect(failure(decision)).toMatchObject({
      retries: 0,
      errorMessage: 'SCRIPT_SOURCE_MISSING: boom',
    });
  });
});
