import { Client, Variables } from 'camunda-external-task-client-js';

import type { WorkerConfig } from '../config/config.ts';
import type { TypedVariables } from '../variables/camunda.ts';

/**
 * camunda-external-task-client-js 3.1.0, set up for the sandbox:
 * authentication, exact Long values, and a record of the poll in flight.
 *
 * The client parses every response with a plain JSON.parse, which rounds a
 * Long beyond 2^53. A got hook on fetch-and-lock responses reads the body
 * first, keeps each Long exact as a decimal string, and takes the variables
 * out of the body into `takeVariables()` so that the client never deserializes
 * them (it would also turn Json into objects and Dates into local dates).
 * This leans on the client's use of got; the version is pinned for that.
 */
export interface EngineClient {
  readonly client: Client;
  /** The exact typed variables of a fetched task, once. */
  takeVariables(taskId: string): TypedVariables;
  /** Resolves when no fetch-and-lock request is in flight. */
  pollSettled(): Promise<void>;
}

type GotOptions = Record<string, unknown> & {
  headers?: Record<string, string>;
  hooks?: Record<string, unknown[]>;
};
type GotResponse = { body: unknown; url?: string; requestUrl?: URL };

const FETCH_AND_LOCK = /\/external-task\/fetchAndLock$/;

/** How long a fetched task's variables are kept for its handler before they are dropped. */
const VARIABLES_TTL_MS = 600_000;

export function createEngineClient(config: WorkerConfig): EngineClient {
  const stash = new Map<string, { variables: TypedVariables; at: number }>();

  const afterResponse = (response: GotResponse): GotResponse => {
    const url = String(response.requestUrl ?? response.url ?? '');
    if (!FETCH_AND_LOCK.test(url) || !Buffer.isBuffer(response.body)) return response;
    const tasks = parseExact(response.body.toString('utf8'));
    if (!Array.isArray(tasks)) return response;

    const now = Date.now();
    for (const [id, entry] of stash) if (now - entry.at > VARIABLES_TTL_MS) stash.delete(id);
    for (const task of tasks as { id: string; variables?: TypedVariables }[]) {
      stash.set(task.id, { variables: task.variables ?? {}, at: now });
      task.variables = {};
    }
    response.body = Buffer.from(JSON.stringify(tasks));
    return response;
  };

  const interceptor = (options: GotOptions): GotOptions => ({
    ...options,
    headers: { ...options.headers, ...authHeader(config) },
    hooks: {
      ...options.hooks,
      afterResponse: [...(options.hooks?.['afterResponse'] ?? []), afterResponse],
    },
  });

  const client = new Client({
    baseUrl: config.camundaUrl,
    workerId: config.workerId,
    maxTasks: config.maxParallel,
    maxParallelExecutions: config.maxParallel,
    asyncResponseTimeout: config.pollTimeoutMs > 0 ? config.pollTimeoutMs : undefined,
    interval: config.pollIntervalMs,
    autoPoll: false,
    interceptors: interceptor,
  });

  // Track the poll in flight so that a stop can wait for it: tasks it locks
  // must be unlocked, not left to their lock's expiry.
  let inFlight: Promise<unknown> = Promise.resolve();
  const engineService = (
    client as unknown as { engineService: { fetchAndLock: (body: unknown) => Promise<unknown> } }
  ).engineService;
  const fetchAndLock = engineService.fetchAndLock;
  engineService.fetchAndLock = (body: unknown) => {
    const request = fetchAndLock(body);
    inFlight = request.catch(() => undefined);
    return request;
  };

  return {
    client,
    takeVariables(taskId) {
      const entry = stash.get(taskId);
      stash.delete(taskId);
      return entry?.variables ?? {};
    },
    pollSettled: () => inFlight.then(() => undefined),
  };
}

function authHeader(config: WorkerConfig): Record<string, string> {
  if (config.camundaToken) return { Authorization: `Bearer ${config.camundaToken}` };
  if (config.camundaUser) {
    const pair = `${config.camundaUser}:${config.camundaPassword ?? ''}`;
    return { Authorization: `Basic ${Buffer.from(pair).toString('base64')}` };
  }
  return {};
}

/** JSON.parse that keeps a Long's digits when the number would be rounded. */
export function parseExact(text: string): unknown {
  // A reviver visits every value; only a number of 16 or more digits can be
  // rounded, so most responses skip it.
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return JSON.parse(
    text,
    function (this: Record<string, unknown>, key, value, context?: { source?: string }) {
      if (
        key === 'value' &&
        typeof value === 'number' &&
        !Number.isSafeInteger(value) &&
        typeof this['type'] === 'string' &&
        this['type'].toLowerCase() === 'long' &&
        context?.source !== undefined
      ) {
        return context.source;
      }
      return value;
    },
  );
}

/** A Variables instance holding already typed values, as the client's complete() wants. */
export function typedVariables(values: TypedVariables): Variables {
  const variables = new Variables();
  for (const [name, typed] of Object.entries(values)) variables.setTyped(name, typed);
  return variables;
}
