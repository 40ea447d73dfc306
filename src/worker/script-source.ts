import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';

import { SandboxError } from '../errors.ts';
import type { Policy } from '../policy/schema.ts';

/** A script ready to run, and the hash that names it in logs. */
export interface ResolvedScript {
  readonly source: string;
  readonly filename: string;
  readonly hash: string;
}

const PIN = /^(.+?)@sha256:([0-9a-fA-F]{64})$/;

/** Largest script file read from the script folder (an inline one is bounded by the engine). */
const MAX_SCRIPT_BYTES = 1_048_576;

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Finds the task's script: the inline `script` property or the `scriptRef`
 * into the script folder, as far as the policy accepts that source. The text
 * never comes from a process variable.
 */
export function resolveScript(
  properties: Readonly<Record<string, string>>,
  policy: Policy,
  scriptsDir: string,
  activityId: string | null,
): ResolvedScript {
  const inline = properties['script'];
  const ref = properties['scriptRef'];

  if (inline !== undefined && ref !== undefined) {
    throw new SandboxError(
      'SCRIPT_REF_INVALID',
      'the task sets both script and scriptRef: set one',
    );
  }
  if (inline !== undefined) {
    if (!policy.sources.inline) {
      throw new SandboxError(
        'SCRIPT_SOURCE_REFUSED',
        `policy '${policy.name}' does not accept inline scripts: use scriptRef`,
      );
    }
    if (inline.trim() === '')
      throw new SandboxError('SCRIPT_SOURCE_MISSING', 'the script property is empty');
    return { source: inline, filename: `${activityId ?? 'script'}.js`, hash: sha256(inline) };
  }
  if (ref !== undefined) {
    if (!policy.sources.registry) {
      throw new SandboxError(
        'SCRIPT_SOURCE_REFUSED',
        `policy '${policy.name}' does not accept scriptRef: scripts must be inline`,
      );
    }
    return readScriptRef(ref, policy, scriptsDir);
  }
  throw new SandboxError(
    'SCRIPT_SOURCE_MISSING',
    'the task has no script: add a camunda:property named script or scriptRef to the external task',
  );
}

function readScriptRef(ref: string, policy: Policy, scriptsDir: string): ResolvedScript {
  const pinned = PIN.exec(ref.trim());
  const path = pinned ? pinned[1]! : ref.trim();
  const pin = pinned?.[2]?.toLowerCase();
  if (policy.sources.requirePin && pin === undefined) {
    throw new SandboxError(
      'SCRIPT_PIN_MISMATCH',
      `policy '${policy.name}' requires a pinned scriptRef (path@sha256:<hex>), got '${ref}'`,
    );
  }

  const file = insideFolder(path, scriptsDir);
  let bytes: Buffer;
  try {
    if (statSync(file).size > MAX_SCRIPT_BYTES) {
      throw new SandboxError(
        'SCRIPT_REF_INVALID',
        `scriptRef '${path}' is over ${MAX_SCRIPT_BYTES} bytes`,
      );
    }
    bytes = readFileSync(file);
  } catch (err) {
    if (err instanceof SandboxError) throw err;
    throw new SandboxError(
      'SCRIPT_REF_INVALID',
      `scriptRef '${path}' cannot be read from the script folder: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }

  const hash = sha256(bytes);
  if (pin !== undefined && pin !== hash) {
    throw new SandboxError(
      'SCRIPT_PIN_MISMATCH',
      `scriptRef '${path}' is pinned to sha256:${pin} but the file has sha256:${hash}`,
    );
  }
  return { source: bytes.toString('utf8'), filename: path, hash };
}

/** Resolves a relative path inside the script folder; anything that leaves it is refused. */
function insideFolder(path: string, scriptsDir: string): string {
  if (path === '' || isAbsolute(path) || path.includes('\0')) {
    throw new SandboxError(
      'SCRIPT_REF_INVALID',
      `scriptRef '${path}' must be a relative path in the script folder`,
    );
  }
  const root = resolve(scriptsDir);
  const candidate = resolve(root, path);
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(candidate);
  } catch {
    throw new SandboxError(
      'SCRIPT_REF_INVALID',
      `scriptRef '${path}' does not exist in the script folder`,
    );
  }
  const rel = relative(realRoot, real);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
    throw new SandboxError('SCRIPT_REF_INVALID', `scriptRef '${path}' leaves the script folder`);
  }
  return real;
}
