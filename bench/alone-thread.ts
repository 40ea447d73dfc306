// A worker thread that runs one in-process contender of the sandbox-alone
// benchmark (bare node:vm or QuickJS) in a loop for a given time. Threads,
// one per core, so that these contenders fill both cores just as the
// executor's two processes do: throughput is compared at equal hardware.
import { parentPort, workerData } from 'node:worker_threads';

import { getQuickJS, shouldInterruptAfterDeadline, type QuickJSHandle } from 'quickjs-emscripten';

import type { ScriptJob } from '../src/sandbox/job.ts';
import {
  completedResult,
  PRELUDE_FILENAME,
  PRELUDE_SOURCE,
  preludeInput,
  vmRunner,
} from './prelude-host.ts';

export type ThreadEngine = 'vm' | 'quickjs';

export interface ThreadInit {
  engine: ThreadEngine;
  jobs: Record<string, ScriptJob>;
}

export interface MeasureRequest {
  script: string;
  durationMs: number;
}

export interface MeasureReply {
  count: number;
  elapsedMs: number;
  latenciesMs: number[];
  result: unknown;
}

type RunOnce = (job: ScriptJob) => Promise<string> | string;

/**
 * QuickJS compiled to WebAssembly, as a user would set it up: one runtime
 * with the policy's memory limit (as the isolate pool keeps an isolate), a
 * fresh context per execution, a wall-clock deadline through the interrupt
 * handler, variables passed in as the same JSON text. quickjs-emscripten
 * exposes no way to run bytecode compiled in one context in another, so the
 * prelude is parsed in every context: that is QuickJS's real cost here.
 */
async function quickjsRunner(memoryMb: number, wallMs: number): Promise<RunOnce> {
  const QuickJS = await getQuickJS();
  const runtime = QuickJS.newRuntime();
  runtime.setMemoryLimit(memoryMb * 1024 * 1024);
  runtime.setMaxStackSize(1024 * 1024);
  return (job) => {
    runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + wallMs));
    const context = runtime.newContext();
    const handles: QuickJSHandle[] = [];
    const keep = (handle: QuickJSHandle) => (handles.push(handle), handle);
    try {
      const install = keep(
        context.unwrapResult(context.evalCode(PRELUDE_SOURCE, PRELUDE_FILENAME)),
      );
      const refuseFn = keep(context.newFunction('hostCall', () => context.undefined));
      const notifyFn = keep(context.newFunction('hostNotify', () => context.undefined));
      const input = keep(context.newString(preludeInput(job)));
      const run = keep(
        context.unwrapResult(
          context.callFunction(install, context.undefined, refuseFn, refuseFn, notifyFn, input),
        ),
      );
      const promise = keep(
        context.unwrapResult(
          context.callFunction(
            run,
            context.undefined,
            keep(context.newString(job.source)),
            keep(context.newString(job.filename)),
          ),
        ),
      );
      runtime.executePendingJobs();
      const state = context.getPromiseState(promise);
      if (state.type !== 'fulfilled') {
        if (state.type === 'rejected') state.error.dispose();
        throw new Error(`the QuickJS run did not settle (${state.type})`);
      }
      const text = context.getString(state.value);
      if (!state.notAPromise) state.value.dispose();
      return text;
    } finally {
      for (const handle of handles.reverse()) if (handle.alive) handle.dispose();
      context.dispose();
    }
  };
}

const init = workerData as ThreadInit;
const anyJob = Object.values(init.jobs)[0]!;
const runOnce =
  init.engine === 'vm'
    ? vmRunner()
    : await quickjsRunner(anyJob.limits.memoryMb, anyJob.limits.wallMs);

parentPort!.on('message', async (request: MeasureRequest) => {
  const job = init.jobs[request.script]!;
  const latenciesMs: number[] = [];
  let result: unknown;
  const started = performance.now();
  const end = started + request.durationMs;
  do {
    const t = performance.now();
    result = completedResult(await runOnce(job));
    latenciesMs.push(performance.now() - t);
  } while (performance.now() < end);
  const reply: MeasureReply = {
    count: latenciesMs.length,
    elapsedMs: performance.now() - started,
    latenciesMs,
    result,
  };
  parentPort!.postMessage(reply);
});
parentPort!.postMessage('ready');
