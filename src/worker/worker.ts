import type { Server } from 'node:http';

import type { Task, TaskService, TopicSubscription } from 'camunda-external-task-client-js';
import type { Logger } from 'pino';

import type { WorkerConfig } from '../config/config.ts';
import { errorMessage } from '../errors.ts';
import { ExecutorPool } from '../executor/executor-pool.ts';
import type { PolicySet } from '../policy/load.ts';
import { PolicyStore } from '../policy/watch.ts';
import { startTelemetryServer } from '../telemetry/http-server.ts';
import { Metrics, type EngineOperation } from '../telemetry/metrics.ts';
import { createEngineClient, type EngineClient } from './engine-client.ts';
import { runTask, type TaskInFlight } from './task-runner.ts';

/**
 * The worker's lifecycle:
 * - `starting`: policies loaded, executors and telemetry coming up;
 * - `polling`: fetching and running tasks;
 * - `draining`: a stop was asked; no new fetches, tasks in flight finish
 *   within the grace period, the rest are unlocked;
 * - `stopped`: everything closed.
 */
export type WorkerState = 'starting' | 'polling' | 'draining' | 'stopped';

/** Client events that end an engine request, by metric operation. */
const ENGINE_EVENTS: [string, EngineOperation][] = [
  ['poll', 'fetch_and_lock'],
  ['complete', 'complete'],
  ['handleFailure', 'handle_failure'],
  ['handleBpmnError', 'handle_bpmn_error'],
  ['extendLock', 'extend_lock'],
  ['unlock', 'unlock'],
];

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Longest pause between polls while the engine fails. */
const MAX_POLL_BACKOFF_MS = 30_000;

export class Worker {
  readonly config: WorkerConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly policies: PolicyStore;
  readonly executors: ExecutorPool;
  readonly engine: EngineClient;
  private stateValue: WorkerState = 'starting';
  private readonly inFlight = new Map<string, { entry: TaskInFlight; done: Promise<void> }>();
  private readonly subscriptions = new Map<string, TopicSubscription>();
  private server: Server | undefined;
  private lastEngineSuccess = 0;
  private stopping: Promise<void> | undefined;
  /** The client's next poll, held back while every task slot is busy. */
  private parkedPoll: (() => void) | undefined;

  /** Loads and validates the policies; throws PolicyError naming file, line and field. */
  constructor(config: WorkerConfig, logger: Logger, metrics = new Metrics()) {
    this.config = config;
    this.logger = logger;
    this.metrics = metrics;
    this.policies = new PolicyStore(config.policiesDir);
    this.executors = new ExecutorPool({
      processes: config.executors,
      isolates: {
        maxIdle: Math.ceil(config.maxParallel / config.executors),
        maxTasksPerIsolate: 500,
      },
      logger,
      onRestart: (reason) => this.metrics.executorRestarts.inc({ reason }),
    });
    this.engine = createEngineClient(config);
  }

  get state(): WorkerState {
    return this.stateValue;
  }

  /** The telemetry server's address, once started. */
  get telemetryServer(): Server | undefined {
    return this.server;
  }

  async start(): Promise<void> {
    this.server = await startTelemetryServer(
      this.metrics.registry,
      this,
      this.config.metricsPort,
      this.config.metricsHost,
    );
    await this.executors.start();
    this.watchEngine();
    this.watchPolicies();
    this.subscribe(this.policies.current);
    this.routeUnsubscribedTasks();

    this.transition('polling');
    this.engine.client.start();
  }

  /** Ready when policies are loaded and the engine answered within the ready window. */
  ready(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.stateValue !== 'polling') reasons.push(`worker is ${this.stateValue}`);
    if (this.policies.current.policies.length === 0) reasons.push('no policy loaded');
    const since = Date.now() - this.lastEngineSuccess;
    if (since > this.config.readyWindowMs) reasons.push('the engine has not answered recently');
    return { ready: reasons.length === 0, reasons };
  }

  /** Drains and stops; safe to call more than once. */
  stop(reason = 'stop requested'): Promise<void> {
    this.stopping ??= this.drain(reason);
    return this.stopping;
  }

  private async drain(reason: string): Promise<void> {
    this.transition('draining', { reason, inFlight: this.inFlight.size });
    this.engine.client.stop();
    this.policies.close();

    // Tasks in flight get the grace period; so does the poll in flight, whose
    // tasks the handler unlocks as they arrive.
    const deadline = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), this.config.shutdownGraceMs).unref(),
    );
    const settled = Promise.all([
      ...[...this.inFlight.values()].map((t) => t.done),
      this.engine.pollSettled(),
    ]);
    const waited = await Promise.race([settled.then(() => 'drained' as const), deadline]);

    const running = [...this.inFlight.values()].filter(({ entry }) => !entry.abandoned);
    if (waited === 'timeout' && running.length > 0) {
      this.logger.warn(
        { tasks: running.length },
        'grace period over; unlocking the tasks still running',
      );
      await Promise.all(running.map(({ entry }) => this.abandon(entry)));
    }
    // A long poll still pending at the engine locks any task that turns up
    // (the engine does not notice a client that has gone), even one unlocked
    // just now: wait for it (it ends within its asyncResponseTimeout) so that
    // the handler unlocks what it brings, then let the handlers start.
    await Promise.race([this.engine.pollSettled(), delay(this.config.pollTimeoutMs + 5000)]);
    await new Promise((resolve) => setImmediate(resolve));
    const left = [...this.inFlight.values()];

    // Scripts still running end with their executor; their results are dropped.
    await this.executors.stop();
    await Promise.race([Promise.all(left.map((t) => t.done)), delay(5000)]);
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.server?.closeAllConnections();
    this.transition('stopped');
  }

  private transition(state: WorkerState, fields: Record<string, unknown> = {}): void {
    this.stateValue = state;
    this.logger.info({ state, workerId: this.config.workerId, ...fields }, `worker ${state}`);
  }

  private handle = ({
    task,
    taskService,
  }: {
    task: Task;
    taskService: TaskService;
  }): Promise<void> => {
    const entry: TaskInFlight = { task, taskService, abandoned: false };
    const work = this.stateValue === 'polling' ? this.work(entry) : this.abandon(entry);
    const done = work.finally(() => {
      this.inFlight.delete(task.id);
      this.metrics.inFlight.dec({ topic: task.topicName });
      // After the client's own count of active tasks has dropped too.
      const resume = this.parkedPoll;
      this.parkedPoll = undefined;
      if (resume) setImmediate(resume);
    });
    this.inFlight.set(task.id, { entry, done });
    this.metrics.inFlight.inc({ topic: task.topicName });
    return done;
  };

  private async work(entry: TaskInFlight): Promise<void> {
    try {
      await runTask(entry, {
        policies: this.policies,
        executors: this.executors,
        engine: this.engine,
        metrics: this.metrics,
        logger: this.logger,
        scriptsDir: this.config.scriptsDir,
      });
    } catch (err) {
      // runTask reports every fault itself; reaching here is our bug.
      this.logger.error({ taskId: entry.task.id, err: errorMessage(err) }, 'task handler failed');
    }
  }

  /** Gives a task back to the engine at once, so that another worker takes it now. */
  private async abandon(entry: TaskInFlight): Promise<void> {
    entry.abandoned = true;
    this.engine.takeVariables(entry.task.id);
    try {
      await entry.taskService.unlock(entry.task);
      this.logger.info({ taskId: entry.task.id, topic: entry.task.topicName }, 'task unlocked');
    } catch (err) {
      this.logger.warn(
        { taskId: entry.task.id, err: errorMessage(err) },
        'could not unlock task; its lock will expire',
      );
    }
  }

  private subscribe(set: PolicySet): void {
    const wanted = new Map<string, number>();
    for (const [topic, loaded] of set.byTopic) {
      wanted.set(topic, loaded.policy.limits.wallMs + this.config.lockMarginMs);
      this.metrics.declareTopic(topic, loaded.policy.name);
    }
    for (const [topic, subscription] of this.subscriptions) {
      if (wanted.get(topic) !== subscription.lockDuration) {
        subscription.unsubscribe();
        this.subscriptions.delete(topic);
      }
    }
    for (const [topic, lockDuration] of wanted) {
      if (this.subscriptions.has(topic)) continue;
      const subscription = this.engine.client.subscribe(
        topic,
        { lockDuration, includeExtensionProperties: true },
        this.handle,
      );
      this.subscriptions.set(topic, subscription);
    }
    this.logger.info({ topics: [...wanted.keys()] }, 'subscribed');
  }

  /**
   * A poll in flight still brings tasks of a topic whose policy was removed
   * meanwhile. The client would find no handler for them and leave them locked
   * until the lock expires, with no word to the engine: they go to our
   * handler, which fails them with POLICY_NOT_FOUND.
   */
  private routeUnsubscribedTasks(): void {
    const client = this.engine.client as unknown as {
      topicSubscriptions: Record<string, unknown>;
      taskService: TaskService;
      executeTask: (task: Task) => Promise<void>;
    };
    const executeTask = client.executeTask;
    client.executeTask = async (task) => {
      if (client.topicSubscriptions[task.topicName]) return executeTask(task);
      await this.handle({ task, taskService: client.taskService });
    };
  }

  private watchPolicies(): void {
    this.policies.on('applied', (set) => {
      this.metrics.policyReloads.inc({ result: 'applied' });
      this.logger.info({ policies: set.policies.map((p) => p.policy.name) }, 'policies reloaded');
      if (this.stateValue === 'polling') this.subscribe(set);
    });
    this.policies.on('rejected', (err) => {
      this.metrics.policyReloads.inc({ result: 'rejected' });
      this.logger.error(
        { err: err.message },
        'policy change rejected; keeping the last good policies',
      );
    });
    this.policies.watch();
  }

  private watchEngine(): void {
    const client = this.engine.client;
    for (const [event, operation] of ENGINE_EVENTS) {
      client.on(`${event}:success`, () => {
        this.lastEngineSuccess = Date.now();
        this.metrics.engineRequests.inc({ operation, result: 'success' });
      });
      client.on(`${event}:error`, () =>
        this.metrics.engineRequests.inc({ operation, result: 'error' }),
      );
    }

    // The client polls at a fixed interval; while the engine fails, back off.
    // The client reads its interval when a poll starts, so an interval raised
    // on an error would still be waited after the next success (up to 30 s of
    // idling once the engine is back): hold the next poll back instead. The
    // client schedules its next poll through `this.poll`, i.e. through this wrapper.
    let backoffMs = 0;
    const poll = (client as unknown as { poll: () => Promise<void> }).poll;
    (client as unknown as { poll: () => void }).poll = () => {
      if (backoffMs > 0) {
        setTimeout(() => void poll(), backoffMs);
        return;
      }
      // Every slot busy: the client would check again on a timer, a spin
      // with POLL_INTERVAL_MS 0. Poll again when a task ends instead.
      if (this.inFlight.size >= this.config.maxParallel) {
        this.parkedPoll = () => void poll();
        return;
      }
      void poll();
    };
    client.on('poll:success', () => {
      backoffMs = 0;
    });
    client.on('poll:error', (err: unknown) => {
      backoffMs = Math.min(Math.max(backoffMs * 2, 500), MAX_POLL_BACKOFF_MS);
      this.logger.warn({ err: errorMessage(err), retryInMs: backoffMs }, 'fetch-and-lock failed');
    });
    client.on('handler:error', (err: unknown) =>
      this.logger.error({ err: errorMessage(err) }, 'task handler error'),
    );
  }
}
