import type { Task, TaskService } from 'camunda-external-task-client-js';
import type { Logger } from 'pino';

import { errorMessage } from '../errors.ts';
import type { Report } from './decide.ts';
import { typedVariables } from './engine-client.ts';

/** `refused`: the engine would not take the script's outcome; the task was failed instead. */
export type ReportResult = 'reported' | 'lock_lost' | 'refused';

/** Wait between attempts while the engine does not answer. */
const RETRY_MS = [250, 500, 1000, 2000, 5000];

/** Identical engine errors (5xx with an engine exception) before a refusal is taken as final. */
const REFUSALS_BEFORE_FAILING = 3;

/**
 * The engine's reason when it refuses a completion or BPMN error for its
 * content, which no retry can change: a value it cannot convert (400
 * InvalidRequestException), a BPMN error no boundary event catches, a name
 * too long for its column (500 with an engine exception). Lock problems are
 * RestExceptions and stay lock losses.
 */
function refusal(err: unknown): { final: boolean; message: string } | undefined {
  const status = (err as { httpStatusCode?: number }).httpStatusCode;
  let body: { type?: unknown; message?: unknown };
  try {
    const raw = (err as { response?: { body?: unknown } }).response?.body;
    body = JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw)) as typeof body;
  } catch {
    return undefined;
  }
  if (typeof body?.type !== 'string' || body.type === 'RestException') return undefined;
  const message = `${body.type}: ${String(body.message)}`;
  if (status === 400 && body.type === 'InvalidRequestException') return { final: true, message };
  if (status === 500 && /Exception$/.test(body.type)) return { final: false, message };
  return undefined;
}

function failureFor(report: Report, reason: string): Report {
  const what = report.kind === 'bpmnError' ? `BPMN error '${report.code}'` : 'completion';
  const message = `the engine refused the script's ${what}: ${reason}`;
  return {
    kind: 'failure',
    errorMessage: message.length > 666 ? `${message.slice(0, 665)}…` : message,
    errorDetails: message,
    retries: 0,
    retryTimeout: 0,
  };
}

/**
 * Sends a task's report to the engine. An engine that is down or answers 5xx
 * is tried again until the task's lock would expire (after that another
 * worker gets the task anyway). A 400 (another worker holds the lock) or 404
 * (the task is gone: completed elsewhere or cancelled) means our lock is
 * lost: logged and counted, never a crash.
 */
export async function reportToEngine(
  task: Task,
  taskService: TaskService,
  report: Report,
  log: Logger,
): Promise<ReportResult> {
  const lockExpiry = task.lockExpirationTime
    ? Date.parse(task.lockExpirationTime)
    : Date.now() + 30_000;
  let current = report;
  let refusals = 0;

  for (let attempt = 0; ; attempt++) {
    try {
      await send(task, taskService, current);
      return current === report ? 'reported' : 'refused';
    } catch (err) {
      const status = (err as { httpStatusCode?: number }).httpStatusCode;
      // Sent again unchanged it would be refused again, until the lock expired
      // and the task came back, for ever: fail the task with the engine's reason.
      const refused = current.kind === 'failure' ? undefined : refusal(err);
      if (refused && (refused.final || ++refusals >= REFUSALS_BEFORE_FAILING)) {
        log.warn(
          { status, err: errorMessage(err) },
          'the engine refused the report; failing the task with its reason',
        );
        current = failureFor(current, refused.message);
        continue;
      }
      if (status === 400 || status === 404) {
        log.warn({ status, err: errorMessage(err) }, 'lock lost: the engine refused the report');
        return 'lock_lost';
      }
      const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]!;
      if (Date.now() + wait >= lockExpiry) {
        log.error(
          { status, err: errorMessage(err) },
          'could not report the task before its lock expires; the engine will hand it out again',
        );
        return 'lock_lost';
      }
      log.warn(
        { status, err: errorMessage(err), retryInMs: wait },
        'engine did not take the report; trying again',
      );
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

function send(task: Task, taskService: TaskService, report: Report): Promise<void> {
  switch (report.kind) {
    case 'complete':
      return taskService.complete(
        task,
        typedVariables(report.variables),
        typedVariables(report.localVariables),
      );
    case 'bpmnError':
      return taskService.handleBpmnError(
        task,
        report.code,
        report.message,
        typedVariables(report.variables),
      );
    case 'failure':
      return taskService.handleFailure(task, {
        errorMessage: report.errorMessage,
        errorDetails: report.errorDetails,
        retries: report.retries,
        retryTimeout: report.retryTimeout,
      });
  }
}
