import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import type { Logger } from 'pino';

import { SandboxError } from '../errors.ts';
import { ExecutorPool } from '../executor/executor-pool.ts';
import { loadPolicyDir } from '../policy/load.ts';
import type { ExecutionEvent } from '../sandbox/job.ts';
import { variablesFromJson } from '../variables/plain.ts';
import { decide } from '../worker/decide.ts';
import { sha256 } from '../worker/script-source.ts';

export interface RunOptions {
  policy: string;
  policiesDir: string;
  vars?: string;
  resultVariable?: string;
  retries?: number;
}

/** What `run` prints: what the engine would receive, and what the script did. */
export interface RunReport {
  outcome: string;
  engine: unknown;
  blockedCalls: { capability: string; target: string }[];
  console: { level: string; text: string }[];
  durationMs: number;
}

/**
 * Runs one script file through the same executor and sandbox as the worker,
 * with no engine. Returns the report; the CLI entry prints it and picks the
 * exit code.
 */
export async function runScriptFile(
  file: string,
  options: RunOptions,
  logger: Logger,
): Promise<RunReport> {
  const set = loadPolicyDir(options.policiesDir);
  const loaded = set.byName.get(options.policy);
  if (!loaded) {
    const names = [...set.byName.keys()].join(', ');
    throw new SandboxError(
      'POLICY_NOT_FOUND',
      `no policy named '${options.policy}' in ${options.policiesDir} (have: ${names})`,
    );
  }
  const { policy } = loaded;
  const source = readFileSync(file, 'utf8');
  const variables = options.vars === undefined ? {} : variablesFromJson(readVars(options.vars));

  const blockedCalls: RunReport['blockedCalls'] = [];
  const consoleLines: RunReport['console'] = [];
  const onEvent = (event: ExecutionEvent) => {
    if (event.kind === 'blocked')
      blockedCalls.push({ capability: event.capability, target: event.name });
    else consoleLines.push({ level: event.level, text: event.text });
  };

  const executors = new ExecutorPool({
    processes: 1,
    isolates: { maxIdle: 1, maxTasksPerIsolate: 1 },
    logger,
  });
  await executors.start();
  const started = performance.now();
  try {
    const capabilities = Object.fromEntries(
      Object.entries(policy.capabilities).filter(([, s]) => s !== undefined),
    );
    const outcome = await executors.run(
      {
        taskId: 'local',
        topic: policy.topics[0]!,
        policy: policy.name,
        source,
        filename: basename(file),
        variables,
        meta: {
          executionId: 'local',
          processInstanceId: 'local',
          processDefinitionId: 'local',
          processDefinitionKey: 'local',
          activityId: basename(file).replace(/\.[^.]+$/, ''),
          activityInstanceId: 'local',
          businessKey: null,
          tenantId: null,
          topicName: policy.topics[0]!,
        },
        limits: policy.limits,
        wantsResult: Boolean(options.resultVariable),
        capabilities,
      },
      onEvent,
    );
    const decision = decide(outcome, {
      policy,
      retries: options.retries ?? null,
      resultVariable: options.resultVariable,
    });
    return {
      outcome: decision.outcome,
      engine: { scriptHash: sha256(source), ...decision.report },
      blockedCalls,
      console: consoleLines,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    await executors.stop();
  }
}

function readVars(from: string): string {
  try {
    return readFileSync(from === '-' ? 0 : from, 'utf8');
  } catch (err) {
    throw new SandboxError(
      'SCRIPT_VARIABLE_INVALID',
      `cannot read variables from ${from === '-' ? 'standard input' : from}: ${(err as Error).message}`,
    );
  }
}
