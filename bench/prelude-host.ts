// What the three in-process contenders of the sandbox-alone benchmark share
// with the executor: the same prelude (the `execution` shim, Spin's S, the
// traps, the capability shims), the same JSON input the executor builds for
// it, the same ScriptJob. node:vm and QuickJS thus do the same work per
// execution as the executor; only the engine and the isolation differ.
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

import { preludeInput as buildPreludeInput } from '../src/sandbox/prelude-input.ts';
import { loadPolicyDir } from '../src/policy/load.ts';
import type { Policy } from '../src/policy/schema.ts';
import type { ScriptJob } from '../src/sandbox/job.ts';
import {
  fromCamundaAll,
  toCamunda,
  toCamundaAll,
  type TypedVariables,
} from '../src/variables/camunda.ts';
import type { WireValue, WireVariables } from '../src/variables/wire.ts';
import type { BenchScript } from './scripts.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

// From prelude-source.ts, not isolate-pool.ts: that module loads isolated-vm,
// which Node 24 only runs with --no-node-snapshot, and the benchmark's own
// process has no isolate.
import { PRELUDE_FILENAME, PRELUDE_SOURCE } from '../src/sandbox/prelude-source.ts';

export { PRELUDE_FILENAME, PRELUDE_SOURCE };

/** The shipped default policy (sandbox-policies/default.yaml): limits and capabilities of every job here. */
export function defaultPolicy(): Policy {
  const loaded = loadPolicyDir(`${ROOT}sandbox-policies`).byName.get('default');
  if (!loaded) throw new Error('sandbox-policies/default.yaml has no policy named default');
  return loaded.policy;
}

/** A ScriptJob as the worker's task runner builds it for a fetched task. */
export function benchJob(script: BenchScript, policy: Policy): ScriptJob {
  const capabilities: Record<string, unknown> = {};
  for (const [name, settings] of Object.entries(policy.capabilities))
    if (settings !== undefined) capabilities[name] = settings;
  return {
    taskId: `bench-${script.name}`,
    topic: policy.topics[0]!,
    policy: policy.name,
    source: script.source,
    filename: `${script.name}.js`,
    variables: fromCamundaAll(script.variables),
    meta: {
      executionId: 'bench-execution',
      processInstanceId: 'bench-instance',
      processDefinitionId: 'bench:1:1',
      processDefinitionKey: 'bench',
      activityId: 'step',
      activityInstanceId: 'step:1',
      businessKey: null,
      tenantId: null,
      topicName: policy.topics[0]!,
    },
    limits: policy.limits,
    // The end-to-end models have a resultVariable, so the worker keeps the result.
    wantsResult: true,
    capabilities,
  };
}

/** The prelude's input, as the executor builds it; a job here is never over the input limit. */
export function preludeInput(job: ScriptJob): string {
  const input = buildPreludeInput(job);
  if (input === undefined) throw new Error('a benchmark job is over the input limit');
  return input;
}

/**
 * The prelude's answer, parsed; throws unless the script completed. The
 * executor also validates it against a zod schema (its own cost, measured
 * with it); here a plain parse is the floor.
 */
export function completedResult(outcomeJson: unknown): unknown {
  if (typeof outcomeJson !== 'string') throw new Error('the prelude returned no outcome');
  const outcome = JSON.parse(outcomeJson) as { kind: string; result?: unknown; message?: string };
  if (outcome.kind !== 'completed')
    throw new Error(`the script did not complete: ${outcomeJson.slice(0, 300)}`);
  return outcome.result;
}

// Host callbacks of the prelude. The benchmark scripts call no capability;
// the console and crypto shims are installed all the same, as in the executor.
const refuse = () => ({ error: 'not available in the benchmark' });

/**
 * Bare node:vm, the floor: a fresh context per execution (as the executor
 * makes a fresh isolate context per task), the prelude compiled once (a
 * vm.Script is context-independent, like the isolate pool's compiled
 * prelude), no isolation, no limits. DONT_CONTEXTIFY gives the context an
 * ordinary global object: a contextified one (vm.createContext({})) routes
 * every global variable access through interceptors and runs these scripts,
 * whose `var`s are globals, 5 to 20 times slower; that would be no floor.
 */
export function vmRunner(): (job: ScriptJob) => Promise<string> {
  const prelude = new vm.Script(PRELUDE_SOURCE, { filename: PRELUDE_FILENAME });
  return async (job) => {
    const context = vm.createContext(vm.constants.DONT_CONTEXTIFY);
    const install = prelude.runInContext(context) as (
      ...args: unknown[]
    ) => (source: string, filename: string) => Promise<string>;
    const run = install(refuse, refuse, () => {}, preludeInput(job));
    return run(job.source, job.filename);
  };
}

/**
 * The variables the sandbox worker completes a task of this script with (its
 * variables and its result variable, as Camunda typed values): the bare
 * worker completes with the same, so that the engine does the same work for
 * both and the difference between them is the sandbox's own.
 */
export async function completionVariables(
  job: ScriptJob,
  resultVariable: string,
): Promise<TypedVariables> {
  const outcome = JSON.parse(await vmRunner()(job)) as {
    kind: string;
    result?: WireValue;
    variables: WireVariables;
  };
  if (outcome.kind !== 'completed')
    throw new Error(`the ${job.filename} script does not complete in node:vm`);
  const typed = toCamundaAll(outcome.variables);
  if (outcome.result !== undefined)
    typed[resultVariable] = toCamunda(resultVariable, outcome.result);
  return typed;
}
