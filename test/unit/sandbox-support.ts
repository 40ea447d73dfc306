// Shared by the unit tests that run scripts: builds ScriptJobs the way the
// worker and `run` do, and runs them through the real sandbox in this process.
import type { PolicyLimits } from '../../src/policy/schema.ts';
import { IsolatePool } from '../../src/sandbox/isolate-pool.ts';
import type { ExecutionEvent, ScriptJob, TaskMeta } from '../../src/sandbox/job.ts';
import type { ScriptOutcome } from '../../src/sandbox/outcome.ts';
import { runScript } from '../../src/sandbox/run-script.ts';
import type { WireVariables } from '../../src/variables/wire.ts';

export const LIMITS: PolicyLimits = {
  memoryMb: 32,
  wallMs: 3000,
  cpuMs: 2000,
  inputBytes: 1_048_576,
  outputBytes: 1_048_576,
};

/** Tight limits for the breach tests, so that each stays well under a second. */
export const TIGHT: PolicyLimits = { ...LIMITS, wallMs: 300, cpuMs: 200 };

export const META: TaskMeta = {
  executionId: 'exec-1',
  processInstanceId: 'pi-1',
  processDefinitionId: 'invoice:3:pd-1',
  processDefinitionKey: 'invoice',
  activityId: 'computeTotal',
  activityInstanceId: 'computeTotal:ai-1',
  businessKey: 'order-42',
  tenantId: 'tenant-a',
  topicName: 'sandbox',
};

export interface JobOptions {
  variables?: WireVariables;
  limits?: Partial<PolicyLimits>;
  capabilities?: Record<string, unknown>;
  meta?: Partial<TaskMeta>;
  filename?: string;
}

export function makeJob(source: string, options: JobOptions = {}): ScriptJob {
  return {
    taskId: 'task-1',
    topic: 'sandbox',
    policy: 'unit',
    source,
    filename: options.filename ?? 'task.js',
    variables: options.variables ?? {},
    meta: { ...META, ...options.meta },
    limits: { ...LIMITS, ...options.limits },
    capabilities: options.capabilities ?? {},
  };
}

export interface Ran {
  outcome: ScriptOutcome;
  events: ExecutionEvent[];
}

export async function run(
  pool: IsolatePool,
  source: string,
  options: JobOptions = {},
): Promise<Ran> {
  const events: ExecutionEvent[] = [];
  const outcome = await runScript(makeJob(source, options), pool, (event) => events.push(event));
  return { outcome, events };
}

export function newPool(): IsolatePool {
  return new IsolatePool({ maxIdle: 2, maxTasksPerIsolate: 1000 });
}

/** Narrows an outcome to one kind, failing the test with the whole outcome otherwise. */
export function expectKind<K extends ScriptOutcome['kind']>(
  outcome: ScriptOutcome,
  kind: K,
): Extract<ScriptOutcome, { kind: K }> {
  if (outcome.kind !== kind) {
    throw new Error(`expected a '${kind}' outcome, got ${JSON.stringify(outcome)}`);
  }
  return outcome as Extract<ScriptOutcome, { kind: K }>;
}
