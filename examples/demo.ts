// `npm run demo`: the local engine, the worker and the example processes,
// end to end. Starts the engine if none answers, deploys examples/processes,
// starts instances, runs a worker process until every instance has settled,
// then prints each instance's outcome, final variables (from the engine's
// history), incidents and blocked calls, and the metrics that matter.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { EngineRest } from '../src/engine-harness/engine-rest.ts';
import type { TypedVariables } from '../src/variables/camunda.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const engineScript = join(root, 'scripts', 'engine.mjs');
const engineUrl =
  process.env['CAMUNDA_URL'] ??
  `http://127.0.0.1:${process.env['ENGINE_PORT'] ?? '8080'}/engine-rest`;
const metricsPort = Number(process.env['DEMO_METRICS_PORT'] ?? 9464);

const json = (value: unknown): { type: string; value: string } => ({
  type: 'Json',
  value: JSON.stringify(value),
});

/** Which instances to start: process key, label, variables. */
const INSTANCES: { key: string; label: string; variables: TypedVariables }[] = [
  {
    key: 'invoice',
    label: 'invoice (3 lines)',
    variables: {
      lineItems: json([
        { sku: 'A-100', unitCents: 1999, quantity: 3 },
        { sku: 'B-200', unitCents: 45000, quantity: 1 },
        { sku: 'C-300', unitCents: 250, quantity: 12 },
      ]),
      invoiceDate: { type: 'Date', value: '2026-11-30T09:00:00.000+0000' },
      taxRatePercent: { type: 'Integer', value: 19 },
    },
  },
  {
    key: 'invoice',
    label: 'invoice (Long beyond 2^53)',
    variables: {
      lineItems: {
        type: 'Json',
        value: '[{"sku":"BULK","unitCents":9007199254740993,"quantity":1}]',
      },
      invoiceDate: { type: 'Date', value: '2026-12-01T00:00:00.000+0000' },
      taxRatePercent: { type: 'Integer', value: 0 },
    },
  },
  {
    key: 'order_approval',
    label: 'order under the limit',
    variables: {
      order: json({ id: 'o-1', items: [{ priceCents: 1200, quantity: 2 }] }),
      approvalLimitCents: { type: 'Long', value: 100000 },
    },
  },
  {
    key: 'order_approval',
    label: 'order over the limit',
    variables: {
      order: json({ id: 'o-2', items: [{ priceCents: 99000, quantity: 3 }] }),
      approvalLimitCents: { type: 'Long', value: 100000 },
    },
  },
  { key: 'escape_attempt', label: 'escape attempt', variables: {} },
  { key: 'infinite_loop', label: 'infinite loop', variables: {} },
  {
    key: 'discount_inline',
    label: 'discount, inline in the JVM',
    variables: { amount: { type: 'Long', value: 1250 } },
  },
  {
    key: 'discount_sandbox',
    label: 'discount, in the sandbox',
    variables: { amount: { type: 'Long', value: 1250 } },
  },
];

/** Variables the engine or the models set that say nothing about the result. */
const INPUT_NAMES = new Set([
  'lineItems',
  'order',
  'approvalLimitCents',
  'amount',
  'taxRatePercent',
  'invoiceDate',
]);

function step(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

function ensureEngine(): boolean {
  const status = spawnSync(process.execPath, [engineScript, 'status'], { encoding: 'utf8' });
  if (status.status === 0) return false;
  step('starting the local Camunda 7 engine (the first build downloads its dependencies)');
  const started = spawnSync(process.execPath, [engineScript, 'start'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (started.status !== 0) throw new Error('the local engine did not start');
  return true;
}

function startWorker(logFile: string) {
  const log = openSync(logFile, 'w');
  return spawn(process.execPath, [join(root, 'src', 'cli', 'main.ts'), 'worker'], {
    cwd: root,
    stdio: ['ignore', log, log],
    env: {
      ...process.env,
      CAMUNDA_URL: engineUrl,
      SANDBOX_POLICIES: join(root, 'sandbox-policies'),
      SANDBOX_SCRIPTS: join(root, 'examples', 'scripts'),
      METRICS_PORT: String(metricsPort),
      METRICS_HOST: '127.0.0.1',
      WORKER_ID: 'demo-worker',
      LOG_LEVEL: 'info',
    },
  });
}

function show(typed: { type: string; value: unknown }): string {
  const value =
    typeof typed.value === 'bigint' ? typed.value.toString() : JSON.stringify(typed.value);
  const text = typed.type === 'Json' && typeof typed.value === 'string' ? typed.value : value;
  return `${text} (${typed.type})`;
}

function blockedCallsByInstance(logFile: string): Map<string, string[]> {
  const byInstance = new Map<string, string[]>();
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as {
      msg?: string;
      processInstanceId?: string;
      capability?: string;
    };
    if (entry.msg !== 'blocked call' || !entry.processInstanceId) continue;
    byInstance.set(entry.processInstanceId, [
      ...(byInstance.get(entry.processInstanceId) ?? []),
      entry.capability ?? '?',
    ]);
  }
  return byInstance;
}

type WorkerProcess = ReturnType<typeof startWorker>;

/** Deploys, starts, waits and prints; the worker process it starts goes into `started`. */
async function demonstrate(started: { worker?: WorkerProcess }): Promise<void> {
  const engine = new EngineRest(engineUrl);
  step(`engine ${await engine.version()} at ${engineUrl}`);

  const dir = join(root, 'examples', 'processes');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.bpmn'))
    .map((f) => join(dir, f));
  await engine.deploy('camunda-sandbox demo', files);
  step(`deployed ${files.length} processes from examples/processes`);

  mkdirSync(join(root, '.engine'), { recursive: true });
  const logFile = join(root, '.engine', 'demo-worker.log');
  const worker = startWorker(logFile);
  started.worker = worker;
  step(
    `worker started (pid ${worker.pid}, JSON log in .engine/demo-worker.log, metrics on :${metricsPort})`,
  );

  const instances = [];
  for (const instance of INSTANCES)
    instances.push({ ...instance, id: await engine.start(instance.key, instance.variables) });
  step(`started ${instances.length} instances; waiting until each has ended or has an incident`);

  const results = [];
  for (const instance of instances)
    results.push({ ...instance, state: await engine.settle(instance.id, 90_000) });

  const blocked = blockedCallsByInstance(logFile);
  step('results (variables as read back from the engine history)');
  for (const r of results) {
    const variables = await engine.historicVariables(r.id);
    const incidents = await engine.incidents(r.id);
    const activities = await engine.activityIds(r.id);
    const path = activities.includes('error_end')
      ? 'ended at the BPMN error path'
      : r.state === 'completed'
        ? 'completed'
        : r.state;
    process.stdout.write(`\n${r.label.padEnd(32)} ${r.key} ${r.id}\n  outcome: ${path}\n`);
    for (const [name, typed] of Object.entries(variables)) {
      if (!INPUT_NAMES.has(name)) process.stdout.write(`  ${name} = ${show(typed)}\n`);
    }
    for (const incident of incidents)
      process.stdout.write(`  incident: ${incident.incidentMessage}\n`);
    const calls = blocked.get(r.id) ?? [];
    if (calls.length > 0)
      process.stdout.write(`  blocked calls: ${calls.length} (${calls.join(', ')})\n`);
  }

  step(
    `worker still running: ${worker.exitCode === null ? 'yes' : `no (exit ${worker.exitCode})`}; the metrics that matter`,
  );
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  for (const line of metrics.split('\n')) {
    if (
      /^camunda_sandbox_(tasks_total|blocked_calls_total|executor_restarts_total|engine_requests_total)\{/.test(
        line,
      ) &&
      !line.endsWith(' 0')
    ) {
      process.stdout.write(`  ${line}\n`);
    }
  }
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const startedEngine = ensureEngine();
  const started: { worker?: WorkerProcess } = {};
  try {
    await demonstrate(started);
  } finally {
    // Whatever happened, leave nothing running that the demo started.
    const { worker } = started;
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((resolve) => worker.once('exit', resolve));
    }
    if (startedEngine && process.env['DEMO_KEEP_ENGINE'] !== '1') {
      spawnSync(process.execPath, [engineScript, 'stop'], { stdio: 'inherit' });
    }
  }
  step(`done in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);
}

await main();
