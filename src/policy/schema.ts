import { z } from 'zod';

import { CAPABILITIES } from '../capabilities/registry.ts';

const TOPIC = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** Resource limits for one script execution. */
const limitsSchema = z
  .strictObject({
    /** Isolate heap limit in MiB (V8's own floor is about 8). */
    memoryMb: z.number().int().min(8).max(4096).default(64),
    /** Wall-clock limit in ms, awaited promises included. */
    wallMs: z.number().int().min(10).max(3_600_000).default(5000),
    /** CPU time limit in ms, measured on the isolate's own thread. */
    cpuMs: z.number().int().min(10).max(3_600_000).optional(),
    /** The task's variables, serialized, in bytes. */
    inputBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1_048_576)
      .default(1_048_576),
    /** The script's result and variables, serialized, in bytes. */
    outputBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1_048_576)
      .default(1_048_576),
  })
  // Unset, the CPU limit is 2000 ms or the wall limit if that is smaller.
  .transform((limits) => ({ ...limits, cpuMs: limits.cpuMs ?? Math.min(2000, limits.wallMs) }))
  .refine((limits) => limits.cpuMs <= limits.wallMs, {
    message: 'cpuMs cannot exceed wallMs',
    path: ['cpuMs'],
  });

/** How a failing script is retried before an incident opens. */
const retriesSchema = z.strictObject({
  /** Attempts after the first failure; 0 opens an incident at once. */
  count: z.number().int().min(0).max(100).default(3),
  /** Wait before the first retry, in ms. */
  backoffMs: z.number().int().min(0).max(86_400_000).default(5000),
  /** Each later retry waits this many times longer. */
  factor: z.number().min(1).max(10).default(2),
  /** Upper bound on the wait, in ms. */
  maxBackoffMs: z.number().int().min(0).max(86_400_000).default(300_000),
});

/** Where a task's script may come from. */
const sourcesSchema = z.strictObject({
  /** The `script` extension property, inline in the model. */
  inline: z.boolean().default(true),
  /** The `scriptRef` extension property, a file in the script folder. */
  registry: z.boolean().default(true),
  /** Require every scriptRef to carry a sha256 pin. */
  requirePin: z.boolean().default(false),
});

function capabilitiesSchema() {
  const shape: Record<string, z.ZodType> = {};
  // `crypto:` with nothing after it grants the capability with its defaults.
  for (const [name, capability] of CAPABILITIES) {
    shape[name] = z
      .preprocess((value) => (value === null ? {} : value), capability.settings)
      .optional();
  }
  return z.strictObject(shape).default({});
}

export const policySchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a policy name is lowercase letters, digits, _ and -'),
  description: z.string().optional(),
  topics: z.array(z.string().regex(TOPIC, 'a topic is letters, digits and _ . : -')).min(1),
  limits: limitsSchema.default(limitsSchema.parse({})),
  retries: retriesSchema.default(retriesSchema.parse({})),
  sources: sourcesSchema.default(sourcesSchema.parse({})),
  capabilities: capabilitiesSchema(),
});

export type Policy = z.infer<typeof policySchema>;
export type PolicyLimits = Policy['limits'];
export type PolicyRetries = Policy['retries'];

/** The engine's wait before retry number `attempt` (1-based) under a policy. */
export function backoffFor(retries: PolicyRetries, attempt: number): number {
  const wait = retries.backoffMs * retries.factor ** Math.max(0, attempt - 1);
  return Math.min(Math.round(wait), retries.maxBackoffMs);
}
