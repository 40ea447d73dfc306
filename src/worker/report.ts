import type { Task, TaskService } from 'camunda-external-task-client-js';
import type { Logger } from 'pino';

import { errorMessage } from '../errors.ts';
import type { Report } from './decide.ts';
import { typedVariables } from './engine-client.ts';

export type ReportResult = 'reported' | 'lock_lost';

/** Wait between attempts while the engine does not answer. */
const RETRY_MS = [250, 500, 1000, 2000, 5000];

/**
 * Sends a task's report to the engine. An engine that is down or answers 5xx
 * is tried again until the task's lock would expire (after that another
 * worker gets the task anyway). A 400 (another worker holds the lock) or 404
 * (the task is gone: completed elsewhere or cancelled) means our lock is
 * lost: logged and counted, never a crash.
 */
export async function reportToEngine(task: Task, taskService: TaskService, report: Report, log: Logger): Promise<ReportResult> {
  const lockExpiry = task.lockExpirationTime ? Date.parse(task.lockExpirationTime) : Date.now() + 30_000;

  for (let attempt = 0; ; attempt++) {
    try {
      await send(task, taskService, report);
      return 'reported';
    } catch (err) {
      const status = (err as { httpStatusCode?: number }).httpStatusCode;
      if (status === 400 || status === 404) {
        log.warn({ status, err: errorMessage(err) }, 'lock lost: the engine refused the report');
        return 'lock_lost';
      }
      const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]!;
      if (Date.now() + wait >= lockExpiry) {
        log.error({ status, err: errorMessage(err) }, 'could not report the task before its lock expires; the engine will hand it out again');
        return 'lock_lost';
      }
      log.warn({ status, err: errorMessage(err), retryInMs: wait }, 'engine did not take the report; trying again');
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

function send(task: Task, taskService: TaskService, report: Report): Promise<void> {
  switch (report.kind) {
    case 'complete':
      return taskService.complete(task, typedVariables(report.variables), typedVariables(report.localVariables));
    case 'bpmnError':
      return taskService.handleBpmnError(task, report.code, report.message, typedVariables(report.variables));
    case 'failure':
      return taskService.handleFailure(task, {
        errorMessage: report.errorMessage,
        errorDetails: report.errorDetails,
        retries: report.retries,
        retryTimeout: report.retryTimeout,
      });
  }
}
