import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where secrets come from: a file named like the secret in
 * `SANDBOX_SECRETS_DIR` (how Kubernetes mounts a Secret), else the
 * environment variable `SANDBOX_SECRET_<NAME>`. Read on each call so that a
 * rotated secret is picked up without a restart.
 */
export function readSecret(name: string): string | undefined {
  const dir = process.env['SANDBOX_SECRETS_DIR'];
  if (dir) {
    try {
      return readFileSync(join(dir, name), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return process.env[`SANDBOX_SECRET_${name}`];
}
