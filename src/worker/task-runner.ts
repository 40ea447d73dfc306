import type { Task, TaskService } from 'camunda-external-task-client-js';
import type { Logger } from 'pino';

import { isSandboxError, errorMessage, SandboxError } from '../errors.ts';
import type { ExecutorPool } from '../executor/executor-pool.ts';
import type { PolicyStore } from '../policy/watch.ts';
import type { Policy } from '../policy/schema.ts';
import type { ExecutionEvent, ScriptJob } from '../sandbox/job.ts';
import type { Metrics, TaskOutcomeLabel } from '../telemetry/metrics.ts';
import { fromCamundaAll } from '../variables/camunda.ts';
import { decide, decideRefusal, type Decision, type TaskFacts } from './decide.ts';
import type { EngineClient } from './engine-client.ts';
import { reportToEngine } from './report.ts';
import { resolveScript } from './script-source.ts';

/** A task from fetch to report. `abandoned` is set when a stop unlocked it. */
export interface TaskInFlight {
  readonly task: Task;
  readonly taskService: TaskService;
  abandoned: boolean;
}

export interface TaskRunnerDeps {
  readonly policies: PolicyStore;
  readonly executors: ExecutorPool;
  readonly engine: EngineClient;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly scriptsDir: string;
}

/** What one task ended with, for its log line and counters. */
interface TaskResult {
  outcome: TaskOutcomeLabel;
  scriptHash: string | undefined;
  executionMs: number | undefined;
  blockedCalls: number;
}

/**
 * Runs one fetched task: finds its policy and script, runs the script in an
 * executor, reports the outcome to the engine, then logs one line and counts
 * it. Never throws: every fault ends as a report to the engine.
 */
export async function runTask(entry: TaskInFlight, deps: TaskRunnerDeps): Promise<void> {
  const { task } = entry;
  const started = performance.now();
  const exactVariables = deps.engine.takeVariables(task.id);
  const loaded = deps.policies.current.byTopic.get(task.topicName);
  const policyName = loaded?.policy.name ?? 'none';
  const taskLog = deps.logger.child({
    taskId: task.id,
    processInstanceId: task.processInstanceId,
    activityId: task.activityId,
    topic: task.topicName,
    policy: policyName,
  });

  const result: TaskResult = {
    outcome: 'failed',
    scriptHash: undefined,
    executionMs: undefined,
    blockedCalls: 0,
  };
  const onEvent = (event: ExecutionEvent) => {
    if (event.kind === 'blocked') {
      const count = event.count ?? 1;
      result.blockedCalls += count;
      deps.metrics.blockedCalls.inc(
        { topic: task.topicName, policy: policyName, capability: event.capability },
        count,
      );
      taskLog.warn(
        { capability: event.capability, target: event.name, ...(count > 1 ? { count } : {}) },
        'blocked call',
      );
    } else {
      taskLog[event.level]({ source: 'script' }, event.text);
    }
  };

  let decision: Decision;
  if (!loaded) {
    const missing = new SandboxError(
      'POLICY_NOT_FOUND',
      `no policy serves topic '${task.topicName}'`,
    );
    decision = decideRefusal(missing, factsFor(task, undefined));
  } else {
    decision = await execute(entry, loaded.policy, exactVariables, deps, result, onEvent);
  }

  if (entry.abandoned) {
    taskLog.info(
      { outcome: decision.outcome },
      'task finished after the stop had unlocked it; result dropped',
    );
    return;
  }

  const reported = await reportToEngine(task, entry.taskService, decision.report, taskLog);
  result.outcome =
    reported === 'lock_lost' ? 'lock_lost' : reported === 'refused' ? 'failed' : decision.outcome;

  deps.metrics.tasks.inc({ topic: task.topicName, policy: policyName, outcome: result.outcome });
  if (result.executionMs !== undefined) {
    deps.metrics.scriptDuration.observe(
      { topic: task.topicName, policy: policyName },
      result.executionMs / 1000,
    );
  }
  taskLog.info(
    {
      scriptHash: result.scriptHash,
      outcome: result.outcome,
      durationMs: Math.round(performance.now() - started),
      executionMs:
        result.executionMs === undefined ? undefined : Math.round(result.executionMs * 10) / 10,
      blockedCalls: result.blockedCalls,
      // The script's error message stays out of the log: a script can put
      // variable values in it. It is in the engine, on the task or incident.
    },
    'task done',
  );
}

async function execute(
  entry: TaskInFlight,
  policy: Policy,
  exactVariables: Record<
    string,
    { type: string; value: unknown; valueInfo?: Record<string, unknown> }
  >,
  deps: TaskRunnerDeps,
  result: TaskResult,
  onEvent: (event: ExecutionEvent) => void,
): Promise<Decision> {
  const { task } = entry;
  const facts = factsFor(task, policy);
  try {
    const script = resolveScript(
      task.extensionProperties ?? {},
      policy,
      deps.scriptsDir,
      task.activityId,
    );
    result.scriptHash = script.hash;
    const job: ScriptJob = {
      taskId: task.id,
      topic: task.topicName,
      policy: policy.name,
      source: script.source,
      filename: script.filename,
      variables: fromCamundaAll(exactVariables),
      meta: {
        executionId: task.executionId,
        processInstanceId: task.processInstanceId,
        processDefinitionId: task.processDefinitionId,
        processDefinitionKey: task.processDefinitionKey,
        activityId: task.activityId,
        activityInstanceId: task.activityInstanceId,
        businessKey: task.businessKey,
        tenantId: task.tenantId,
        topicName: task.topicName,
      },
      limits: policy.limits,
      wantsResult: Boolean(facts.resultVariable),
      capabilities: grantedCapabilities(policy),
    };
    const executionStart = performance.now();
    const outcome = await deps.executors.run(job, onEvent);
    result.executionMs = performance.now() - executionStart;
    return decide(outcome, facts);
  } catch (err) {
    if (
      isSandboxError(err) &&
      err.code !== 'EXECUTOR_CRASHED' &&
      err.code !== 'EXECUTOR_UNAVAILABLE'
    ) {
      return decideRefusal(err, facts);
    }
    deps.logger.error(
      { taskId: task.id, err: errorMessage(err) },
      'sandbox fault while running a task',
    );
    return decide({ kind: 'crashed', message: errorMessage(err) }, facts);
  }
}

function grantedCapabilities(policy: Policy): Record<string, unknown> {
  const granted: Record<string, unknown> = {};
  for (const [name, settings] of Object.entries(policy.capabilities)) {
    if (settings !== undefined) granted[name] = settings;
  }
  return granted;
}

const NO_RETRIES_POLICY = {
  retries: { count: 0, backoffMs: 0, factor: 1, maxBackoffMs: 0 },
} as Policy;

function factsFor(task: Task, policy: Policy | undefined): TaskFacts {
  return {
    policy: policy ?? NO_RETRIES_POLICY,
    retries: task.retries,
    resultVariable: task.extensionProperties?.['resultVariable'] || undefined,
  };
}
