import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { BLOCKED_CAPABILITY_LABELS } from '../capabilities/registry.ts';

export const TASKS_TOTAL = 'camunda_sandbox_tasks_total';
export const BLOCKED_CALLS_TOTAL = 'camunda_sandbox_blocked_calls_total';
export const SCRIPT_DURATION_SECONDS = 'camunda_sandbox_script_duration_seconds';
export const TASKS_IN_FLIGHT = 'camunda_sandbox_tasks_in_flight';
export const ENGINE_REQUESTS_TOTAL = 'camunda_sandbox_engine_requests_total';
export const EXECUTOR_RESTARTS_TOTAL = 'camunda_sandbox_executor_restarts_total';
export const POLICY_RELOADS_TOTAL = 'camunda_sandbox_policy_reloads_total';

/** Every metric the worker exports, for docs and for the ops files' test. */
export const METRIC_NAMES = [
  TASKS_TOTAL,
  BLOCKED_CALLS_TOTAL,
  SCRIPT_DURATION_SECONDS,
  TASKS_IN_FLIGHT,
  ENGINE_REQUESTS_TOTAL,
  EXECUTOR_RESTARTS_TOTAL,
  POLICY_RELOADS_TOTAL,
] as const;

export const OUTCOMES = [
  'completed',
  'bpmn_error',
  'failed',
  'timeout',
  'memory_limit',
  'policy_violation',
  'lock_lost',
] as const;
export type TaskOutcomeLabel = (typeof OUTCOMES)[number];

export const ENGINE_OPERATIONS = [
  'fetch_and_lock',
  'complete',
  'handle_failure',
  'handle_bpmn_error',
  'extend_lock',
  'unlock',
] as const;
export type EngineOperation = (typeof ENGINE_OPERATIONS)[number];

export const RESTART_REASONS = ['crash', 'killed', 'oom', 'unresponsive'] as const;

/**
 * The worker's metrics on one registry. Label values come only from the
 * bounded sets above and from topic and policy names, which the platform
 * team's policy files fix: nothing a script chooses becomes a label.
 */
export class Metrics {
  readonly registry: Registry;
  readonly tasks: Counter<'topic' | 'policy' | 'outcome'>;
  readonly blockedCalls: Counter<'topic' | 'policy' | 'capability'>;
  readonly scriptDuration: Histogram<'topic' | 'policy'>;
  readonly inFlight: Gauge<'topic'>;
  readonly engineRequests: Counter<'operation' | 'result'>;
  readonly executorRestarts: Counter<'reason'>;
  readonly policyReloads: Counter<'result'>;

  constructor(registry = new Registry()) {
    this.registry = registry;
    collectDefaultMetrics({ register: registry });
    const registers = [registry];

    this.tasks = new Counter({
      name: TASKS_TOTAL,
      help: 'Tasks finished, by outcome.',
      labelNames: ['topic', 'policy', 'outcome'],
      registers,
    });
    this.blockedCalls = new Counter({
      name: BLOCKED_CALLS_TOTAL,
      help: 'Calls a script made to something its policy does not grant, caught or not.',
      labelNames: ['topic', 'policy', 'capability'],
      registers,
    });
    this.scriptDuration = new Histogram({
      name: SCRIPT_DURATION_SECONDS,
      help: 'Wall time of one script execution in its isolate, in seconds.',
      labelNames: ['topic', 'policy'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.inFlight = new Gauge({
      name: TASKS_IN_FLIGHT,
      help: 'Tasks fetched and not yet reported.',
      labelNames: ['topic'],
      registers,
    });
    this.engineRequests = new Counter({
      name: ENGINE_REQUESTS_TOTAL,
      help: 'Requests to the Camunda REST API, by operation and result.',
      labelNames: ['operation', 'result'],
      registers,
    });
    this.executorRestarts = new Counter({
      name: EXECUTOR_RESTARTS_TOTAL,
      help: 'Executor processes replaced after they exited.',
      labelNames: ['reason'],
      registers,
    });
    this.policyReloads = new Counter({
      name: POLICY_RELOADS_TOTAL,
      help: 'Policy folder reloads after a change on disk, by result.',
      labelNames: ['result'],
      registers,
    });

    for (const operation of ENGINE_OPERATIONS) {
      for (const result of ['success', 'error']) this.engineRequests.inc({ operation, result }, 0);
    }
    for (const reason of RESTART_REASONS) this.executorRestarts.inc({ reason }, 0);
    for (const result of ['applied', 'rejected']) this.policyReloads.inc({ result }, 0);
  }

  /** Pre-zeroes the series of a topic so that dashboards show 0, not "no data". */
  declareTopic(topic: string, policy: string): void {
    for (const outcome of OUTCOMES) this.tasks.inc({ topic, policy, outcome }, 0);
    for (const capability of BLOCKED_CAPABILITY_LABELS)
      this.blockedCalls.inc({ topic, policy, capability }, 0);
    this.inFlight.inc({ topic }, 0);
  }
}
