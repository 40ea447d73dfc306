// Part 3: the sandbox worker's resident memory, default policy and
// configuration: the worker process plus its executor processes (its
// children), idle and at full parallelism.
//
// - VmRSS from /proc/<pid>/status, summed over the processes: what `ps` and
//   most dashboards show. It counts pages shared between the processes (the
//   node binary, libraries) once per process, so the sum over-states;
// - Pss from /proc/<pid>/smaps_rollup: shared pages split between their
//   users, so the sum is the memory the group really holds (a cgroup limit
//   sees about this, plus page cache).
//
// "Full parallelism": the heavy script (10,000 rows, sort) run through the
// worker with twice MAX_PARALLEL instances in flight, so every task slot is
// busy and every executor holds its isolates; sampled every poll (~20 ms),
// the peak kept. The worker's in-flight gauge is read alongside to show that
// the slots were indeed full.
import { readFileSync } from 'node:fs';

import { processModel } from '../src/engine-harness/bpmn.ts';
import type { EngineRest } from '../src/engine-harness/engine-rest.ts';
import type { BenchConfig } from './config.ts';
import { driveInstances } from './end-to-end.ts';
import type { SandboxWorkerProcess } from './sandbox-worker.ts';
import { HEAVY_SCRIPT, HEAVY_VARIABLES } from './scripts.ts';
import { sleep } from './stats.ts';

export interface MemorySnapshot {
  workerRssMb: number;
  executorRssMb: number[];
  totalRssMb: number;
  /** Undefined when smaps_rollup is not readable. */
  totalPssMb: number | undefined;
}

export interface MemorySummary {
  idle: MemorySnapshot;
  peak: MemorySnapshot;
  idleAfter: MemorySnapshot;
  maxInFlight: number | undefined;
  maxParallel: number;
  heavyInstances: number;
}

function statusKb(pid: number, field: string, file = 'status'): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/${file}`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function snapshot(worker: SandboxWorkerProcess, withPss = true): MemorySnapshot {
  const executors = worker.executorPids();
  const rss = (pid: number) => (statusKb(pid, 'VmRSS') ?? 0) / 1024;
  const workerRssMb = rss(worker.pid);
  const executorRssMb = executors.map(rss);
  let totalPssMb: number | undefined;
  if (withPss) {
    const pss = [worker.pid, ...executors].map((pid) => statusKb(pid, 'Pss', 'smaps_rollup'));
    totalPssMb = pss.every((v) => v !== undefined)
      ? pss.reduce((a, b) => a! + b!, 0)! / 1024
      : undefined;
  }
  return {
    workerRssMb,
    executorRssMb,
    totalRssMb: workerRssMb + executorRssMb.reduce((a, b) => a + b, 0),
    totalPssMb,
  };
}

function inFlight(metrics: string, topic: string): number | undefined {
  const line = metrics
    .split('\n')
    .find(
      (l) => l.startsWith('camunda_sandbox_tasks_in_flight{') && l.includes(`topic="${topic}"`),
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}

export async function runMemoryUnderLoad(
  config: BenchConfig,
  rest: EngineRest,
  worker: SandboxWorkerProcess,
  topic: string,
  maxParallel: number,
  suffix: string,
  idle: MemorySnapshot,
  progress: (line: string) => void,
): Promise<MemorySummary> {
  const key = `bench_heavy_${suffix}`;
  await rest.deploy(key, [
    {
      name: `${key}.bpmn`,
      xml: processModel({
        id: key,
        step: { kind: 'sandbox', topic, script: HEAVY_SCRIPT, resultVariable: 'result' },
      }),
    },
  ]);
  progress(
    `memory: ${config.memory.instances} heavy-script instances, ${2 * maxParallel} in flight`,
  );

  let peak = snapshot(worker);
  let maxInFlight: number | undefined;
  let ticks = 0;
  let reading = false;
  const onTick = () => {
    ticks += 1;
    // VmRSS every tick (cheap); Pss (a page-table walk) and the gauge every 5th.
    const withPss = ticks % 5 === 0;
    const now = snapshot(worker, withPss);
    if (now.totalRssMb > peak.totalRssMb)
      peak = withPss ? now : { ...now, totalPssMb: snapshot(worker).totalPssMb };
    if (withPss && !reading) {
      reading = true;
      void worker
        .metrics()
        .then((text) => {
          const value = inFlight(text, topic);
          if (value !== undefined) maxInFlight = Math.max(maxInFlight ?? 0, value);
        })
        .catch(() => undefined)
        .finally(() => (reading = false));
    }
  };
  await driveInstances(rest, key, 'memory', HEAVY_VARIABLES, {
    instances: config.memory.instances,
    concurrency: Math.min(8, 2 * maxParallel),
    inflight: 2 * maxParallel,
    timeoutMs: Math.max(120_000, config.memory.instances * 1000),
    onTick,
  });

  // Idle again: what the worker keeps (pooled isolates, heaps not yet shrunk).
  await sleep(3000);
  return {
    idle,
    peak,
    idleAfter: snapshot(worker),
    maxInFlight,
    maxParallel,
    heavyInstances: config.memory.instances,
  };
}
