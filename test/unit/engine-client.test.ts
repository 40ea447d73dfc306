// The engine client: exact Longs, authentication, and the typed variables of
// a fetched task, against a local HTTP server that answers fetchAndLock.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterEach, describe, expect, it } from 'vitest';

import { loadConfig } from '../../src/config/config.ts';
import type { TypedVariables } from '../../src/variables/camunda.ts';
import {
  createEngineClient,
  parseExact,
  type EngineClient,
} from '../../src/worker/engine-client.ts';

describe('parseExact', () => {
  it('keeps a Long beyond 2^53 exact, as its digits', () => {
    const parsed = parseExact(
      '{"big":{"type":"Long","value":9007199254740993},"min":{"type":"Long","value":-9223372036854775808}}',
    );
    expect(parsed).toEqual({
      big: { type: 'Long', value: '9007199254740993' },
      min: { type: 'Long', value: '-9223372036854775808' },
    });
  });

  it('reads the type name whatever its case', () => {
    expect(parseExact('{"type":"long","value":9223372036854775807}')).toEqual({
      type: 'long',
      value: '9223372036854775807',
    });
  });

  it('leaves a Long in the safe range a number', () => {
    expect(parseExact('{"type":"Long","value":9007199254740991}')).toEqual({
      type: 'Long',
      value: 9007199254740991,
    });
  });

  it('leaves other numbers alone: other types and other keys', () => {
    const text =
      '[{"priority":9007199254740993,"variables":{' +
      '"d":{"type":"Double","value":9007199254740993},' +
      '"i":{"type":"Integer","value":7},' +
      '"j":{"type":"Json","value":"{\\"n\\":9007199254740993}"}}}]';
    expect(parseExact(text)).toEqual([
      {
        priority: 9007199254740992,
        variables: {
          d: { type: 'Double', value: 9007199254740992 },
          i: { type: 'Integer', value: 7 },
          j: { type: 'Json', value: '{"n":9007199254740993}' },
        },
      },
    ]);
  });
});

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

interface FakeEngine {
  readonly url: string;
  readonly seen: Seen[];
}

const servers: http.Server[] = [];
const clients: EngineClient[] = [];

afterEach(async () => {
  for (const engine of clients.splice(0)) {
    engine.client.stop();
    await engine.pollSettled();
  }
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

/** An engine that hands out `tasks` (raw JSON) on the first fetchAndLock and nothing after. */
async function fakeEngine(tasksJson: string): Promise<FakeEngine> {
  const seen: Seen[] = [];
  let handedOut = false;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      seen.push({
        url: req.url ?? '',
        headers: req.headers,
        body: text ? JSON.parse(text) : undefined,
      });
      if (req.method === 'POST' && req.url === '/engine-rest/external-task/fetchAndLock') {
        const body = handedOut ? '[]' : tasksJson;
        handedOut = true;
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      } else {
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"message":"not in this fake"}');
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/engine-rest`, seen };
}

const TASK_ID = 'task-7';

const TASKS = `[{
  "id": "${TASK_ID}",
  "topicName": "sandbox",
  "workerId": "unit-worker",
  "activityId": "computeTotal",
  "activityInstanceId": "computeTotal:1",
  "executionId": "exec-1",
  "processInstanceId": "pi-1",
  "processDefinitionId": "invoice:1:pd",
  "processDefinitionKey": "invoice",
  "businessKey": "order-42",
  "tenantId": null,
  "retries": null,
  "priority": 0,
  "extensionProperties": { "script": "1" },
  "variables": {
    "amountCents": { "type": "Long", "value": 9007199254740993, "valueInfo": {} },
    "count": { "type": "Long", "value": 12, "valueInfo": {} },
    "qty": { "type": "Integer", "value": 3, "valueInfo": {} },
    "order": { "type": "Json", "value": "{\\"id\\":\\"A-1\\",\\"cents\\":9007199254740993}", "valueInfo": {} },
    "due": { "type": "Date", "value": "2024-01-02T03:04:05.678+0100", "valueInfo": {} },
    "none": { "type": "Null", "value": null, "valueInfo": {} }
  }
}]`;

/** Starts a client on `env`, lets it fetch the one task, and returns what the handler saw. */
async function fetchOnce(env: NodeJS.ProcessEnv): Promise<{
  engine: FakeEngine;
  variables: TypedVariables;
  again: TypedVariables;
  clientVariables: Record<string, unknown>;
  extensionProperties: unknown;
}> {
  const engine = await fakeEngine(TASKS);
  const config = loadConfig(
    { camundaUrl: engine.url, pollIntervalMs: 20, pollTimeoutMs: 0, workerId: 'unit-worker' },
    env,
  );
  const client = createEngineClient(config);
  clients.push(client);

  const handled = new Promise<{
    variables: TypedVariables;
    again: TypedVariables;
    clientVariables: Record<string, unknown>;
    extensionProperties: unknown;
  }>((resolve) => {
    client.client.subscribe(
      'sandbox',
      { lockDuration: 10_000, includeExtensionProperties: true },
      async ({ task }) => {
        const variables = client.takeVariables(task.id);
        resolve({
          variables,
          again: client.takeVariables(task.id),
          clientVariables: task.variables.getAllTyped(),
          extensionProperties: task.extensionProperties,
        });
      },
    );
  });
  client.client.start();
  const result = await handled;
  client.client.stop();
  await client.pollSettled();
  return { engine, ...result };
}

describe('createEngineClient against a fake engine', () => {
  it('sends the Basic auth header when CAMUNDA_USER and CAMUNDA_PASSWORD are set', async () => {
    const { engine } = await fetchOnce({ CAMUNDA_USER: 'demo', CAMUNDA_PASSWORD: 'pa:ss wörd' });
    const fetches = engine.seen.filter((s) => s.url.endsWith('/fetchAndLock'));
    expect(fetches.length).toBeGreaterThan(0);
    for (const request of fetches) {
      expect(request.headers.authorization).toBe(
        `Basic ${Buffer.from('demo:pa:ss wörd').toString('base64')}`,
      );
    }
  });

  it('sends the Bearer header when CAMUNDA_TOKEN is set', async () => {
    const { engine } = await fetchOnce({ CAMUNDA_TOKEN: 'eyJhbGciOi.token' });
    expect(engine.seen[0]?.headers.authorization).toBe('Bearer eyJhbGciOi.token');
  });

  it('sends no Authorization header without credentials', async () => {
    const { engine } = await fetchOnce({});
    expect(engine.seen[0]?.headers.authorization).toBeUndefined();
  });

  it('asks for the subscribed topic with its extension properties, as this worker', async () => {
    const { engine } = await fetchOnce({});
    expect(engine.seen[0]?.body).toMatchObject({
      workerId: 'unit-worker',
      topics: [{ topicName: 'sandbox', lockDuration: 10_000, includeExtensionProperties: true }],
    });
  });

  it('takeVariables returns the exact typed variables of a fetched task, once', async () => {
    const { variables, again, extensionProperties } = await fetchOnce({});
    expect(variables).toEqual({
      amountCents: { type: 'Long', value: '9007199254740993', valueInfo: {} },
      count: { type: 'Long', value: 12, valueInfo: {} },
      qty: { type: 'Integer', value: 3, valueInfo: {} },
      order: { type: 'Json', value: '{"id":"A-1","cents":9007199254740993}', valueInfo: {} },
      due: { type: 'Date', value: '2024-01-02T03:04:05.678+0100', valueInfo: {} },
      none: { type: 'Null', value: null, valueInfo: {} },
    });
    expect(again).toEqual({});
    expect(extensionProperties).toEqual({ script: '1' });
  });

  it('the client library never sees the variables, so cannot round or reinterpret them', async () => {
    const { clientVariables } = await fetchOnce({});
    expect(clientVariables).toEqual({});
  });

  it('takeVariables of a task never fetched is empty', () => {
    const client = createEngineClient(
      loadConfig({ camundaUrl: 'http://127.0.0.1:9/engine-rest' }, {}),
    );
    expect(client.takeVariables('unknown')).toEqual({});
  });
});
