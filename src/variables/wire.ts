import { z } from 'zod';

/**
 * The wire form of a variable value: how values cross the isolate boundary
 * and the executor's IPC channel. Plain JSON, tagged, so that nothing but
 * data ever crosses and so that a Long beyond 2^53 and a Date survive exactly.
 * The isolate side of this mapping lives in sandbox/prelude.isolate.js.
 */
export const wireValueSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('string'), v: z.string() }),
  z.object({ t: z.literal('boolean'), v: z.boolean() }),
  z.object({ t: z.literal('integer'), v: z.number().int().gte(-2147483648).lte(2147483647) }),
  z.object({ t: z.literal('long'), v: z.string().regex(/^-?\d{1,19}$/) }),
  z.object({ t: z.literal('double'), v: z.number() }),
  z.object({ t: z.literal('date'), v: z.string() }),
  z.object({ t: z.literal('json'), v: z.string() }),
  z.object({ t: z.literal('null') }),
  z.object({ t: z.literal('unsupported'), type: z.string() }),
]);

export type WireValue = z.infer<typeof wireValueSchema>;

export const wireVariablesSchema = z.record(z.string().min(1), wireValueSchema);

export type WireVariables = z.infer<typeof wireVariablesSchema>;
