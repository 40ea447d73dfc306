import { CAPABILITIES, trapsFor } from '../capabilities/registry.ts';
import type { ScriptJob } from './job.ts';

const CAPABILITY_NAMES = Object.fromEntries([...CAPABILITIES.keys()].map((name) => [name, true]));

/**
 * The one JSON string the prelude receives for a task: its variables and
 * context, the traps to install, and the isolate-side shims of the granted
 * capabilities. Undefined when the variables are over the input limit.
 */
export function preludeInput(job: ScriptJob): string | undefined {
  const variablesJson = JSON.stringify(job.variables);
  if (Buffer.byteLength(variablesJson) > job.limits.inputBytes) return undefined;

  const granted = new Set(Object.keys(job.capabilities));
  const shims: Record<string, string> = {};
  for (const name of granted) {
    const capability = CAPABILITIES.get(name);
    if (capability) shims[name] = capability.isolateShim;
  }

  return JSON.stringify({
    variables: job.variables,
    meta: {
      ...job.meta,
      policy: job.policy,
      outputLimit: job.limits.outputBytes,
      wantsResult: job.wantsResult ?? true,
    },
    traps: trapsFor(granted),
    capabilities: shims,
    capabilityNames: CAPABILITY_NAMES,
  });
}
