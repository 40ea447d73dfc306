// A bare camunda-external-task-client-js worker: it completes every task at
// once, with the same variables the sandbox worker would set, and runs
// nothing. Run as its own process (like the sandbox worker) by the
// end-to-end part, with its settings as one JSON argument:
//
// - `bare`: as fast as the client lets the engine go (no pause between polls,
//   the next fetch overlapping the completes): the engine's own limit for
//   external tasks;
// - `bare-same-client`: the sandbox worker's own client settings (batch size,
//   poll pause, parallel cap), so that the gap to the sandbox worker is what
//   the sandbox adds, and the gap to `bare` what those settings cost.
import { Client, Variables } from 'camunda-external-task-client-js';

import type { TypedVariables } from '../src/variables/camunda.ts';

export interface BareWorkerSettings {
  baseUrl: string;
  topic: string;
  maxTasks: number;
  /** Unset: the client fetches again while completes are in flight. */
  maxParallelExecutions?: number;
  intervalMs: number;
  asyncResponseTimeoutMs: number;
  lockDurationMs: number;
  variables: TypedVariables;
}

const settings = JSON.parse(process.argv[2] ?? '{}') as BareWorkerSettings;

const client = new Client({
  baseUrl: settings.baseUrl,
  workerId: `bench-bare-${process.pid}`,
  maxTasks: settings.maxTasks,
  ...(settings.maxParallelExecutions === undefined
    ? {}
    : { maxParallelExecutions: settings.maxParallelExecutions }),
  interval: settings.intervalMs,
  asyncResponseTimeout: settings.asyncResponseTimeoutMs,
  autoPoll: false,
});

client.subscribe(
  settings.topic,
  { lockDuration: settings.lockDurationMs, includeExtensionProperties: true },
  async ({ task, taskService }) => {
    const variables = new Variables();
    for (const [name, typed] of Object.entries(settings.variables)) variables.setTyped(name, typed);
    await taskService.complete(task, variables);
  },
);
client.on('complete:error', (_task: unknown, err: unknown) =>
  process.stderr.write(`complete failed: ${String(err)}\n`),
);
client.on('poll:error', (err: unknown) => process.stderr.write(`poll failed: ${String(err)}\n`));

client.start();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  client.stop();
  process.exit(0);
});
