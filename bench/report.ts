// Plain-text tables for the benchmark's results: the machine, one table per
// part, and the targets of issue 5 with the measured value and whether each
// is met. Everything printed is a median over rounds (see each part).
import { cpus, loadavg, release, totalmem } from 'node:os';
import { availableParallelism } from 'node:os';

import type { AloneSummary } from './sandbox-alone.ts';
import type { E2eSummary } from './end-to-end.ts';
import type { MemorySnapshot, MemorySummary } from './memory.ts';

export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(cells[0]!),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.slice(1).map(line),
  ].join('\n');
}

/** 3 significant digits, no exponent. */
export function num(value: number | undefined, digits = 3): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return value.toFixed(decimals);
}

export function machineReport(): string {
  const cpu = cpus()[0];
  const [one, five] = loadavg();
  return [
    `machine: ${cpu?.model ?? 'unknown cpu'}, ${availableParallelism()} cores usable (${cpus().length} online), ` +
      `${num(totalmem() / 2 ** 30)} GiB memory, Linux ${release()}`,
    `node ${process.versions.node} (V8 ${process.versions.v8}); load average at start ${num(one, 2)} (1 min), ${num(five, 2)} (5 min)`,
    `date: ${new Date().toISOString()}`,
  ].join('\n');
}

const ALONE_LABEL = {
  executor: (s: AloneSummary['setup']) =>
    `executor (${s.executors} process${s.executors === 1 ? '' : 'es'}, ${s.lanes} in flight, IPC)`,
  vm: (s: AloneSummary['setup']) => `node:vm (${s.threads} threads)`,
  quickjs: (s: AloneSummary['setup']) => `QuickJS wasm (${s.threads} threads)`,
};

export function aloneReport(alone: AloneSummary, rounds: number, windowMs: number): string {
  const rows: (string | number)[][] = [];
  for (const [script, byContender] of Object.entries(alone.cells)) {
    for (const [contender, modes] of Object.entries(byContender)) {
      const label = ALONE_LABEL[contender as keyof typeof ALONE_LABEL](alone.setup);
      rows.push([
        script,
        label,
        num(modes.parallel.perSecond),
        `${num(Math.min(...modes.parallel.rounds))}-${num(Math.max(...modes.parallel.rounds))}`,
        num(modes.single.perSecond),
        num(modes.single.p50Ms),
      ]);
    }
  }
  const ratioRows = Object.entries(alone.ratios).map(([script, r]) => [
    script,
    `${num(r.vsQuickjs)}x`,
    `${num(r.vsQuickjsSingle)}x`,
    num(r.vsVm),
    num(r.vsVmSingle),
  ]);
  return [
    `1. Sandbox alone: executions/s, policy '${alone.setup.policy}', median of ${rounds} rounds of ${windowMs} ms per contender`,
    '   (light: 40-line Json list, filter/sum/map to a summary; heavy: 10,000 generated rows, sort, group-by)',
    table(
      ['script', 'contender', 'all cores /s', 'range /s', 'one stream /s', 'one stream p50 ms'],
      rows,
    ),
    '',
    table(
      ['script', 'executor/QuickJS', 'one stream', 'executor/node:vm', 'one stream'],
      ratioRows,
    ),
  ].join('\n');
}

export function e2eReport(e2e: E2eSummary): string {
  const s = e2e.setup;
  const cpu = (c: E2eSummary['cells'][keyof E2eSummary['cells']], role: string) =>
    c?.cpuMsPerInstance[role] === undefined ? '-' : num(c.cpuMsPerInstance[role]);
  const rows = Object.entries(e2e.cells).map(([contender, c]) => [
    contender,
    num(c.perSecond),
    `${num(Math.min(...c.rounds))}-${num(Math.max(...c.rounds))}`,
    num(c.p50Ms),
    num(c.p99Ms),
    num(c.loadedP50Ms),
    cpu(c, 'engine'),
    cpu(c, 'worker'),
    cpu(c, 'executors'),
    cpu(c, 'driver'),
  ]);
  const r = e2e.ratios;
  return [
    `2. End to end: one process (start, light script, end), Camunda ${s.engineVersion}, median of ${s.rounds} rounds`,
    `   throughput: ${s.instances} instances per contender per round, ${s.concurrency} start requests in flight, at most ${s.inflight} instances unfinished;`,
    `   latency: ${s.latencySamples} instances per round arriving at random, ${s.latencyRate}/s on average; start to end from the engine's history;`,
    `   p50/p99 over all rounds' samples; "under load": median start to end in the throughput phase (queueing included)`,
    `   sandbox worker: ${s.worker}`,
    `   bare: ${s.bare}; bare-same-client: ${s.bareSameClient}`,
    `   CPU ms per instance in the throughput phase (/proc/<pid>/stat): engine JVM (when this run can see it), the contender's`,
    `   worker process, its executors, and this benchmark's own process (the load generator shares the cores too)`,
    table(
      [
        'contender',
        'instances/s',
        'range',
        'p50 ms',
        'p99 ms',
        'p50 under load ms',
        'cpu engine',
        'worker',
        'executors',
        'driver',
      ],
      rows,
    ),
    '',
    `   sandbox/bare ${num(r.sandboxVsBare)}, sandbox/bare-same-client ${num(r.sandboxVsBareSameClient)}, ` +
      `bare-same-client/bare ${num(r.bareSameClientVsBare)}, sandbox/inline ${num(r.sandboxVsInline)}, ` +
      `sandbox p50 - inline p50 ${num(r.addedP50Ms)} ms`,
  ].join('\n');
}

function memoryRow(label: string, m: MemorySnapshot): string[] {
  return [
    label,
    num(m.workerRssMb),
    m.executorRssMb.map((v) => num(v)).join(' + '),
    num(m.totalRssMb),
    num(m.totalPssMb),
  ];
}

export function memoryReport(memory: MemorySummary, from: 'dist' | 'src'): string {
  const how =
    from === 'dist'
      ? 'compiled to JavaScript, as shipped'
      : "run from the .ts sources (adds Node's type stripper to every process)";
  return [
    `3. Worker memory (MB): worker process + its executor processes, default policy and configuration, ${how}`,
    `   RSS: VmRSS from /proc/<pid>/status, summed (counts shared pages once per process); PSS: smaps_rollup, shared pages split`,
    `   full parallelism: ${memory.heavyInstances} heavy-script instances, ${2 * memory.maxParallel} in flight; ` +
      `largest in-flight gauge seen ${memory.maxInFlight ?? 'n/a'} of MAX_PARALLEL ${memory.maxParallel}`,
    table(
      ['', 'worker RSS', 'executors RSS', 'total RSS', 'total PSS'],
      [
        memoryRow('idle, after start', memory.idle),
        memoryRow('full parallelism, peak', memory.peak),
        memoryRow('idle, after load', memory.idleAfter),
      ],
    ),
  ].join('\n');
}

interface Target {
  what: string;
  value: number | undefined;
  shown: string;
  goal: string;
  met: (v: number) => boolean;
}

export function targetsReport(
  alone: AloneSummary | undefined,
  e2e: E2eSummary | undefined,
  memory: MemorySummary | undefined,
): string {
  const targets: Target[] = [];
  if (alone) {
    const light = alone.ratios['light'];
    const heavy = alone.ratios['heavy'];
    targets.push(
      {
        what: 'executor vs QuickJS, light script (all cores)',
        value: light?.vsQuickjs,
        shown: `${num(light?.vsQuickjs)}x`,
        goal: '>= 1x',
        met: (v) => v >= 1,
      },
      {
        what: 'executor vs QuickJS, heavy script (all cores)',
        value: heavy?.vsQuickjs,
        shown: `${num(heavy?.vsQuickjs)}x`,
        goal: '>= 5x',
        met: (v) => v >= 5,
      },
      {
        what: 'executor vs node:vm, light script (all cores)',
        value: light?.vsVm,
        shown: num(light?.vsVm),
        goal: '>= 0.5',
        met: (v) => v >= 0.5,
      },
      {
        what: 'executor vs node:vm, heavy script (all cores)',
        value: heavy?.vsVm,
        shown: num(heavy?.vsVm),
        goal: '>= 0.5',
        met: (v) => v >= 0.5,
      },
    );
  }
  if (e2e) {
    const r = e2e.ratios;
    targets.push(
      {
        what: 'sandbox worker vs bare worker, instances/s',
        value: r.sandboxVsBare,
        shown: num(r.sandboxVsBare),
        goal: '>= 0.9',
        met: (v) => v >= 0.9,
      },
      {
        what: 'sandbox worker vs inline GraalJS, instances/s',
        value: r.sandboxVsInline,
        shown: num(r.sandboxVsInline),
        goal: '>= 0.5',
        met: (v) => v >= 0.5,
      },
      {
        what: 'p50 latency added by the external path',
        value: r.addedP50Ms,
        shown: `${num(r.addedP50Ms)} ms`,
        goal: '<= 20 ms',
        met: (v) => v <= 20,
      },
    );
  }
  if (memory) {
    // Both sums: the RSS sum is what the issue names (and what `ps` shows),
    // but it counts the node binary's ~50 MB of shared text once per process;
    // the PSS sum is what the process group really holds.
    targets.push(
      {
        what: 'worker memory at full parallelism (VmRSS sum)',
        value: memory.peak.totalRssMb,
        shown: `${num(memory.peak.totalRssMb)} MB`,
        goal: '< 200 MB',
        met: (v) => v < 200,
      },
      {
        what: 'worker memory at full parallelism (PSS sum)',
        value: memory.peak.totalPssMb,
        shown: `${num(memory.peak.totalPssMb)} MB`,
        goal: '< 200 MB',
        met: (v) => v < 200,
      },
    );
  }
  const rows = targets.map((t) => [
    t.what,
    t.shown,
    t.goal,
    t.value === undefined || !Number.isFinite(t.value) ? 'n/a' : t.met(t.value) ? 'met' : 'NOT MET',
  ]);
  return ['Targets (issue 5)', table(['target', 'measured', 'goal', ''], rows)].join('\n');
}
