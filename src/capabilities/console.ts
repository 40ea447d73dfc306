import { z } from 'zod';

import { isolateSource, type Capability, type ConsoleLevel } from './capability.ts';

const settings = z.strictObject({
  maxLines: z.number().int().min(1).max(10_000).default(100),
  maxBytes: z.number().int().min(64).max(1_048_576).default(16_384),
});

type ConsoleSettings = z.infer<typeof settings>;

const LEVELS: Record<string, ConsoleLevel> = {
  log: 'info',
  info: 'info',
  debug: 'debug',
  warn: 'warn',
  error: 'error',
};

/**
 * `console.log/info/debug/warn/error` into the worker's log, with the task's
 * context. Arguments are formatted inside the isolate so only one string
 * crosses; the host caps lines and bytes per execution.
 */
export const consoleCapability: Capability<ConsoleSettings> = {
  name: 'console',
  settings,
  isolateShim: isolateSource('console'),

  createHost(config, context) {
    let lines = 0;
    let bytes = 0;
    let truncated = false;

    return {
      call(method, args) {
        const level = LEVELS[method];
        const text = args[0];
        if (level === undefined || typeof text !== 'string') {
          throw new TypeError(`console.${method} is not a console method`);
        }
        if (truncated) return undefined;

        const size = Buffer.byteLength(text);
        if (lines + 1 > config.maxLines || bytes + size > config.maxBytes) {
          truncated = true;
          context.log(
            'warn',
            `[console output truncated at ${config.maxLines} lines / ${config.maxBytes} bytes]`,
          );
          return undefined;
        }
        lines += 1;
        bytes += size;
        context.log(level, text);
        return undefined;
      },
    };
  },
};
