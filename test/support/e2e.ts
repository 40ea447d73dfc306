// Helpers for the end-to-end files beside test/support/worker.ts: waiting on
// the worker's log and metrics, reading a task's state from the REST API.
import { engine, metricValue, type LogEntry, type TestWorker } from './worker.ts';

/** A BPMN process id from a topic (ids are XML NCNames: no '-'). */
export function processId(topic: string, name: string): string {
  return `${name}_${topic.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The 'task done' lines the worker logged for one process instance. */
export function taskDoneLines(worker: TestWorker, processInstanceId: string): LogEntry[] {
  return worker.logs.filter(
    (l) => l.msg === 'task done' && l['processInstanceId'] === processInstanceId,
  );
}

/**
 * Waits for the worker's 'task done' line of an instance (written after the
 * report and the counters), so that logs and metrics are final; returns it.
 */
export async function taskDone(
  worker: TestWorker,
  processInstanceId: string,
  count = 1,
): Promise<LogEntry> {
  const lines = await waitFor(`${count} 'task done' line(s) for ${processInstanceId}`, () => {
    const found = taskDoneLines(worker, processInstanceId);
    return found.length >= count ? found : undefined;
  });
  return lines[count - 1]!;
}

/** One metric sample, 0 when the series is absent (to compute deltas). */
export async function sample(
  worker: TestWorker,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  return metricValue(await worker.metrics(), name, labels) ?? 0;
}

export interface ExternalTaskRow {
  id: string;
  retries: number | null;
  errorMessage: string | null;
  activityId: string;
  lockExpirationTime: string | null;
  workerId: string | null;
}

/** The open external tasks of an instance, with the fields the typed helper leaves out. */
export function externalTaskRows(processInstanceId: string): Promise<ExternalTaskRow[]> {
  return engine.call('GET', `/external-task?processInstanceId=${processInstanceId}`);
}

export interface HistoricVariableRow {
  name: string;
  type: string;
  value: unknown;
  activityInstanceId: string;
}

export function historicVariableRows(processInstanceId: string): Promise<HistoricVariableRow[]> {
  return engine.call(
    'GET',
    `/history/variable-instance?processInstanceId=${processInstanceId}&deserializeValues=false`,
  );
}

/**
 * Records the instances a test file starts and deletes those still running
 * (incidents, waiting retries) at the end, so that the shared engine does not
 * collect them run after run. Their history stays.
 */
export class InstanceTracker {
  private readonly ids = new Set<string>();

  track(id: string): string {
    this.ids.add(id);
    return id;
  }

  async cleanup(): Promise<void> {
    for (const id of this.ids) {
      const running = await engine
        .call<{ id: string }[]>('GET', `/process-instance?processInstanceIds=${id}`)
        .catch(() => []);
      if (running.length > 0) {
        await engine
          .call('DELETE', `/process-instance/${id}?skipCustomListeners=true&skipIoMappings=true`)
          .catch(() => undefined);
      }
    }
    this.ids.clear();
  }
}
