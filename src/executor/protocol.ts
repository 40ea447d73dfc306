import type { ExecutionEvent, ScriptJob } from '../sandbox/job.ts';
import type { ScriptOutcome } from '../sandbox/outcome.ts';

/** Worker → executor. */
export type ToExecutor = { type: 'run'; id: number; job: ScriptJob };

/** Executor → worker. */
export type FromExecutor =
  | { type: 'ready' }
  | { type: 'event'; id: number; event: ExecutionEvent }
  | { type: 'done'; id: number; outcome: ScriptOutcome }
  /** The sandbox itself failed (not the script): reported as our fault. */
  | { type: 'failed'; id: number; message: string };

/**
 * Node flags every executor runs with. isolated-vm needs --no-node-snapshot
 * on Node 20 and later. Each task's code starts cold in a fresh context, so
 * compiling it to baseline code at once (Sparkplug) pays: about 30% off a
 * script of a few ms here, nothing lost on a light one.
 */
export const EXECUTOR_EXEC_ARGV = ['--no-node-snapshot', '--always-sparkplug'];
