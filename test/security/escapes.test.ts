// Issue 4 item 5: the known ways out of a JavaScript sandbox, tried for real.
//
// Most attempts go straight through runScript (the code an executor runs), in
// this process: this process is then the host, so its environment, its files
// and its Object.prototype are what an escape would reach. The last block
// repeats the main attempts end to end, through the engine and a worker whose
// executors inherit the same canaries.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import ivm from 'isolated-vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { policySchema } from '../../src/policy/schema.ts';
import { IsolatePool } from '../../src/sandbox/isolate-pool.ts';
import type { ExecutionEvent, ScriptJob } from '../../src/sandbox/job.ts';
import type { ScriptOutcome } from '../../src/sandbox/outcome.ts';
import { runScript } from '../../src/sandbox/run-script.ts';
import type { WireVariables } from '../../src/variables/wire.ts';
import { processId, taskDone } from '../support/e2e.ts';
import {
  engine,
  metricValue,
  runModel,
  startTestWorker,
  testPolicy,
  uniqueTopic,
  type TestWorker,
} from '../support/worker.ts';

// ------------------------------------------------------------------ canaries

// What an escape would read: an environment variable, a secret the policy
// does not grant, a file. Set before any worker starts, so executors inherit them.
const CANARY_ENV = `canary-env-${randomUUID()}`;
const CANARY_SECRET = `canary-secret-${randomUUID()}`;
const CANARY_FILE_TEXT = `canary-file-${randomUUID()}`;
const canaryDir = mkdtempSync(join(tmpdir(), 'sandbox-escape-'));
const CANARY_FILE = join(canaryDir, 'canary.txt');
writeFileSync(CANARY_FILE, CANARY_FILE_TEXT);
process.env['SANDBOX_ESCAPE_CANARY'] = CANARY_ENV;
process.env['SANDBOX_SECRET_ESCAPE_CANARY'] = CANARY_SECRET;

const CANARIES = [CANARY_ENV, CANARY_SECRET, CANARY_FILE_TEXT];

function expectNoCanary(text: string): void {
  for (const canary of CANARIES) expect(text).not.toContain(canary);
}

/** Text of a stack or message that would betray a host frame or path. */
const HOST_TRACE =
  /\/work\/|\.ts:\d|node:internal|node_modules|run-script|isolated-vm\.js|file:\/\//;

// ------------------------------------------------------ running scripts here

const pool = new IsolatePool({ maxIdle: 2, maxTasksPerIsolate: 25 });

const baseCapabilities = {
  console: {},
  crypto: {},
  secrets: { allow: ['GRANTED_NAME'] },
};

interface Attempt {
  outcome: ScriptOutcome;
  events: ExecutionEvent[];
  /** Everything that left the sandbox, as text. */
  text: string;
}

async function attempt(
  source: string,
  options: {
    variables?: WireVariables;
    capabilities?: Record<string, unknown>;
    limits?: Record<string, number>;
  } = {},
): Promise<Attempt> {
  const policy = policySchema.parse({
    name: 'escape',
    topics: ['escape'],
    limits: { memoryMb: 64, wallMs: 10_000, cpuMs: 5000, ...options.limits },
    capabilities: options.capabilities ?? baseCapabilities,
  });
  const job: ScriptJob = {
    taskId: randomUUID(),
    topic: 'escape',
    policy: policy.name,
    source,
    filename: 'escape.js',
    variables: options.variables ?? {},
    meta: {
      executionId: 'e',
      processInstanceId: 'p',
      processDefinitionId: 'd',
      processDefinitionKey: 'k',
      activityId: 'a',
      activityInstanceId: 'ai',
      businessKey: null,
      tenantId: null,
      topicName: 'escape',
    },
    limits: policy.limits,
    capabilities: Object.fromEntries(
      Object.entries(policy.capabilities).filter(([, s]) => s !== undefined),
    ),
  };
  const events: ExecutionEvent[] = [];
  const outcome = await runScript(job, pool, (event) => events.push(event));
  const text = JSON.stringify({ outcome, events });
  expectNoCanary(text);
  return { outcome, events, text };
}

/** The script's completion value, which the scripts below make a JSON report. */
function report<T = Record<string, unknown>>(result: Attempt): T {
  expect(result.outcome.kind, result.text.slice(0, 2000)).toBe('completed');
  const outcome = result.outcome as Extract<ScriptOutcome, { kind: 'completed' }>;
  expect(outcome.result?.t).toBe('string');
  return JSON.parse((outcome.result as { v: string }).v) as T;
}

// Isolate-side helpers shared by the attempts: `inspect(label, value)` checks
// that a value is the sandbox's own (its constructor chain ends at the
// sandbox's Function, its prototype chain at the sandbox's Object.prototype,
// it is no isolated-vm handle) and then uses whatever Function it reached to
// try for the host: process.env, require, the canary file.
const PROBE = String.raw`
const OWN_FUNCTIONS = new Set([
  Function,
  Object.getPrototypeOf(async function () {}).constructor,
  Object.getPrototypeOf(function* () {}).constructor,
  Object.getPrototypeOf(async function* () {}).constructor,
]);
const HOST_CODES = [
  'return process.env.SANDBOX_ESCAPE_CANARY',
  'return process.mainModule.require("fs").readFileSync(${JSON.stringify(CANARY_FILE)}, "utf8")',
  'return require("fs").readFileSync(${JSON.stringify(CANARY_FILE)}, "utf8")',
  'return globalThis.process.binding("fs")',
  'return typeof this.process === "object" ? this.process.pid : undefined',
];
const probe = { inspected: [], foreign: [], handles: [], reached: [], refused: 0 };
function describeValue(v) {
  try { return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v); } catch (e) { return typeof v; }
}
function isHandle(v) {
  if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return false;
  try {
    return ['applySync', 'copySync', 'derefInto', 'getSync', 'setSync', 'release'].some((k) => typeof v[k] === 'function');
  } catch (e) {
    return false;
  }
}
function protoRoot(v) {
  let p = Object.getPrototypeOf(v), last = v;
  for (let i = 0; p !== null && i < 50; i++) { last = p; p = Object.getPrototypeOf(p); }
  return last;
}
// Answers of async constructors arrive later: finish() waits for them.
const pendingProbes = [];
function tryHost(label, F) {
  for (const code of HOST_CODES) {
    try {
      let got = F(code)();
      if (got && typeof got[Symbol.iterator] === 'function' && typeof got.next === 'function') got = got.next().value;
      if (got && typeof got[Symbol.asyncIterator] === 'function') got = got.next().then((r) => r.value);
      if (got && typeof got.then === 'function') {
        pendingProbes.push(got.then(
          (v) => { if (v !== undefined) probe.reached.push(label + ': ' + code + ' -> ' + describeValue(v)); },
          (e) => { if (e instanceof SandboxPolicyError) probe.refused++; },
        ));
      } else if (got !== undefined) {
        probe.reached.push(label + ': ' + code + ' -> ' + describeValue(got));
      }
    } catch (e) {
      if (e instanceof SandboxPolicyError) probe.refused++;
    }
  }
}
function inspect(label, value) {
  if (value === null || value === undefined) { probe.inspected.push(label + ': ' + value); return; }
  if (isHandle(value)) probe.handles.push(label);
  let F, literal;
  try {
    // The class of the value, through its prototype (own keys such as a Json
    // "constructor" are data), then that class's constructor.
    const proto = Object.getPrototypeOf(Object(value));
    // (Function.prototype is a function whose prototype is Object.prototype.)
    F = proto === null ? undefined : typeof value === 'function' && proto !== Object.prototype ? proto.constructor : proto.constructor.constructor;
    if (typeof value === 'object' && proto !== null && protoRoot(value) !== Object.prototype) {
      probe.foreign.push(label + ' (prototype chain)');
    }
    // The attacker's own spelling, value.constructor.constructor, whatever it reaches.
    literal = Object(value).constructor;
    literal = literal === null || literal === undefined ? undefined : literal.constructor;
  } catch (e) {
    // A blocked-call trap refuses even this: nothing reached.
    probe.inspected.push(label + ': ' + e.name);
    if (e instanceof SandboxPolicyError) probe.refused++;
    return;
  }
  probe.inspected.push(label);
  if (F !== undefined && !OWN_FUNCTIONS.has(F)) probe.foreign.push(label);
  if (F !== undefined) tryHost(label, F);
  if (typeof literal === 'function' && literal !== F) tryHost(label + ' (literal chain)', literal);
}
async function finish(extra) {
  await Promise.all(pendingProbes);
  return JSON.stringify({ ...probe, ...extra });
}
function caught(fn) {
  try { fn(); } catch (e) { return e; }
  return undefined;
}
async function rejected(fn) {
  try { await fn(); } catch (e) { return e; }
  return undefined;
}
`;

// ------------------------------------------------------------------ the tests

let server: http.Server;
let serverOrigin = '';

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-test': 'yes' });
    res.end(JSON.stringify({ hello: 'world', list: [1, 2, 3] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverOrigin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  pool.dispose();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('escape attempts through runScript: constructor chains', () => {
  it('constructor chains from the global, the built-ins and the sandbox API end at the sandbox own Function', async () => {
    const result = await attempt(`${PROBE}
      inspect('this', this);
      inspect('globalThis', globalThis);
      inspect('object literal', {});
      inspect('array', []);
      inspect('string', 'text');
      inspect('number', 1);
      inspect('symbol', Symbol('s'));
      inspect('bigint', 1n);
      inspect('regexp', /x/);
      inspect('promise', Promise.resolve(1));
      inspect('async function', async () => 1);
      inspect('generator', function* () {});
      inspect('execution', execution);
      inspect('execution.getVariable', execution.getVariable);
      inspect('execution.setVariable', execution.setVariable);
      inspect('execution.getVariables()', execution.getVariables());
      inspect('BpmnError', BpmnError);
      inspect('new BpmnError', new BpmnError('CODE', 'message', { a: 1 }));
      inspect('SandboxPolicyError', SandboxPolicyError);
      inspect('S', S);
      inspect('S node', S('{"a":{"b":1}}').prop('a'));
      inspect('console', console);
      inspect('console.log', console.log);
      inspect('print', print);
      inspect('crypto', crypto);
      inspect('crypto.hash', crypto.hash);
      inspect('secrets.get', secrets.get);
      inspect('process trap', process);
      inspect('require trap', require);
      inspect('fetch trap', fetch);
      finish({})`);
    const found = report<{
      inspected: string[];
      foreign: string[];
      handles: string[];
      reached: string[];
      refused: number;
    }>(result);
    expect(found.foreign).toEqual([]);
    expect(found.handles).toEqual([]);
    expect(found.reached).toEqual([]);
    // Every value but the three traps was inspected; the traps refused even a property read.
    expect(found.inspected.filter((l) => / trap: SandboxPolicyError$/.test(l))).toHaveLength(3);
    expect(found.inspected.length).toBe(30);
    // The HOST_CODES themselves reach for `process` and `require`: blocked, counted.
    expect(found.refused).toBeGreaterThan(0);
    expect(result.events.some((e) => e.kind === 'blocked' && e.capability === 'process')).toBe(
      true,
    );
  });

  it('values from execution.getVariable and from capability calls are sandbox copies, never host objects', async () => {
    const result = await attempt(
      `${PROBE}
      for (const name of ['json', 'list', 'text', 'long', 'bigLong', 'date', 'double', 'flag']) {
        inspect('getVariable(' + name + ')', execution.getVariable(name));
      }
      inspect('nested json', execution.getVariable('json').nested);
      inspect('S(json) prop', S(execution.getVariable('json')).prop('nested'));
      inspect('randomUUID', crypto.randomUUID());
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      inspect('getRandomValues', bytes);
      inspect('getRandomValues buffer', bytes.buffer);
      inspect('hash hex', crypto.hash('SHA-256', 'x'));
      inspect('hash base64', crypto.hash('sha512', new Uint8Array([1, 2, 3]), 'base64'));
      inspect('secrets.get of a granted name that is not set', secrets.get('GRANTED_NAME'));
      finish({})`,
      {
        variables: {
          json: { t: 'json', v: '{"nested":{"deep":[1,2,{"x":"y"}]}}' },
          list: { t: 'json', v: '[1,"two",{"three":3}]' },
          text: { t: 'string', v: 'hello' },
          long: { t: 'long', v: '5000000000' },
          bigLong: { t: 'long', v: '9223372036854775807' },
          date: { t: 'date', v: '2024-01-02T03:04:05.678Z' },
          double: { t: 'double', v: 1.5 },
          flag: { t: 'boolean', v: true },
        },
      },
    );
    const found = report<{
      inspected: string[];
      foreign: string[];
      handles: string[];
      reached: string[];
    }>(result);
    expect(found.foreign).toEqual([]);
    expect(found.handles).toEqual([]);
    expect(found.reached).toEqual([]);
    expect(found.inspected).toContain('getVariable(bigLong)');
    expect(found.inspected).toContain('getRandomValues buffer');
  });

  it('errors raised by host callbacks, refusals, blocked calls and copy failures are sandbox errors without host frames', async () => {
    const result = await attempt(`${PROBE}
      const errors = {
        'unsupported hash': caught(() => crypto.hash('md5', 'x')),
        'hash of an object': caught(() => crypto.hash('sha256', { a: 1 })),
        'symbol cannot be copied': caught(() => crypto.hash('sha256', Symbol('s'))),
        'function cannot be copied': caught(() => crypto.hash('sha256', { f() {} })),
        'too many random bytes': caught(() => crypto.getRandomValues(new Uint8Array(1 << 20))),
        'refused secret': caught(() => secrets.get('NOT_GRANTED')),
        'ungranted secret by name': caught(() => secrets.get('ESCAPE_CANARY')),
        'process.env': caught(() => process.env),
        'require': caught(() => require('fs')),
        'Java.type': caught(() => Java.type('java.lang.Runtime')),
        'engine services': caught(() => execution.getProcessEngineServices()),
        'BpmnError without code': caught(() => new BpmnError()),
        'removeVariable': caught(() => execution.removeVariable('x')),
        'fetch is not granted': caught(() => fetch('https://example.com/')),
      };
      const seen = {};
      for (const [label, err] of Object.entries(errors)) {
        inspect(label, err);
        seen[label] = { isError: err instanceof Error, name: err && err.name, message: String(err && err.message), stack: String(err && err.stack) };
      }
      finish({}).then((p) => JSON.stringify({ probe: JSON.parse(p), seen }))`);
    const { probe, seen } = report<{
      probe: { foreign: string[]; handles: string[]; reached: string[] };
      seen: Record<string, { isError: boolean; name: string; message: string; stack: string }>;
    }>(result);
    expect(probe.foreign).toEqual([]);
    expect(probe.handles).toEqual([]);
    expect(probe.reached).toEqual([]);
    expect(Object.keys(seen)).toHaveLength(14);
    for (const [label, err] of Object.entries(seen)) {
      expect(err.isError, label).toBe(true);
      expect(err.message, label).not.toMatch(HOST_TRACE);
      expect(err.stack, label).not.toMatch(HOST_TRACE);
    }
    expect(seen['refused secret']!.name).toBe('SandboxPolicyError');
    expect(seen['ungranted secret by name']!.name).toBe('SandboxPolicyError');
    expect(seen['process.env']!.name).toBe('SandboxPolicyError');
    expect(seen['symbol cannot be copied']!.name).toBe('TypeError');
  });

  it('fetch answers (the promise, the response, its headers and body) and its refusals are sandbox copies', async () => {
    const result = await attempt(
      `${PROBE}
      (async () => {
        const pending = fetch(${JSON.stringify(serverOrigin)} + '/data');
        inspect('fetch promise', pending);
        const response = await pending;
        inspect('response', response);
        inspect('response.headers', response.headers);
        inspect('response.headers.get', response.headers.get);
        inspect('response.json()', await response.json());
        inspect('response.arrayBuffer()', await response.arrayBuffer());
        inspect('response.bytes()', await response.bytes());
        inspect('refused origin', await rejected(() => fetch('https://not-allowed.example/')));
        inspect('refused method', await rejected(() => fetch(${JSON.stringify(serverOrigin)} + '/data', { method: 'DELETE' })));
        inspect('bad body', await rejected(() => fetch(${JSON.stringify(serverOrigin)} + '/data', { method: 'POST', body: { a: 1 } })));
        return JSON.stringify({ probe: JSON.parse(await finish({})), status: response.status, header: response.headers.get('x-test') });
      })()`,
      {
        capabilities: {
          ...baseCapabilities,
          fetch: {
            allow: [{ origin: serverOrigin, methods: ['GET', 'POST'] }],
            allowPrivate: [new URL(serverOrigin).host],
          },
        },
      },
    );
    const { probe, status, header } = report<{
      probe: { inspected: string[]; foreign: string[]; handles: string[]; reached: string[] };
      status: number;
      header: string;
    }>(result);
    expect(status).toBe(200);
    expect(header).toBe('yes');
    expect(probe.foreign).toEqual([]);
    expect(probe.handles).toEqual([]);
    expect(probe.reached).toEqual([]);
    expect(probe.inspected).toEqual(
      expect.arrayContaining(['fetch promise', 'response', 'refused origin', 'refused method']),
    );
  });
});

describe('escape attempts through runScript: stack-trace hooks', () => {
  it('Error.prepareStackTrace sees only sandbox frames, and no frame hands out a host function or receiver', async () => {
    const result = await attempt(
      `${PROBE}
      const sites = [];
      Error.prepareStackTrace = (error, callSites) => {
        for (const site of callSites) {
          let self, fn;
          try { self = site.getThis(); } catch (e) {}
          try { fn = site.getFunction(); } catch (e) {}
          sites.push({ file: String(site.getFileName()), name: String(site.getFunctionName()), self, fn, native: site.isNative() });
        }
        return 'hooked';
      };
      const trip = () => new Error('probe').stack;
      const sneaky = {
        get a() { trip(); return 1; },
        toString() { trip(); return 'sha256'; },
        toJSON() { trip(); return { b: 2 }; },
      };
      caught(() => crypto.hash(sneaky, 'x'));
      caught(() => crypto.hash('sha256', sneaky));
      console.log(sneaky);
      caught(() => secrets.get(sneaky));
      execution.setVariable('v', { get late() { trip(); return 1; } });
      (async () => {
        await rejected(() => fetch({ get href() { trip(); return 'https://not-allowed.example/'; } }, { get method() { trip(); return 'GET'; } }));
        const hooked = String(new Error('x').stack);
        delete Error.prepareStackTrace;
        sites.forEach((s, i) => { inspect('this of frame ' + i + ' ' + s.name, s.self); inspect('function of frame ' + i + ' ' + s.name, s.fn); });
        return JSON.stringify({ probe: JSON.parse(await finish({})), hooked, files: [...new Set(sites.map((s) => s.file))], count: sites.length });
      })()`,
      {
        capabilities: {
          ...baseCapabilities,
          fetch: { allow: [{ origin: 'https://allowed.example' }] },
        },
      },
    );
    const { probe, hooked, files, count } = report<{
      probe: { foreign: string[]; handles: string[]; reached: string[] };
      hooked: string;
      files: string[];
      count: number;
    }>(result);
    expect(hooked).toBe('hooked');
    expect(count).toBeGreaterThan(10);
    for (const file of files) expect(file).not.toMatch(HOST_TRACE);
    expect(probe.foreign).toEqual([]);
    expect(probe.handles).toEqual([]);
    expect(probe.reached).toEqual([]);
  });

  it('Error.captureStackTrace, even inside getters run while the outcome is written, shows no host frame', async () => {
    const result = await attempt(`
      const stacks = [];
      const capture = () => { const holder = {}; Error.captureStackTrace(holder); stacks.push(holder.stack); };
      Error.stackTraceLimit = Infinity;
      capture();
      try { crypto.hash({ toString() { capture(); return 'md5'; } }, 'x'); } catch (e) { stacks.push(e.stack); }
      execution.setVariable('stacks', { get all() { capture(); return stacks.slice(); } });
      'done'`);
    expect(result.outcome.kind).toBe('completed');
    const variables = (result.outcome as Extract<ScriptOutcome, { kind: 'completed' }>).variables;
    const stacks = JSON.parse((variables['stacks'] as { v: string }).v).all as string[];
    expect(stacks.length).toBe(4);
    for (const stack of stacks) {
      expect(stack).not.toMatch(HOST_TRACE);
      expect(stack).toMatch(/escape\.js/);
    }
  });
});

describe('escape attempts through runScript: objects crossing the boundary', () => {
  it('isolated-vm transfer options read through Object.prototype cannot turn a copied answer into a host reference', async () => {
    const result = await attempt(
      `${PROBE}
      const holders = [];
      // Not 'value': a getter of that name on Object.prototype breaks defineProperty itself.
      const keys = ['reference', 'externalCopy', 'copy', 'promise', 'timeout', 'arguments', 'result', 'release', 'accessors', 'unsafeInherit', 'refused', 'error'];
      const install = (answer) => {
        for (const key of keys) {
          Object.defineProperty(Object.prototype, key, {
            configurable: true,
            get() { holders.push(this); return answer(key); },
          });
        }
      };
      const uninstall = () => { for (const key of keys) delete Object.prototype[key]; };
      (async () => {
        const outcomes = [];
        for (const answer of [() => undefined, (k) => k === 'reference' || k === 'promise', (k) => k === 'externalCopy', (k) => (k === 'timeout' ? 1 : undefined)]) {
          install(answer);
          for (const call of [
            () => fetch(${JSON.stringify(serverOrigin)} + '/data').then((r) => r.json()),
            async () => crypto.hash('sha256', 'x'),
            async () => crypto.randomUUID(),
          ]) {
            try { const value = await call(); uninstall(); inspect('answer', value); outcomes.push('value'); }
            catch (e) { uninstall(); inspect('error', e); outcomes.push(e.name); }
            install(answer);
          }
          uninstall();
        }
        holders.forEach((h, i) => inspect('options object ' + i, h));
        return JSON.stringify({ probe: JSON.parse(await finish({})), outcomes, holders: holders.length });
      })()`,
      {
        capabilities: {
          ...baseCapabilities,
          fetch: { allow: [{ origin: serverOrigin }], allowPrivate: [new URL(serverOrigin).host] },
        },
      },
    );
    const { probe, outcomes, holders } = report<{
      probe: { foreign: string[]; handles: string[]; reached: string[] };
      outcomes: string[];
      holders: number;
    }>(result);
    expect(outcomes).toHaveLength(12);
    // isolated-vm does read its options through the prototype chain: the
    // attempt was real, and still only copies or clean errors came back.
    expect(holders).toBeGreaterThan(0);
    expect(probe.handles).toEqual([]);
    expect(probe.foreign).toEqual([]);
    expect(probe.reached).toEqual([]);
  });

  it('a Proxy or a getter-laden object given to setVariable, console.log and crypto.hash is read inside the sandbox and leaves it only as data', async () => {
    const values: Record<string, string> = {
      'a proxy that lies about its prototype and keys': `new Proxy({}, {
        get: (t, k) => { ran.push('get ' + String(k)); return k === 'answer' ? 42 : undefined; },
        ownKeys: () => { ran.push('ownKeys'); return ['answer']; },
        getOwnPropertyDescriptor: () => ({ value: 42, enumerable: true, configurable: true, writable: true }),
        getPrototypeOf: () => { ran.push('getPrototypeOf'); return Object.prototype; },
      })`,
      'a proxy that claims to be an array': `new Proxy([], { get: (t, k) => { ran.push('get ' + String(k)); return k === 'length' ? 2 : 'item'; } })`,
      'a proxy whose every trap throws': `new Proxy({}, { get() { ran.push('throwing get'); throw new Error('trap says no'); }, ownKeys() { ran.push('throwing ownKeys'); throw new Error('no keys'); }, getPrototypeOf() { ran.push('throwing getPrototypeOf'); throw new Error('no prototype'); } })`,
      'a getter that changes type on each read': `(() => { let flips = 0; return { get value() { ran.push('flip'); flips++; return flips % 2 ? 'a string' : { now: 'an object' }; } }; })()`,
      'a typed array with a lying buffer': `(() => { const a = new Uint8Array([1, 2, 3]); Object.defineProperty(a, 'buffer', { get() { ran.push('buffer'); return new ArrayBuffer(1024); } }); return a; })()`,
    };
    for (const [label, expression] of Object.entries(values)) {
      const result = await attempt(`
        const ran = [];
        const value = ${expression};
        const answers = [];
        for (const [what, use] of [
          ['console.log', () => console.log(value)],
          ['crypto.hash', () => crypto.hash('sha256', value)],
          ['setVariable', () => execution.setVariable('v', value)],
        ]) {
          try { use(); answers.push(what + ': ok'); } catch (e) { answers.push(what + ': ' + e.name + ': ' + e.message); }
        }
        execution.setVariable('ran', ran);
        JSON.stringify(answers)`);
      // Whatever the traps did, the script ended with an outcome the host could check.
      expect(['completed', 'error'], label).toContain(result.outcome.kind);
      if (result.outcome.kind === 'completed') {
        const ran = JSON.parse((result.outcome.variables['ran'] as { v: string }).v) as string[];
        expect(ran.length, label).toBeGreaterThan(0);
        for (const [name, wire] of Object.entries(result.outcome.variables)) {
          expect(['json', 'string'], `${label}: ${name}`).toContain(wire.t);
          if (wire.t === 'json')
            expect(() => JSON.parse(wire.v), `${label}: ${name}`).not.toThrow();
        }
      } else {
        expect(result.outcome, label).toMatchObject({ kind: 'error', policyViolation: false });
        expect((result.outcome as { message: string }).message, label).toMatch(
          /trap says no|no keys|no prototype|cannot be stored|not a supported/,
        );
      }
    }
    expect(({} as Record<string, unknown>)['answer']).toBeUndefined();
  });

  it('Symbol.toPrimitive, toString and toJSON hooks on arguments run inside the sandbox, never on the host', async () => {
    const result = await attempt(`
      const ran = [];
      const hooked = (label, text) => ({
        [Symbol.toPrimitive]() { ran.push(label + ' toPrimitive'); return text; },
        toString() { ran.push(label + ' toString'); return text; },
        valueOf() { ran.push(label + ' valueOf'); return text; },
        toJSON() { ran.push(label + ' toJSON'); return { as: 'json' }; },
      });
      const answers = {};
      const tryIt = (label, fn) => { try { answers[label] = fn(); } catch (e) { answers[label] = e.name + ': ' + e.message; } };
      tryIt('secrets.get', () => secrets.get(hooked('secret name', 'GRANTED_NAME')));
      tryIt('hash algorithm', () => crypto.hash(hooked('algorithm', 'sha256'), 'x'));
      tryIt('console', () => console.log(hooked('console', 'text')));
      tryIt('getVariable name', () => execution.getVariable(hooked('variable name', 'x')));
      tryIt('setVariable name', () => execution.setVariable(hooked('variable name', 'x'), 1));
      tryIt('BpmnError code', () => new BpmnError(hooked('error code', 'CODE')).code);
      execution.setVariable('json', hooked('stored value', 'unused'));
      JSON.stringify({ ran, answers })`);
    expect(result.outcome.kind).toBe('completed');
    const outcome = result.outcome as Extract<ScriptOutcome, { kind: 'completed' }>;
    const { ran, answers } = JSON.parse((outcome.result as { v: string }).v);
    expect(ran).toEqual(
      expect.arrayContaining([
        'secret name toPrimitive',
        'algorithm toPrimitive',
        'console toJSON',
        'error code toPrimitive',
      ]),
    );
    expect(answers['secrets.get']).toBeNull();
    expect(answers['hash algorithm']).toMatch(/^[0-9a-f]{64}$/);
    expect(answers['getVariable name']).toMatch(
      /TypeError: a variable name must be a non-empty string/,
    );
    expect(answers['setVariable name']).toMatch(/TypeError/);
    expect(answers['BpmnError code']).toBe('CODE');
    // toJSON ran at the end, in the sandbox, when the variable was encoded.
    expect(outcome.variables['json']).toEqual({ t: 'json', v: '{"as":"json"}' });
  });
});

describe('escape attempts through runScript: prototype pollution', () => {
  it('__proto__, constructor and prototype keys in Json input pollute neither the sandbox nor the host Object.prototype', async () => {
    // JSON.stringify of a literal with __proto__ drops it: write the text by hand.
    const text =
      '{"__proto__":{"polluted":"proto"},"constructor":{"prototype":{"polluted":"constructor.prototype"}},' +
      '"prototype":{"polluted":"prototype"},"nested":{"__proto__":{"polluted":"nested"},"list":[{"__proto__":{"polluted":"in a list"}}]}}';
    const hostKeysBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    const result = await attempt(
      `
      const value = execution.getVariable('payload');
      const all = execution.getVariables();
      const viaSpin = S(execution.getVariable('payload'));
      const copies = [
        Object.assign({}, value),
        { ...value },
        JSON.parse(JSON.stringify(value)),
        structuredCloneLike(value),
        S(JSON.stringify(value)).value(),
      ];
      function structuredCloneLike(v) { return JSON.parse(JSON.stringify(v)); }
      const pollutedAnywhere = [({}).polluted, [].polluted, Object.prototype.polluted, Object.create(Object.prototype).polluted, (function () {}).polluted];
      execution.setVariable('roundTrip', value);
      execution.setVariable('spinProp', viaSpin.prop('constructor').prop('prototype').prop('polluted').stringValue());
      JSON.stringify({
        pollutedAnywhere,
        ownProtoKey: Object.prototype.hasOwnProperty.call(value, '__proto__'),
        protoIsObjectPrototype: Object.getPrototypeOf(value) === Object.prototype,
        allHasPayload: Object.keys(all).includes('payload'),
        nestedOwn: Object.prototype.hasOwnProperty.call(value.nested.list[0], '__proto__'),
        copies: copies.length,
      })`,
      { variables: { payload: { t: 'json', v: text } } },
    );
    const found = report<Record<string, unknown>>(result);
    expect(found['pollutedAnywhere']).toEqual([null, null, null, null, null]);
    expect(found['ownProtoKey']).toBe(true);
    expect(found['protoIsObjectPrototype']).toBe(true);
    expect(found['nestedOwn']).toBe(true);
    expect(found['allHasPayload']).toBe(true);
    // The keys stay data: the Json goes back out with every key intact.
    const outcome = result.outcome as Extract<ScriptOutcome, { kind: 'completed' }>;
    expect(JSON.parse((outcome.variables['roundTrip'] as { v: string }).v)).toEqual(
      JSON.parse(text),
    );
    expect((outcome.variables['roundTrip'] as { v: string }).v).toContain(
      '"__proto__":{"polluted":"proto"}',
    );
    expect(outcome.variables['spinProp']).toEqual({ t: 'string', v: 'constructor.prototype' });
    // And the host (this process) is untouched.
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(hostKeysBefore);
  });

  it('a script that pollutes its own Object.prototype and sets __proto__ variables leaves the host and the next task clean', async () => {
    const polluter = await attempt(`
      Object.prototype.polluted = 'by the script';
      Array.prototype.polluted = 'by the script';
      Object.prototype.t = 'json';
      Object.prototype.v = '{"forged":true}';
      execution.setVariable('__proto__', { polluted: 'as a variable' });
      execution.setVariable('constructor', { prototype: { polluted: 'as a variable' } });
      execution.setVariable('normal', { __proto__: null, a: 1 });
      'polluted'`);
    expect(polluter.outcome.kind).toBe('completed');
    const outcome = polluter.outcome as Extract<ScriptOutcome, { kind: 'completed' }>;
    expect(outcome.variables['normal']).toEqual({ t: 'json', v: '{"a":1}' });
    expect(outcome.variables['constructor']).toEqual({
      t: 'json',
      v: '{"prototype":{"polluted":"as a variable"}}',
    });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(([] as unknown as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(({} as Record<string, unknown>)['t']).toBeUndefined();

    const next = await attempt(
      `JSON.stringify([({}).polluted, [].polluted, ({}).t, typeof globalThis.polluted])`,
    );
    expect(report<unknown[]>(next)).toEqual([null, null, null, 'undefined']);
  });
});

describe('escape attempts through runScript: absent and refused features', () => {
  it('SharedArrayBuffer, Atomics, WebAssembly and FinalizationRegistry are absent and cannot be recovered from any realm path', async () => {
    const result = await attempt(`
      const names = ['SharedArrayBuffer', 'Atomics', 'WebAssembly', 'FinalizationRegistry'];
      const seen = {};
      for (const name of names) {
        seen[name] = [
          typeof globalThis[name],
          Function('return typeof ' + name)(),
          (() => { try { return typeof eval(name); } catch (e) { return e.name; } })(),
          (() => { try { return typeof (0, eval)(name); } catch (e) { return e.name; } })(),
          Object.getOwnPropertyNames(globalThis).includes(name),
          Reflect.ownKeys(Object.getPrototypeOf(globalThis)).includes(name),
        ];
      }
      // A Wasm module would need the WebAssembly namespace; a shared buffer, its constructor.
      let wasm;
      try { wasm = typeof new Function('return WebAssembly.compile')(); } catch (e) { wasm = e.name; }
      let shared;
      try { shared = new ArrayBuffer(8, { maxByteLength: 16 }).constructor === ArrayBuffer ? 'plain' : 'other'; } catch (e) { shared = e.name; }
      JSON.stringify({ seen, wasm, shared })`);
    const { seen, wasm, shared } = report<{
      seen: Record<string, unknown[]>;
      wasm: string;
      shared: string;
    }>(result);
    for (const name of ['SharedArrayBuffer', 'Atomics', 'WebAssembly', 'FinalizationRegistry']) {
      expect(seen[name], name).toEqual([
        'undefined',
        'undefined',
        'ReferenceError',
        'ReferenceError',
        false,
        false,
      ]);
    }
    expect(wasm).toBe('ReferenceError');
    expect(shared).toBe('plain');
  });

  it('dynamic import() of node built-ins, files and data URLs is refused, directly and through eval and Function', async () => {
    const result = await attempt(`
      const specifiers = ['fs', 'node:fs', 'node:child_process', 'child_process', ${JSON.stringify(CANARY_FILE)}, 'file://' + ${JSON.stringify(CANARY_FILE)}, 'data:text/javascript,export default globalThis.process'];
      (async () => {
        const answers = [];
        for (const specifier of specifiers) {
          for (const via of [(s) => import(s), (s) => eval('import(s)'), (s) => Function('s', 'return import(s)')(s)]) {
            try { const m = await via(specifier); answers.push('LOADED ' + specifier + ' ' + Object.keys(m)); }
            catch (e) { answers.push(e.name + ': ' + e.message); }
          }
        }
        let meta;
        try { meta = eval('import.meta'); } catch (e) { meta = e.name; }
        return JSON.stringify({ answers, meta });
      })()`);
    const { answers, meta } = report<{ answers: string[]; meta: string }>(result);
    expect(answers).toHaveLength(21);
    for (const answer of answers) expect(answer).toBe('Error: Not supported');
    expect(meta).toBe('SyntaxError');
  });

  it('eval and Function run code only inside the sandbox, where host names are blocked-call traps', async () => {
    const result = await attempt(`
      const answers = {
        evalThis: eval('this') === globalThis,
        indirectEvalThis: (0, eval)('this') === globalThis,
        functionThis: Function('return this')() === globalThis,
        newFunctionThis: new Function('return this')() === globalThis,
        executionSame: Function('return execution')() === execution,
        typeofProcess: Function('return typeof process')(),
      };
      for (const code of ['process.env.SANDBOX_ESCAPE_CANARY', 'require("fs")', 'Buffer.from("x")', 'global.process', 'setTimeout(() => 1)', 'Java.type("java.lang.System")', 'Packages.java.lang']) {
        try { answers[code] = 'returned ' + typeof eval(code); } catch (e) { answers[code] = e.name; }
        try { answers['Function: ' + code] = 'returned ' + typeof Function('return ' + code)(); } catch (e) { answers['Function: ' + code] = e.name; }
      }
      JSON.stringify(answers)`);
    const answers = report<Record<string, unknown>>(result);
    expect(answers['evalThis']).toBe(true);
    expect(answers['indirectEvalThis']).toBe(true);
    expect(answers['functionThis']).toBe(true);
    expect(answers['newFunctionThis']).toBe(true);
    expect(answers['executionSame']).toBe(true);
    // typeof does not count as a use: it cannot reach anything.
    expect(answers['typeofProcess']).toBe('function');
    for (const [code, answer] of Object.entries(answers)) {
      if (/process\.|require|Buffer|global\.|setTimeout|Java|Packages/.test(code))
        expect(answer, code).toBe('SandboxPolicyError');
    }
    const blocked = new Set(
      result.events
        .filter((e) => e.kind === 'blocked')
        .map((e) => (e as { capability: string }).capability),
    );
    for (const capability of [
      'process',
      'require',
      'Buffer',
      'global',
      'setTimeout',
      'Java',
      'Packages',
    ])
      expect(blocked).toContain(capability);
  });

  it('the global object holds only ECMAScript built-ins and the sandbox API, and nothing reachable from it is a host object or an isolated-vm handle', async () => {
    // The baseline: what a bare isolated-vm context has, before any prelude.
    const bare = new ivm.Isolate({ memoryLimit: 16 });
    let builtins: string[];
    try {
      const context = await bare.createContext();
      builtins = JSON.parse(
        await context.eval('JSON.stringify(Object.getOwnPropertyNames(globalThis))', {
          copy: true,
        }),
      ) as string[];
    } finally {
      bare.dispose();
    }
    const result = await attempt(`${PROBE}
      const names = Object.getOwnPropertyNames(globalThis).filter((n) => !['probe', 'OWN_FUNCTIONS', 'HOST_CODES'].includes(n));
      const seen = new Set();
      const walk = (label, value, depth) => {
        if (value === null || (typeof value !== 'object' && typeof value !== 'function') || seen.has(value) || depth > 3) return;
        seen.add(value);
        inspect(label, value);
        let keys = [];
        try { keys = Reflect.ownKeys(value); } catch (e) { return; }
        for (const key of keys) {
          let child;
          try { const d = Object.getOwnPropertyDescriptor(value, key); child = d && ('value' in d ? d.value : d.get); } catch (e) { continue; }
          walk(label + '.' + String(key), child, depth + 1);
        }
      };
      for (const name of names) {
        let value;
        try { value = Object.getOwnPropertyDescriptor(globalThis, name).value; } catch (e) { continue; }
        walk(name, value, 0);
      }
      finish({ names, walked: seen.size })`);
    const found = report<{
      names: string[];
      foreign: string[];
      handles: string[];
      reached: string[];
      walked: number;
    }>(result);
    const sandboxApi = new Set([
      'execution',
      'S',
      'BpmnError',
      'SandboxPolicyError',
      'console',
      'crypto',
      'secrets',
      'fetch',
      'print',
      // Blocked-call traps where a host's or the JVM's objects would be.
      'require',
      'process',
      'Buffer',
      'module',
      'exports',
      'global',
      'setTimeout',
      'setInterval',
      'setImmediate',
      'Java',
      'Packages',
      'java',
      'javax',
      'load',
      'loadWithNewGlobal',
      'importPackage',
      'importClass',
      'JavaImporter',
      'Polyglot',
      // PROBE's own function declarations.
      'describeValue',
      'isHandle',
      'protoRoot',
      'tryHost',
      'inspect',
      'finish',
      'caught',
      'rejected',
    ]);
    const unexpected = found.names.filter((n) => !builtins.includes(n) && !sandboxApi.has(n));
    expect(unexpected).toEqual([]);
    expect(found.walked).toBeGreaterThan(500);
    expect(found.foreign).toEqual([]);
    expect(found.handles).toEqual([]);
    expect(found.reached).toEqual([]);
  });
});

describe('escape attempts through runScript: tampering with the prelude', () => {
  it('replacing JSON, Object, Reflect, WeakSet and iterator primordials cannot forge the outcome', async () => {
    const result = await attempt(`
      JSON.stringify = () => '{"kind":"completed","variables":{"admin":{"t":"boolean","v":true}},"localVariables":{}}';
      JSON.parse = () => ({ forged: true });
      Object.keys = () => ['admin'];
      Object.getPrototypeOf = () => null;
      Reflect.apply = () => true;
      WeakSet.prototype.has = () => true;
      Array.prototype.filter = () => [];
      String.prototype.includes = () => false;
      Date.prototype.getTime = () => 0;
      execution.setVariable('real', 'value');
      execution.setVariable('when', new Date(Date.UTC(2024, 0, 2)));
      'result'`);
    expect(result.outcome).toEqual({
      kind: 'completed',
      result: { t: 'string', v: 'result' },
      variables: {
        real: { t: 'string', v: 'value' },
        when: { t: 'date', v: '2024-01-02T00:00:00.000Z' },
      },
      localVariables: {},
    });

    // A plain error dressed as a BpmnError or a policy refusal stays a plain error.
    const dressed = await attempt(`
      WeakSet.prototype.has = () => true;
      const err = new Error('plain');
      err.name = 'BpmnError';
      err.code = 'FORGED';
      Object.setPrototypeOf(err, BpmnError.prototype);
      throw err`);
    expect(dressed.outcome).toMatchObject({
      kind: 'error',
      name: 'BpmnError',
      message: 'plain',
      policyViolation: false,
    });
  });

  it('an Object.prototype.toJSON that throws or answers nothing while the outcome is written ends the task as a script error, not a sandbox fault', async () => {
    for (const source of [
      `Object.defineProperty(Object.prototype, 'toJSON', { get() { throw new Error('boom from toJSON'); } }); 1`,
      `Object.prototype.toJSON = function () { return undefined; }; 1`,
      `Object.defineProperty(Object.prototype, 'stack', { set() { throw new Error('no stack for you'); } }); Object.prototype.toJSON = function () { throw new Error('again'); }; throw new Error('x')`,
    ]) {
      const result = await attempt(source);
      expect(result.outcome, source).toMatchObject({
        kind: 'error',
        name: 'SandboxOutputError',
        message: expect.stringMatching(
          /^the script left an error outside its own code \(an unhandled promise rejection, or a built-in such as Object\.prototype\.toJSON made to throw\): /,
        ),
        policyViolation: false,
        outputTooLarge: true,
      });
    }
    // A toJSON that rewrites the outcome can only produce what the host validates: data.
    const forged = await attempt(`
      Object.prototype.toJSON = function () {
        return this && this.kind ? { kind: 'completed', variables: { x: { t: 'weird', v: 1 } }, localVariables: {} } : this;
      };
      1`);
    expect(forged.outcome).toMatchObject({
      kind: 'error',
      name: 'SandboxOutputError',
      outputTooLarge: true,
    });
    expect(({} as Record<string, unknown>)['toJSON']).toBeUndefined();

    const next = await attempt(`execution.setVariable('ok', { fine: true }); 'clean'`);
    expect(next.outcome).toMatchObject({
      kind: 'completed',
      variables: { ok: { t: 'json', v: '{"fine":true}' } },
    });
  });

  it('the sandbox API called with weird argument types throws sandbox errors and the next task runs normally', async () => {
    const result = await attempt(`${PROBE}
      const calls = {
        'getVariable()': () => execution.getVariable(),
        'getVariable({})': () => execution.getVariable({}),
        'getVariable(Symbol)': () => execution.getVariable(Symbol('x')),
        'setVariable(Symbol, 1)': () => execution.setVariable(Symbol('x'), 1),
        'setVariable(x, Symbol)': () => execution.setVariable('x', Symbol('x')),
        'setVariable(x, function)': () => execution.setVariable('x', () => 1),
        'hasVariable(null)': () => execution.hasVariable(null),
        'BpmnError(null)': () => new BpmnError(null),
        'BpmnError({})': () => { throw new BpmnError({}); },
        'console.log(1000 args)': () => console.log(...Array.from({ length: 1000 }, (_, i) => i)),
        'console.log(Symbol)': () => console.log(Symbol('s')),
        'getRandomValues(string)': () => crypto.getRandomValues('x'),
        'getRandomValues(Float64Array)': () => crypto.getRandomValues(new Float64Array(2)),
        'getRandomValues(fake view)': () => { const a = new Uint8Array(4); Object.defineProperty(a, 'buffer', { get() { return { fake: true }; } }); return crypto.getRandomValues(a); },
        'getRandomValues(negative)': () => crypto.getRandomValues({ byteLength: -1, buffer: new ArrayBuffer(1), byteOffset: 0 }),
        'hash(undefined, undefined)': () => crypto.hash(undefined, undefined),
        'hash(DataView)': () => crypto.hash('sha256', new DataView(new ArrayBuffer(4))),
        'hash(utf16)': () => crypto.hash('sha256', 'x', 'utf16'),
        'hash(huge)': () => crypto.hash('sha256', 'x'.repeat(9 * 1024 * 1024)),
        'secrets.get()': () => secrets.get(),
        'S(undefined)': () => S(undefined).value(),
        'S(xml)': () => S('<a/>', 'application/xml'),
      };
      const answers = {};
      for (const [label, call] of Object.entries(calls)) {
        try { const value = call(); answers[label] = 'returned ' + typeof value; }
        catch (e) { inspect(label, e); answers[label] = e.name + ': ' + e.message; }
      }
      finish({}).then((p) => JSON.stringify({ answers, probe: JSON.parse(p) }))`);
    const { answers, probe } = report<{
      answers: Record<string, string>;
      probe: { foreign: string[]; handles: string[]; reached: string[] };
    }>(result);
    expect(probe.foreign).toEqual([]);
    expect(probe.handles).toEqual([]);
    expect(probe.reached).toEqual([]);
    expect(answers['getVariable()']).toMatch(
      /^TypeError: a variable name must be a non-empty string/,
    );
    expect(answers['setVariable(x, Symbol)']).toMatch(/^VariableError/);
    expect(answers['setVariable(x, function)']).toMatch(/^VariableError/);
    expect(answers['BpmnError(null)']).toMatch(/^TypeError: BpmnError needs an error code/);
    expect(answers['getRandomValues(string)']).toMatch(/^TypeError/);
    expect(answers['getRandomValues(Float64Array)']).toMatch(/^TypeError/);
    expect(answers['hash(huge)']).toMatch(/over \d+ bytes/);
    expect(answers['hash(utf16)']).toMatch(/^TypeError/);
    expect(answers['S(xml)']).toMatch(/^TypeError: Spin: data format/);
    for (const answer of Object.values(answers)) expect(answer).not.toMatch(HOST_TRACE);

    const next = await attempt(`crypto.hash('SHA-256', 'abc')`);
    expect(next.outcome).toMatchObject({
      kind: 'completed',
      result: {
        t: 'string',
        v: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      },
    });
  });

  it('a task leaves nothing for the next task in the same isolate: globals, prototypes, hooks and weak references stay behind', async () => {
    const single = new IsolatePool({ maxIdle: 1, maxTasksPerIsolate: 10 });
    const events: ExecutionEvent[][] = [];
    const run = async (source: string) => {
      const policy = policySchema.parse({
        name: 'leftover',
        topics: ['leftover'],
        limits: { memoryMb: 64, wallMs: 10_000, cpuMs: 5000 },
        capabilities: baseCapabilities,
      });
      const mine: ExecutionEvent[] = [];
      events.push(mine);
      return runScript(
        {
          taskId: randomUUID(),
          topic: 'leftover',
          policy: 'leftover',
          source,
          filename: 'leftover.js',
          variables: {},
          meta: {
            executionId: null,
            processInstanceId: null,
            processDefinitionId: null,
            processDefinitionKey: null,
            activityId: null,
            activityInstanceId: null,
            businessKey: null,
            tenantId: null,
            topicName: 'leftover',
          },
          limits: policy.limits,
          capabilities: Object.fromEntries(
            Object.entries(policy.capabilities).filter(([, s]) => s !== undefined),
          ),
        },
        single,
        (event) => mine.push(event),
      );
    };
    try {
      const first = await run(`
        globalThis.leftover = 'from the first task';
        Object.prototype.inherited = 'from the first task';
        Error.prepareStackTrace = () => 'hooked by the first task';
        const refs = [];
        for (let i = 0; i < 2000; i++) refs.push(new WeakRef({ payload: new Array(100).fill(i) }));
        globalThis.refs = refs;
        // A callback the collector would call after the task is not on offer.
        const registry = (() => { try { return new FinalizationRegistry(() => { for (;;) {} }); } catch (e) { return e.name; } })();
        registry`);
      expect(first).toMatchObject({
        kind: 'completed',
        result: { t: 'string', v: 'ReferenceError' },
      });
      for (let i = 0; i < 3; i++) {
        const next = await run(`
          let garbage = [];
          for (let i = 0; i < 200; i++) garbage.push(new Array(10000).fill(i));
          garbage = null;
          JSON.stringify([typeof leftover, ({}).inherited, String(new Error('x').stack).startsWith('Error: x'), typeof refs])`);
        expect(next).toMatchObject({
          kind: 'completed',
          result: { t: 'string', v: '["undefined",null,true,"undefined"]' },
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(events.flat().filter((e) => e.kind === 'console')).toEqual([]);
    } finally {
      single.dispose();
    }
  });
});

describe('escape attempts through runScript: work left behind by a task', () => {
  let slow: http.Server;
  let slowOrigin = '';
  beforeAll(async () => {
    slow = http.createServer((_req, res) => setTimeout(() => res.end('late'), 300));
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    slowOrigin = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    slow.closeAllConnections();
    await new Promise<void>((resolve) => slow.close(() => resolve()));
  });

  async function inOnePool(
    sources: { source: string; capabilities: Record<string, unknown> }[],
  ): Promise<{ outcomes: ScriptOutcome[]; ms: number[] }> {
    const single = new IsolatePool({ maxIdle: 1, maxTasksPerIsolate: 10 });
    const outcomes: ScriptOutcome[] = [];
    const ms: number[] = [];
    try {
      for (const { source, capabilities } of sources) {
        const policy = policySchema.parse({
          name: 'left',
          topics: ['left'],
          limits: { memoryMb: 64, wallMs: 3000, cpuMs: 1000 },
          capabilities,
        });
        const started = performance.now();
        outcomes.push(
          await runScript(
            {
              taskId: randomUUID(),
              topic: 'left',
              policy: 'left',
              source,
              filename: 'left.js',
              variables: {},
              meta: {
                executionId: null,
                processInstanceId: null,
                processDefinitionId: null,
                processDefinitionKey: null,
                activityId: null,
                activityInstanceId: null,
                businessKey: null,
                tenantId: null,
                topicName: 'left',
              },
              limits: policy.limits,
              capabilities: Object.fromEntries(
                Object.entries(policy.capabilities).filter(([, v]) => v !== undefined),
              ),
            },
            single,
            () => {},
          ),
        );
        ms.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    } finally {
      single.dispose();
    }
    return { outcomes, ms };
  }

  it('an async answer the script did not await never runs after the task, on another task time or in an idle isolate', async () => {
    const fetching = {
      fetch: { allow: [{ origin: slowOrigin }], allowPrivate: [new URL(slowOrigin).host] },
    };
    const cpuBefore = process.cpuUsage();
    const { outcomes } = await inOnePool([
      // Ends at once; its fetch answers (or is aborted) later, and then it would spin.
      {
        source: `fetch(${JSON.stringify(slowOrigin)}).then(() => 1, () => 2).then(() => { for (;;) {} }); 'left a loop behind'`,
        capabilities: fetching,
      },
      // Another policy's task, next in the same pool.
      { source: `'innocent'`, capabilities: {} },
    ]);
    const cpu = process.cpuUsage(cpuBefore);
    expect(outcomes[0]).toMatchObject({
      kind: 'completed',
      result: { t: 'string', v: 'left a loop behind' },
    });
    expect(outcomes[1]).toMatchObject({
      kind: 'completed',
      result: { t: 'string', v: 'innocent' },
    });
    // Nothing spun while the pool sat idle between the two (a loop would burn the whole second).
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(700);
  });

  it('an unhandled promise rejection fails its own task as a script error and leaves the next task alone', async () => {
    const fetching = {
      fetch: { allow: [{ origin: slowOrigin }], allowPrivate: [new URL(slowOrigin).host] },
    };
    const { outcomes } = await inOnePool([
      { source: `Promise.reject(new Error('nobody caught me')); 'done'`, capabilities: {} },
      { source: `'next'`, capabilities: {} },
      // A rejection that happens only when a late answer arrives.
      {
        source: `fetch(${JSON.stringify(slowOrigin)}).then(() => { throw new Error('late rejection'); }); 'done early'`,
        capabilities: fetching,
      },
      { source: `'after the late one'`, capabilities: {} },
    ]);
    expect(outcomes[0]).toMatchObject({
      kind: 'error',
      name: 'SandboxOutputError',
      message: expect.stringMatching(/unhandled promise rejection.*nobody caught me/),
    });
    expect(outcomes[1]).toMatchObject({ kind: 'completed', result: { t: 'string', v: 'next' } });
    expect(outcomes[2]).toMatchObject({
      kind: 'completed',
      result: { t: 'string', v: 'done early' },
    });
    expect(outcomes[3]).toMatchObject({
      kind: 'completed',
      result: { t: 'string', v: 'after the late one' },
    });
  });
});

// ------------------------------------------------------------ end to end

describe('escape attempts end to end through the engine and a worker', () => {
  const topic = uniqueTopic('escape');
  let worker: TestWorker;
  let executorPids: number[];

  beforeAll(async () => {
    worker = await startTestWorker({
      policies: [
        testPolicy(topic, {
          limits: { memoryMb: 64, wallMs: 15_000, cpuMs: 5000 },
          capabilities: { console: {}, crypto: {} },
        }),
      ],
    });
    executorPids = worker.worker.executors.pids();
  });
  afterAll(() => worker?.stop());

  /** Every name the script reaches for to get out, as one multi-line script. */
  const ATTEMPTS = `${PROBE}
inspect('this', this);
inspect('execution.getVariable result', execution.getVariable('payload'));
inspect('BpmnError', new BpmnError('X'));
inspect('crypto error', caught(() => crypto.hash('md5', 'x')));
inspect('crypto value', crypto.getRandomValues(new Uint8Array(4)));
inspect('blocked call', caught(() => process.env));
inspect('secrets trap', caught(() => secrets.get('ESCAPE_CANARY')));
const sites = [];
Error.prepareStackTrace = (e, callSites) => { callSites.forEach((s) => { try { sites.push(s.getFunction()); sites.push(s.getThis()); } catch (err) {} }); return 'x'; };
crypto.hash({ toString() { new Error('p').stack; return 'sha256'; } }, 'x');
delete Error.prepareStackTrace;
sites.forEach((s, i) => inspect('frame ' + i, s));
(async () => {
  const imports = [];
  for (const specifier of ['fs', 'node:child_process']) {
    try { await import(specifier); imports.push('LOADED'); } catch (e) { imports.push(e.message); }
  }
  const payload = execution.getVariable('payload');
  execution.setVariable('echo', payload);
  await Promise.all(pendingProbes);
  return JSON.stringify({
    foreign: probe.foreign, handles: probe.handles, reached: probe.reached, inspected: probe.inspected.length,
    imports, wasm: typeof WebAssembly, sab: typeof SharedArrayBuffer,
    polluted: [({}).polluted, Object.prototype.polluted],
    env: (() => { try { return process.env.SANDBOX_ESCAPE_CANARY; } catch (e) { return e.name; } })(),
  });
})()
`;

  it('a deployed model that tries the known ways out reaches no host object, environment, file or network, and the worker counts it and goes on', async () => {
    const payloadText =
      '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"data":[1,2,3]}';
    const id = await runModel(
      {
        id: processId(topic, 'escape'),
        step: { kind: 'sandbox', topic, script: ATTEMPTS, resultVariable: 'report' },
      },
      { payload: { type: 'Json', value: payloadText } },
    );
    expect(await engine.settle(id, 45_000)).toBe('completed');
    const variables = await engine.historicVariables(id);
    const text = JSON.stringify(variables);
    expectNoCanary(text);
    const found = JSON.parse(String(variables['report']?.value)) as Record<string, unknown>;
    expect(found['foreign']).toEqual([]);
    expect(found['handles']).toEqual([]);
    expect(found['reached']).toEqual([]);
    expect(found['inspected']).toBeGreaterThan(7);
    expect(found['imports']).toEqual(['Not supported', 'Not supported']);
    expect(found['wasm']).toBe('undefined');
    expect(found['sab']).toBe('undefined');
    expect(found['polluted']).toEqual([null, null]);
    expect(found['env']).toBe('SandboxPolicyError');
    // The polluting keys travelled as data and came back intact.
    expect(variables['echo']).toEqual({ type: 'Json', value: payloadText });

    await taskDone(worker, id);
    expectNoCanary(worker.rawLog());
    const metrics = await worker.metrics();
    expect(
      metricValue(metrics, 'camunda_sandbox_blocked_calls_total', { topic, capability: 'process' }),
    ).toBeGreaterThan(0);
    expect(
      metricValue(metrics, 'camunda_sandbox_blocked_calls_total', { topic, capability: 'secrets' }),
    ).toBeGreaterThan(0);
    // No executor died on the way.
    expect(worker.worker.executors.pids()).toEqual(executorPids);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('a script that breaks the outcome reporting opens an incident with a clear message at once, and the next task completes', async () => {
    const brokenTopicId = processId(topic, 'broken');
    const id = await runModel({
      id: brokenTopicId,
      step: {
        kind: 'sandbox',
        topic,
        script: `Object.defineProperty(Object.prototype, 'toJSON', { get() { throw new Error('no outcome for you'); } });\n1`,
      },
    });
    expect(await engine.settle(id, 30_000)).toBe('incident');
    const [incident] = await engine.incidents(id);
    expect(incident?.incidentMessage).toMatch(
      /^SandboxOutputError: the script left an error outside its own code .*no outcome for you/,
    );
    const done = await taskDone(worker, id);
    expect(done['outcome']).toBe('failed');
    // Reported as the script's failure, not as a sandbox fault.
    expect(
      worker.logs.some(
        (l) => l.msg === 'sandbox fault while running a task' && l['taskId'] === done['taskId'],
      ),
    ).toBe(false);

    const benign = await runModel(
      {
        id: processId(topic, 'after'),
        step: {
          kind: 'sandbox',
          topic,
          script: 'execution.getVariable("n") * 2',
          resultVariable: 'doubled',
        },
      },
      { n: { type: 'Integer', value: 21 } },
    );
    expect(await engine.settle(benign, 30_000)).toBe('completed');
    expect((await engine.historicVariables(benign))['doubled']).toEqual({
      type: 'Integer',
      value: 42,
    });
    expect(worker.worker.executors.pids()).toEqual(executorPids);
  });
});
