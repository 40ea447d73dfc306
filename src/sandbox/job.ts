import type { PolicyLimits } from '../policy/schema.ts';
import type { WireVariables } from '../variables/wire.ts';
import type { ConsoleLevel } from '../capabilities/capability.ts';

/** What `execution.get*Id()` and friends answer inside the script. */
export interface TaskMeta {
  executionId: string | null;
  processInstanceId: string | null;
  processDefinitionId: string | null;
  processDefinitionKey: string | null;
  activityId: string | null;
  activityInstanceId: string | null;
  businessKey: string | null;
  tenantId: string | null;
  topicName: string | null;
}

/** One script execution, as plain data: it crosses the executor's IPC channel. */
export interface ScriptJob {
  taskId: string;
  topic: string;
  policy: string;
  source: string;
  /** The name stack traces show for the script, e.g. `invoice/total.js`. */
  filename: string;
  variables: WireVariables;
  meta: TaskMeta;
  limits: PolicyLimits;
  /** Whether the completion value is kept (the task has a resultVariable); default true. */
  wantsResult?: boolean;
  /** Settings of each capability the policy grants, by capability name. */
  capabilities: Record<string, unknown>;
}

/** Something the script did that the worker logs or counts while it runs. */
export type ExecutionEvent =
  /** `count` (default 1): past the first calls of a task, the rest come summed at its end. */
  | { kind: 'blocked'; capability: string; name: string; count?: number }
  | { kind: 'console'; level: ConsoleLevel; text: string };
