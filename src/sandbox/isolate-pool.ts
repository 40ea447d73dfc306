import ivm from 'isolated-vm';

import { PRELUDE_FILENAME, PRELUDE_SOURCE } from './prelude-source.ts';

export { PRELUDE_FILENAME } from './prelude-source.ts';

/** An idle isolate whose heap holds more than this (or half its limit) is replaced. */
const RETIRE_HEAP_BYTES = 16 * 1_048_576;
const HEAP_CHECK_EVERY = 16;

/** An isolate and what is compiled into it once. */
export interface PooledIsolate {
  readonly isolate: ivm.Isolate;
  readonly memoryMb: number;
  readonly prelude: ivm.Script;
  tasks: number;
}

export interface IsolatePoolOptions {
  /** Idle isolates kept per memory limit. */
  readonly maxIdle: number;
  /** An isolate is replaced after this many tasks, so that a slow leak cannot build up. */
  readonly maxTasksPerIsolate: number;
}

/**
 * Reuses isolates between tasks of the same memory limit. Each task still
 * gets a fresh context (its own global object), so no script state survives
 * from one task to the next; reusing the isolate saves its start-up and the
 * prelude's compilation. An isolate that hit a limit is never reused.
 */
export class IsolatePool {
  private readonly idle = new Map<number, PooledIsolate[]>();
  private readonly options: IsolatePoolOptions;

  constructor(options: IsolatePoolOptions) {
    this.options = options;
  }

  async acquire(memoryMb: number): Promise<PooledIsolate> {
    const list = this.idle.get(memoryMb);
    while (list && list.length > 0) {
      const pooled = list.pop()!;
      if (!pooled.isolate.isDisposed) return pooled;
    }
    const isolate = new ivm.Isolate({ memoryLimit: memoryMb });
    const prelude = await isolate.compileScript(PRELUDE_SOURCE, { filename: PRELUDE_FILENAME });
    return { isolate, memoryMb, prelude, tasks: 0 };
  }

  release(pooled: PooledIsolate, reusable: boolean): void {
    pooled.tasks += 1;
    const list = this.idle.get(pooled.memoryMb) ?? [];
    const keep =
      reusable &&
      !pooled.isolate.isDisposed &&
      pooled.tasks < this.options.maxTasksPerIsolate &&
      list.length < this.options.maxIdle &&
      !this.heapGrown(pooled);
    if (!keep) {
      if (!pooled.isolate.isDisposed) pooled.isolate.dispose();
      return;
    }
    list.push(pooled);
    this.idle.set(pooled.memoryMb, list);
  }

  /**
   * With a generous memory limit V8 lets the garbage of released contexts
   * pile up before it collects; a new isolate is cheaper than carrying that
   * heap. Checked every few tasks, as reading the statistics takes the lock.
   */
  private heapGrown(pooled: PooledIsolate): boolean {
    if (pooled.tasks % HEAP_CHECK_EVERY !== 0) return false;
    const limit = Math.min(RETIRE_HEAP_BYTES, (pooled.memoryMb * 1_048_576) / 2);
    return pooled.isolate.getHeapStatisticsSync().used_heap_size > limit;
  }

  dispose(): void {
    for (const list of this.idle.values()) {
      for (const pooled of list) if (!pooled.isolate.isDisposed) pooled.isolate.dispose();
    }
    this.idle.clear();
  }
}
