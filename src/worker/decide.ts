import { isSandboxError, errorMessage, type ErrorCode } from '../errors.ts';
import { backoffFor, type Policy } from '../policy/schema.ts';
import type { ScriptOutcome } from '../sandbox/outcome.ts';
import type { TaskOutcomeLabel } from '../telemetry/metrics.ts';
import { toCamunda, toCamundaAll, type TypedVariables } from '../variables/camunda.ts';

/** What the worker sends to the engine for one task. */
export type Report =
  | { kind: 'complete'; variables: TypedVariables; localVariables: TypedVariables }
  | { kind: 'bpmnError'; code: string; message: string; variables: TypedVariables }
  | {
      kind: 'failure';
      errorMessage: string;
      errorDetails: string;
      retries: number;
      retryTimeout: number;
    };

export interface Decision {
  readonly report: Report;
  readonly outcome: TaskOutcomeLabel;
}

export interface TaskFacts {
  readonly policy: Policy;
  /** The task's retries as the engine has them: null before the first failure. */
  readonly retries: number | null;
  readonly resultVariable: string | undefined;
}

/** The engine cuts errorMessage at 666 characters; the whole text goes in errorDetails. */
const ERROR_MESSAGE_LIMIT = 666;

/** Refusals that would fail the same way on every retry, and so open an incident at once. */
const POLICY_VIOLATIONS: ReadonlySet<string> = new Set<ErrorCode>([
  'SCRIPT_PIN_MISMATCH',
  'SCRIPT_SOURCE_REFUSED',
]);

/** Maps what the script did to what the engine receives (DESIGN.md, "Outcomes"). */
export function decide(outcome: ScriptOutcome, facts: TaskFacts): Decision {
  switch (outcome.kind) {
    case 'completed':
      return completion(outcome, facts);
    case 'bpmnError':
      return guarded(facts, () => ({
        outcome: 'bpmn_error',
        report: {
          kind: 'bpmnError',
          code: outcome.code,
          message: outcome.message,
          variables: toCamundaAll(outcome.variables),
        },
      }));
    case 'error':
      if (outcome.policyViolation)
        return incident('policy_violation', `${outcome.name}: ${outcome.message}`, outcome.stack);
      if (outcome.outputTooLarge)
        return incident('failed', `${outcome.name}: ${outcome.message}`, outcome.stack);
      return retried(
        facts,
        `${outcome.name}: ${outcome.message}`,
        outcome.stack ?? `${outcome.name}: ${outcome.message}`,
      );
    case 'timeout':
      return incident(
        'timeout',
        `the script ran over its ${outcome.limit === 'cpu' ? 'CPU' : 'time'} limit of ${outcome.limitMs} ms`,
      );
    case 'memoryLimit':
      return incident(
        'memory_limit',
        `the script ran over its memory limit of ${outcome.limitMb} MB`,
      );
    case 'rejected':
      return incident(
        POLICY_VIOLATIONS.has(outcome.code) ? 'policy_violation' : 'failed',
        `${outcome.code}: ${outcome.message}`,
      );
    case 'crashed':
      return retried(
        facts,
        `the sandbox executor crashed while running the script: ${outcome.message}`,
      );
  }
}

/** A fault of the task's own setup found before it ran (bad source, bad variable). */
export function decideRefusal(err: unknown, facts: TaskFacts): Decision {
  const code = isSandboxError(err) ? err.code : 'SCRIPT_SOURCE_MISSING';
  return decide({ kind: 'rejected', code, message: errorMessage(err) }, facts);
}

function completion(
  outcome: Extract<ScriptOutcome, { kind: 'completed' }>,
  facts: TaskFacts,
): Decision {
  return guarded(facts, () => {
    const variables = toCamundaAll(outcome.variables);
    if (facts.resultVariable && outcome.result !== undefined) {
      variables[facts.resultVariable] = toCamunda(facts.resultVariable, outcome.result);
    }
    return {
      outcome: 'completed',
      report: { kind: 'complete', variables, localVariables: toCamundaAll(outcome.localVariables) },
    };
  });
}

/** A variable the engine cannot take fails the task like a script error would, once. */
function guarded(facts: TaskFacts, build: () => Decision): Decision {
  try {
    return build();
  } catch (err) {
    return incident('failed', errorMessage(err));
  }
}

function incident(outcome: TaskOutcomeLabel, message: string, details?: string): Decision {
  return { outcome, report: failure(message, details ?? message, 0, 0) };
}

function retried(facts: TaskFacts, message: string, details?: string): Decision {
  const policyRetries = facts.policy.retries;
  const remaining = facts.retries === null ? policyRetries.count : Math.max(0, facts.retries - 1);
  const attempt = policyRetries.count - remaining + 1;
  const wait = remaining > 0 ? backoffFor(policyRetries, attempt) : 0;
  return { outcome: 'failed', report: failure(message, details ?? message, remaining, wait) };
}

function failure(message: string, details: string, retries: number, retryTimeout: number): Report {
  const short =
    message.length > ERROR_MESSAGE_LIMIT
      ? `${message.slice(0, ERROR_MESSAGE_LIMIT - 1)}…`
      : message;
  return { kind: 'failure', errorMessage: short, errorDetails: details, retries, retryTimeout };
}
