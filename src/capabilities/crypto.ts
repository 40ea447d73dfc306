import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { z } from 'zod';

import { isolateSource, type Capability } from './capability.ts';

const settings = z.strictObject({
  maxRandomBytes: z.number().int().min(1).max(65_536).default(65_536),
  maxHashInputBytes: z
    .number()
    .int()
    .min(1)
    .max(64 * 1_048_576)
    .default(8 * 1_048_576),
});

type CryptoSettings = z.infer<typeof settings>;

const ALGORITHMS: Record<string, string> = {
  'SHA-256': 'sha256',
  'SHA-512': 'sha512',
  sha256: 'sha256',
  sha512: 'sha512',
};

function hashInput(value: unknown, limit: number): Buffer {
  let data: Buffer;
  if (typeof value === 'string') data = Buffer.from(value, 'utf8');
  else if (value instanceof Uint8Array) data = Buffer.from(value);
  else if (value instanceof ArrayBuffer) data = Buffer.from(new Uint8Array(value));
  else throw new TypeError('crypto.hash takes a string, a Uint8Array or an ArrayBuffer');
  if (data.length > limit) throw new RangeError(`crypto.hash input is over ${limit} bytes`);
  return data;
}

/**
 * `crypto.randomUUID()`, `crypto.getRandomValues(typedArray)` and
 * `crypto.hash(algorithm, data, encoding?)` with SHA-256 and SHA-512.
 * Random bytes come from the host's CSPRNG: the isolate has none.
 */
export const cryptoCapability: Capability<CryptoSettings> = {
  name: 'crypto',
  settings,
  isolateShim: isolateSource('crypto'),

  createHost(config) {
    return {
      call(method, args) {
        switch (method) {
          case 'randomUUID':
            return randomUUID();
          case 'randomBytes': {
            const size = args[0];
            if (
              !Number.isInteger(size) ||
              (size as number) < 0 ||
              (size as number) > config.maxRandomBytes
            ) {
              throw new RangeError(`getRandomValues takes at most ${config.maxRandomBytes} bytes`);
            }
            const bytes = randomBytes(size as number);
            return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
          }
          case 'hash': {
            const algorithm = ALGORITHMS[String(args[0])];
            if (algorithm === undefined)
              throw new TypeError(`unsupported hash '${String(args[0])}': use SHA-256 or SHA-512`);
            const encoding = args[2] === 'base64' ? 'base64' : 'hex';
            return createHash(algorithm)
              .update(hashInput(args[1], config.maxHashInputBytes))
              .digest(encoding);
          }
          default:
            throw new TypeError(`crypto.${method} is not a crypto method`);
        }
      },
    };
  },
};
