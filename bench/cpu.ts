// CPU time of processes, from /proc/<pid>/stat (utime + stime): how much of
// the machine's cores each party of an end-to-end run used per instance. On
// a 2-core machine the engine, the worker and its executors share the same
// cores, so a worker that costs CPU slows the engine down too.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND =
  Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system) of one process so far, ms; 0 if it is gone. */
export function cpuTimeMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces: utime is field 14.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Roles (engine, worker, executors, ...) and how to find their pids now. */
export type CpuRoles = Record<string, () => number[]>;

/** CPU ms used per role between start() and the returned stop(). */
export function startCpuMeter(roles: CpuRoles): () => Record<string, number> {
  const before = new Map<number, number>();
  for (const pids of Object.values(roles))
    for (const pid of pids()) before.set(pid, cpuTimeMs(pid));
  return () => {
    const used: Record<string, number> = {};
    for (const [role, pids] of Object.entries(roles)) {
      // A process started in between (a replaced executor) counts from 0.
      used[role] = pids().reduce((sum, pid) => sum + cpuTimeMs(pid) - (before.get(pid) ?? 0), 0);
    }
    return used;
  };
}
