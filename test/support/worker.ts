// Shared test support: an in-process worker on its own topics and policy
// folder (so that test files running at once never take each other's tasks),
// with its JSON log captured for assertions.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';

import { stringify } from 'yaml';

import { loadConfig, type WorkerConfig } from '../../src/config/config.ts';
import { EngineRest } from '../../src/engine-harness/engine-rest.ts';
import { processModel, type ModelOptions } from '../../src/engine-harness/bpmn.ts';
import { serverPort } from '../../src/telemetry/http-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import type { TypedVariables } from '../../src/variables/camunda.ts';
import { Worker } from '../../src/worker/worker.ts';

export const ENGINE_URL = process.env['CAMUNDA_URL'] ?? 'http://127.0.0.1:8080/engine-rest';
export const engine = new EngineRest(ENGINE_URL);

/** A topic no other test uses. */
export function uniqueTopic(prefix = 'test'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export interface LogEntry {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface TestWorker {
  readonly worker: Worker;
  readonly logs: LogEntry[];
  /** Every log line as written, to check that a value never appears. */
  readonly rawLog: () => string;
  readonly metricsUrl: string;
  readonly policiesDir: string;
  readonly scriptsDir: string;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** Policies as plain objects (written to YAML), scripts as path → text. */
export interface TestWorkerOptions {
  policies: Record<string, unknown>[];
  scripts?: Record<string, string>;
  config?: Partial<Record<keyof WorkerConfig, unknown>>;
}

export function writePolicies(dir: string, policies: Record<string, unknown>[]): void {
  for (const policy of policies)
    writeFileSync(join(dir, `${String(policy['name'])}.yaml`), stringify(policy));
}

export async function startTestWorker(options: TestWorkerOptions): Promise<TestWorker> {
  const base = mkdtempSync(join(tmpdir(), 'sandbox-test-'));
  const policiesDir = join(base, 'policies');
  const scriptsDir = join(base, 'scripts');
  mkdirSync(policiesDir);
  mkdirSync(scriptsDir);
  writePolicies(policiesDir, options.policies);
  for (const [path, text] of Object.entries(options.scripts ?? {})) {
    mkdirSync(dirname(join(scriptsDir, path)), { recursive: true });
    writeFileSync(join(scriptsDir, path), text);
  }

  const logs: LogEntry[] = [];
  let raw = '';
  const sink = new Writable({
    write(chunk, _encoding, done) {
      const text = chunk.toString();
      raw += text;
      for (const line of text.split('\n')) if (line.trim()) logs.push(JSON.parse(line) as LogEntry);
      done();
    },
  });

  const config = loadConfig(
    {
      camundaUrl: ENGINE_URL,
      policiesDir,
      scriptsDir,
      workerId: `test-${randomUUID().slice(0, 8)}`,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      executors: 1,
      pollTimeoutMs: 1000,
      shutdownGraceMs: 5000,
      logLevel: 'debug',
      ...options.config,
    },
    {},
  );
  const worker = new Worker(config, createLogger(config.logLevel, sink));
  await worker.start();
  const metricsUrl = `http://127.0.0.1:${serverPort(worker.telemetryServer!)}`;

  return {
    worker,
    logs,
    rawLog: () => raw,
    metricsUrl,
    policiesDir,
    scriptsDir,
    metrics: async () => (await fetch(`${metricsUrl}/metrics`)).text(),
    stop: () => worker.stop('test finished'),
  };
}

/** A policy that serves `topic` with the default limits, plus overrides. */
export function testPolicy(
  topic: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name: `p-${topic}`.toLowerCase().slice(0, 60),
    topics: [topic],
    retries: { count: 0, backoffMs: 0 },
    ...overrides,
  };
}

/** Deploys a one-step model and starts one instance of it; returns the instance id. */
export async function runModel(
  model: ModelOptions,
  variables: TypedVariables = {},
): Promise<string> {
  await engine.deploy(model.id, [{ name: `${model.id}.bpmn`, xml: processModel(model) }]);
  return engine.start(model.id, variables);
}

/** The value of one sample line in Prometheus text, or undefined. */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}'));
    const parts = inside.split(',');
    if (wanted.every((w) => parts.includes(w)))
      return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}
