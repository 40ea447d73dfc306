import { z } from 'zod';

import { readSecret } from '../config/secrets.ts';
import { CapabilityRefusal, isolateSource, type Capability } from './capability.ts';

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

const settings = z.strictObject({
  allow: z.array(z.string().regex(SECRET_NAME, 'a secret name is letters, digits, _ . -')).min(1),
});

type SecretsSettings = z.infer<typeof settings>;

/**
 * `secrets.get(name)`: a secret from the worker's environment or secrets
 * folder (config/secrets.ts), for names the policy allows. Each value handed
 * out is remembered so that the executor can redact it from everything that
 * leaves the task: log lines, error messages and stacks sent to the engine.
 */
export const secretsCapability: Capability<SecretsSettings> & {
  handedOut(host: object): ReadonlyMap<string, string>;
} = {
  name: 'secrets',
  settings,
  isolateShim: isolateSource('secrets'),

  createHost(config) {
    const allowed = new Set(config.allow);
    const given = new Map<string, string>();
    const host = {
      given,
      call(method: string, args: unknown[]) {
        if (method !== 'get') throw new TypeError(`secrets.${method} is not a secrets method`);
        const name = String(args[0]);
        if (!allowed.has(name)) {
          throw new CapabilityRefusal(`secret '${name}' is not in the policy's allow list`);
        }
        const value = readSecret(name);
        if (value === undefined) return null;
        given.set(name, value);
        return value;
      },
    };
    return host;
  },

  handedOut(host) {
    return (host as { given?: Map<string, string> }).given ?? new Map();
  },
};
