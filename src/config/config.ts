import { hostname } from 'node:os';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';

import { z } from 'zod';

import { SandboxError } from '../errors.ts';

/**
 * The worker's settings: environment variables, overridden by CLI flags,
 * defaulted, validated and frozen. This module is the only reader of
 * `process.env` for settings (secrets have their own reader).
 *
 * Limits that constrain each other: each topic's lock duration is derived from
 * its policy's wall limit (see worker/lock.ts), so it always exceeds the time a
 * script may run; `SHUTDOWN_GRACE_MS` plus `POLL_TIMEOUT_MS` must stay below
 * the orchestrator's own grace period (Kubernetes' terminationGracePeriodSeconds)
 * so that unlocking happens before a SIGKILL: a stop also waits for the long
 * poll pending at the engine, to unlock the tasks it may still bring.
 */
// Number('  ') is 0: a blank value must not pass as port 0 or any other number.
const integer = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? Number.NaN : v),
    z.coerce.number().int().min(min).max(max),
  );

export const configSchema = z.strictObject({
  camundaUrl: z.url({ protocol: /^https?$/ }).default('http://localhost:8080/engine-rest'),
  camundaUser: z.string().min(1).optional(),
  camundaPassword: z.string().optional(),
  camundaToken: z.string().min(1).optional(),
  policiesDir: z.string().min(1).default('./sandbox-policies'),
  scriptsDir: z.string().min(1).default('./scripts'),
  workerId: z.string().min(1).max(255).default(`camunda-sandbox-${hostname()}-${process.pid}`),
  /** Tasks in flight at once, across all topics. */
  maxParallel: integer(1, 1000).default(Math.max(4, availableParallelism() * 4)),
  /**
   * Executor processes hosting the isolates. One fills every core (each
   * isolate runs on isolated-vm's own threads); more only shrink what one
   * crash takes down, at about 80 MB each.
   */
  executors: integer(1, 64).default(1),
  metricsPort: integer(0, 65535).default(9464),
  metricsHost: z.string().min(1).default('0.0.0.0'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Long-polling wait of one fetch-and-lock request, in ms (the engine caps it at 1,800,000). */
  pollTimeoutMs: integer(0, 1_800_000).default(10_000),
  /**
   * Pause after each poll, in ms. Long polling already waits for work, and
   * a full worker holds its next poll until a task ends, so 0 costs nothing.
   */
  pollIntervalMs: integer(0, 600_000).default(0),
  /** Time a stop waits for tasks in flight before unlocking them, in ms. */
  shutdownGraceMs: integer(0, 3_600_000).default(25_000),
  /**
   * Added to a policy's wall limit to give a topic's lock duration, in ms:
   * time to fetch, queue and report.
   */
  lockMarginMs: integer(1000, 3_600_000).default(30_000),
  /** How long without a successful engine request before /readyz turns false, in ms. */
  readyWindowMs: integer(1000, 3_600_000).default(60_000),
});

export type WorkerConfig = Readonly<z.infer<typeof configSchema>>;

/** Which environment variable feeds which setting. */
export const ENV_NAMES: Record<keyof WorkerConfig, string> = {
  camundaUrl: 'CAMUNDA_URL',
  camundaUser: 'CAMUNDA_USER',
  camundaPassword: 'CAMUNDA_PASSWORD',
  camundaToken: 'CAMUNDA_TOKEN',
  policiesDir: 'SANDBOX_POLICIES',
  scriptsDir: 'SANDBOX_SCRIPTS',
  workerId: 'WORKER_ID',
  maxParallel: 'MAX_PARALLEL',
  executors: 'SANDBOX_EXECUTORS',
  metricsPort: 'METRICS_PORT',
  metricsHost: 'METRICS_HOST',
  logLevel: 'LOG_LEVEL',
  pollTimeoutMs: 'POLL_TIMEOUT_MS',
  pollIntervalMs: 'POLL_INTERVAL_MS',
  shutdownGraceMs: 'SHUTDOWN_GRACE_MS',
  lockMarginMs: 'LOCK_MARGIN_MS',
  readyWindowMs: 'READY_WINDOW_MS',
};

/**
 * Builds the configuration from the environment and flags (flags win).
 * Empty environment values count as unset. Throws CONFIG_INVALID naming the
 * variable or flag and what is wrong with it.
 */
export function loadConfig(
  flags: Partial<Record<keyof WorkerConfig, unknown>> = {},
  env: NodeJS.ProcessEnv = process.env,
): WorkerConfig {
  const raw: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  for (const [key, envName] of Object.entries(ENV_NAMES)) {
    const value = env[envName];
    if (value !== undefined && value !== '') {
      raw[key] = value;
      origin[key] = `environment variable ${envName}`;
    }
  }
  for (const [key, value] of Object.entries(flags)) {
    if (value !== undefined) {
      raw[key] = value;
      origin[key] = `flag --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    }
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const source = origin[key] ?? ENV_NAMES[key as keyof WorkerConfig] ?? key;
      // The bad value helps, except where it is a credential.
      const shown =
        key in raw && !/password|token/i.test(key) ? ` (got '${String(raw[key])}')` : '';
      return `${source}: ${issue.message}${shown}`;
    });
    throw new SandboxError('CONFIG_INVALID', `invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const config = parsed.data;
  if (config.camundaUser && config.camundaToken) {
    throw new SandboxError(
      'CONFIG_INVALID',
      'invalid configuration: set CAMUNDA_USER/CAMUNDA_PASSWORD or CAMUNDA_TOKEN, not both',
    );
  }
  if (config.camundaPassword !== undefined && !config.camundaUser) {
    throw new SandboxError(
      'CONFIG_INVALID',
      'invalid configuration: CAMUNDA_PASSWORD is set but CAMUNDA_USER is not',
    );
  }
  return Object.freeze({
    ...config,
    policiesDir: resolve(invocationDir(), config.policiesDir),
    scriptsDir: resolve(invocationDir(), config.scriptsDir),
  });
}

/** The folder the user ran the command from (npm scripts run in the package root). */
export function invocationDir(): string {
  return process.env['INIT_CWD'] ?? process.cwd();
}
