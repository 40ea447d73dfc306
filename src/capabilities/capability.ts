import { readFileSync } from 'node:fs';

import type { z } from 'zod';

/** What a capability's host side knows about the task it serves. */
export interface CapabilityContext {
  readonly taskId: string;
  readonly topic: string;
  readonly policy: string;
  /** One-way notice to the worker: a console line to log. */
  readonly log: (level: ConsoleLevel, text: string) => void;
  /** Aborted when the task's deadline passes or the task ends. */
  readonly signal: AbortSignal;
}

export type ConsoleLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * The host side of one capability for one task: plain JSON-compatible
 * arguments in, plain JSON-compatible results out. Arguments come from an
 * untrusted script, so every method checks them as a public API would.
 */
export interface CapabilityHost {
  /** Synchronous calls (the isolate waits for the answer). */
  call?(method: string, args: unknown[]): unknown;
  /** Asynchronous calls (the script receives a promise). */
  callAsync?(method: string, args: unknown[]): Promise<unknown>;
  /** Releases what the host side holds once the task has ended. */
  dispose?(): void;
}

/**
 * One capability: its policy settings schema, the shim the script sees and
 * the host side that serves the shim's calls.
 *
 * The shim is isolate-side JavaScript: the source of a function expression
 * `(call, callAsync) => value`, where `call(method, ...args)` and
 * `callAsync(method, ...args)` reach this capability's host side with copied
 * arguments, and `value` becomes the script's global of the capability's name.
 */
export interface Capability<Settings = unknown> {
  readonly name: string;
  readonly settings: z.ZodType<Settings>;
  readonly isolateShim: string;
  createHost(settings: Settings, context: CapabilityContext): CapabilityHost;
}

/** A refusal that the script may see: its message names what was refused. */
export class CapabilityRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CapabilityRefusal';
  }
}

/**
 * The isolate-side source of a capability, `<name>.isolate.js` beside this
 * file: plain JavaScript that runs inside the isolate, kept in its own file so
 * that the boundary shows in the tree.
 */
export function isolateSource(name: string): string {
  // One function expression; a formatter may end it with `;`, which would not parse in `(…)`.
  return readFileSync(new URL(`./${name}.isolate.js`, import.meta.url), 'utf8')
    .trim()
    .replace(/;$/, '');
}
