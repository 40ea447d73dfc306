import type ivm from 'isolated-vm';

export type Breach = { limit: 'wall'; limitMs: number } | { limit: 'cpu'; limitMs: number };

/** How often the CPU clock is read while a script runs. */
const CPU_POLL_MS = 10;

/**
 * Owns the deadlines of one execution: a wall-clock timer and a CPU-time
 * watchdog on the isolate's own clock. On a breach it records which limit
 * was hit and disposes the isolate, which ends every pending call into it
 * (synchronous loops, awaited promises that never settle, microtask floods)
 * at once. Every execution path goes through here.
 */
export class ExecutionGuard implements Disposable {
  breach: Breach | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly isolate: ivm.Isolate;
  private readonly cpuMs: number;
  private readonly cpuStart: bigint;

  constructor(isolate: ivm.Isolate, wallMs: number, cpuMs: number) {
    this.isolate = isolate;
    this.cpuMs = cpuMs;
    this.cpuStart = isolate.cpuTime;
    this.timers.push(setTimeout(() => this.trip({ limit: 'wall', limitMs: wallMs }), wallMs));
    this.timers.push(setInterval(() => this.checkCpu(), CPU_POLL_MS));
  }

  /** CPU time this execution has used so far, in ms. */
  cpuUsedMs(): number {
    if (this.isolate.isDisposed) return 0;
    return Number(this.isolate.cpuTime - this.cpuStart) / 1e6;
  }

  private checkCpu(): void {
    if (this.cpuUsedMs() > this.cpuMs) this.trip({ limit: 'cpu', limitMs: this.cpuMs });
  }

  private trip(breach: Breach): void {
    if (this.breach) return;
    this.breach = breach;
    this.clear();
    if (!this.isolate.isDisposed) this.isolate.dispose();
  }

  private clear(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.length = 0;
  }

  [Symbol.dispose](): void {
    this.clear();
  }
}
