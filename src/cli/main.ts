#!/usr/bin/env node
// The CLI entry: the one place that prints to the terminal and picks exit codes.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

import { Command, InvalidArgumentError } from 'commander';

import { invocationDir, loadConfig, type WorkerConfig } from '../config/config.ts';
import { isSandboxError } from '../errors.ts';
import { loadPolicyDir, PolicyError } from '../policy/load.ts';
import { createLogger } from '../telemetry/logger.ts';
import { serverPort } from '../telemetry/http-server.ts';
import { Worker } from '../worker/worker.ts';
import { runScriptFile } from './run-command.ts';

const EXIT_FAILED = 1;
const EXIT_BPMN_ERROR = 2;
const EXIT_USAGE = 64;

function integerFlag(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) throw new InvalidArgumentError(`'${value}' is not a whole number`);
  return parsed;
}

const program = new Command()
  .name('camunda-sandbox')
  .description(
    'Runs Camunda 7 BPMN scripts outside the engine, in isolated-vm isolates ' +
      'under a capability policy.',
  )
  .showHelpAfterError();

program
  .command('worker')
  .description('fetch external tasks on every policy topic and run their scripts')
  .option('--camunda-url <url>', 'engine REST API (CAMUNDA_URL)')
  .option('--policies <dir>', 'policy folder (SANDBOX_POLICIES)')
  .option('--scripts <dir>', 'script folder for scriptRef (SANDBOX_SCRIPTS)')
  .option('--worker-id <id>', 'worker id sent to the engine (WORKER_ID)')
  .option('--max-parallel <n>', 'tasks in flight at once (MAX_PARALLEL)', integerFlag)
  .option('--executors <n>', 'executor processes (SANDBOX_EXECUTORS)', integerFlag)
  .option(
    '--metrics-port <port>',
    'port of /metrics, /healthz, /readyz (METRICS_PORT)',
    integerFlag,
  )
  .option('--log-level <level>', 'pino level (LOG_LEVEL)')
  .action(async (flags) => {
    const config = loadConfig({
      camundaUrl: flags.camundaUrl,
      policiesDir: flags.policies,
      scriptsDir: flags.scripts,
      workerId: flags.workerId,
      maxParallel: flags.maxParallel,
      executors: flags.executors,
      metricsPort: flags.metricsPort,
      logLevel: flags.logLevel,
    });
    await runWorker(config);
  });

program
  .command('run')
  .description('run one script locally through the sandbox and print what the engine would receive')
  .argument('<file>', 'the script')
  .option('--policy <name>', 'policy to run under', 'default')
  .option('--policies <dir>', 'policy folder (SANDBOX_POLICIES)')
  .option('--vars <file>', "variables as a JSON object; '-' reads standard input")
  .option('--result-variable <name>', 'the resultVariable property of the task')
  .action(async (file: string, flags) => {
    const config = loadConfig({ policiesDir: flags.policies, logLevel: 'warn' });
    // Paths are the user's, from where they ran the command (npm runs scripts in the package root).
    const script = resolve(invocationDir(), file);
    const vars =
      flags.vars === undefined || flags.vars === '-'
        ? flags.vars
        : resolve(invocationDir(), flags.vars);
    if (!existsSync(script)) {
      process.stderr.write(`camunda-sandbox: no script file at ${script}\n`);
      process.exitCode = EXIT_USAGE;
      return;
    }
    const logger = createLogger('warn');
    const report = await runScriptFile(
      script,
      {
        policy: flags.policy,
        policiesDir: config.policiesDir,
        vars,
        resultVariable: flags.resultVariable,
      },
      logger,
    );
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (report.outcome === 'bpmn_error') process.exitCode = EXIT_BPMN_ERROR;
    else if (report.outcome !== 'completed') process.exitCode = EXIT_FAILED;
  });

program
  .command('policies')
  .description('policy tools')
  .command('check')
  .description('validate a policy folder')
  .argument('[dir]', 'policy folder (default SANDBOX_POLICIES or ./sandbox-policies)')
  .action((dir: string | undefined) => {
    const folder = dir ?? loadConfig({}).policiesDir;
    const set = loadPolicyDir(folder);
    for (const { policy, file } of set.policies) {
      process.stdout.write(`ok  ${policy.name}  topics: ${policy.topics.join(', ')}  (${file})\n`);
    }
  });

async function runWorker(config: WorkerConfig): Promise<void> {
  const logger = createLogger(config.logLevel);
  const worker = new Worker(config, logger);

  // Signals are handled from the first moment: as PID 1 in a container, a
  // stop that arrives while the worker starts must not be ignored.
  const starting = worker.start();
  const onSignal = (signal: NodeJS.Signals) => {
    starting
      .catch(() => undefined)
      .then(() => worker.stop(`received ${signal}`))
      .then(
        () => logger.flush(() => process.exit(0)),
        (err: Error) => {
          logger.error({ err: err.message }, 'stop failed');
          logger.flush(() => process.exit(EXIT_FAILED));
        },
      );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  await starting;
  const port = worker.telemetryServer ? serverPort(worker.telemetryServer) : config.metricsPort;
  logger.info({ camundaUrl: config.camundaUrl, metricsPort: port }, 'worker started');
}

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof PolicyError) {
    process.stderr.write(`camunda-sandbox: invalid policies:\n${err.message}\n`);
    process.exitCode = EXIT_USAGE;
  } else if (isSandboxError(err)) {
    process.stderr.write(`camunda-sandbox: ${err.code}: ${err.message}\n`);
    process.exitCode = err.code === 'CONFIG_INVALID' ? EXIT_USAGE : EXIT_FAILED;
  } else {
    throw err;
  }
}
