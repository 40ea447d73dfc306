// The executor process: hosts the isolates, so that a V8 crash or an
// out-of-memory that isolated-vm cannot contain takes down this process and
// not the worker. It speaks only over the IPC channel (advanced serialization).
import { IsolatePool } from '../sandbox/isolate-pool.ts';
import { runScript } from '../sandbox/run-script.ts';
import type { FromExecutor, ToExecutor } from './protocol.ts';

import type { IsolatePoolOptions } from '../sandbox/isolate-pool.ts';

// The supervisor passes the pool's options as one JSON argument.
const pool = new IsolatePool(JSON.parse(process.argv[2] ?? '{}') as IsolatePoolOptions);

function send(message: FromExecutor): void {
  // Once the worker has gone, an answer has no reader: drop it (a send on a
  // closed channel would otherwise crash this process with EPIPE).
  if (process.connected) process.send?.(message, undefined, {}, () => {});
}

async function handle(message: ToExecutor): Promise<void> {
  const { id, job } = message;
  try {
    const outcome = await runScript(job, pool, (event) => send({ type: 'event', id, event }));
    send({ type: 'done', id, outcome });
  } catch (err) {
    send({
      type: 'failed',
      id,
      message: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
  }
}

process.on('message', (message: ToExecutor) => {
  if (message?.type === 'run') void handle(message);
});

// A terminal's Ctrl-C (SIGINT) and a supervisor that signals the whole process
// group or cgroup (systemd's default) reach the executors too. The worker
// decides when they end (it drains its tasks first, then disconnects), so the
// signals are ignored here; SIGKILL still ends an executor.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});

// The worker is gone: nothing will read our answers.
process.on('disconnect', () => {
  pool.dispose();
  process.exit(0);
});

send({ type: 'ready' });
