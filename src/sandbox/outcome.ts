import { z } from 'zod';

import { wireValueSchema, wireVariablesSchema } from '../variables/wire.ts';

/**
 * What one script execution ended with. The first three kinds are produced
 * inside the isolate (and re-validated here, since the script shares that
 * realm); the others are decided by the host.
 */
export const isolateOutcomeSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('completed'),
    result: wireValueSchema.optional(),
    variables: wireVariablesSchema,
    localVariables: wireVariablesSchema,
  }),
  z.object({
    kind: z.literal('bpmnError'),
    code: z.string().min(1),
    message: z.string(),
    variables: wireVariablesSchema,
  }),
  z.object({
    kind: z.literal('error'),
    name: z.string(),
    message: z.string(),
    stack: z.string().optional(),
    policyViolation: z.boolean(),
    outputTooLarge: z.boolean().optional(),
  }),
]);

export type IsolateOutcome = z.infer<typeof isolateOutcomeSchema>;

export type ScriptOutcome =
  | IsolateOutcome
  | { kind: 'timeout'; limit: 'wall' | 'cpu'; limitMs: number }
  | { kind: 'memoryLimit'; limitMb: number }
  /** The sandbox refused to run the script (input too large, bad source). */
  | { kind: 'rejected'; code: string; message: string }
  /** The executor process died with the task in flight. */
  | { kind: 'crashed'; message: string };
