import type { Capability } from './capability.ts';
import { consoleCapability } from './console.ts';
import { cryptoCapability } from './crypto.ts';
import { fetchCapability } from './fetch.ts';
import { secretsCapability } from './secrets.ts';

/** Every capability a policy can grant, by the global name the script sees. */
export const CAPABILITIES: ReadonlyMap<string, Capability<unknown>> = new Map(
  [consoleCapability, cryptoCapability, fetchCapability, secretsCapability].map((c) => [c.name, c]),
);

/**
 * Host names a script reaches for to escape: Node's globals and timers, then
 * the JVM script engines' (Nashorn, Rhino, GraalJS) that Camunda inline
 * scripts use to reach Java. Each counts under its own name.
 */
export const ESCAPE_NAMES: readonly string[] = [
  'require',
  'process',
  'Buffer',
  'module',
  'exports',
  'global',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'Java',
  'Packages',
  'java',
  'javax',
  'load',
  'loadWithNewGlobal',
  'importPackage',
  'importClass',
  'JavaImporter',
  'Polyglot',
];

/** The closed set of `capability` label values on the blocked-calls metric. */
export const BLOCKED_CAPABILITY_LABELS: readonly string[] = [
  ...CAPABILITIES.keys(),
  ...ESCAPE_NAMES,
  // execution.getProcessEngineServices() and getProcessEngine().
  'engineServices',
];

/** Traps for one task: every escape name, and every capability not granted. */
export function trapsFor(granted: ReadonlySet<string>): [name: string, capability: string][] {
  const traps: [string, string][] = ESCAPE_NAMES.map((name) => [name, name]);
  for (const name of CAPABILITIES.keys()) {
    if (!granted.has(name)) traps.push([name, name]);
  }
  if (!granted.has('console')) traps.push(['print', 'console']);
  return traps;
}
