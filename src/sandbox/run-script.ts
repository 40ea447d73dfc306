import { createHash } from 'node:crypto';

import ivm from 'isolated-vm';

import { CapabilityRefusal, type CapabilityHost } from '../capabilities/capability.ts';
import { BLOCKED_CAPABILITY_LABELS, CAPABILITIES } from '../capabilities/registry.ts';
import { secretsCapability } from '../capabilities/secrets.ts';
import { errorMessage } from '../errors.ts';
import { ExecutionGuard } from './guard.ts';
import type { IsolatePool } from './isolate-pool.ts';
import type { ExecutionEvent, ScriptJob } from './job.ts';
import { isolateOutcomeSchema, type ScriptOutcome } from './outcome.ts';
import { preludeInput } from './prelude-input.ts';
import { Redactor } from './redact.ts';

type Envelope = { value: unknown } | { refused: string } | { error: string };

const KNOWN_LABELS = new Set(BLOCKED_CAPABILITY_LABELS);

/** Room for the outcome's own fields beside the variables and result it carries. */
const OUTCOME_ENVELOPE_BYTES = 4096;

/**
 * Runs one script in a fresh context of a pooled isolate, under the job's
 * limits, and returns its outcome. Never throws for anything the script does;
 * throws only when the sandbox itself is broken.
 */
export async function runScript(
  job: ScriptJob,
  pool: IsolatePool,
  emit: (event: ExecutionEvent) => void,
): Promise<ScriptOutcome> {
  const inputJson = preludeInput(job);
  if (inputJson === undefined) {
    return {
      kind: 'rejected',
      code: 'SCRIPT_INPUT_TOO_LARGE',
      message: `the task's variables are over the policy's input limit of ${job.limits.inputBytes} bytes`,
    };
  }

  const aborter = new AbortController();
  const redactor = new Redactor();
  const blocked = summedBlockedCalls(emit);
  const hosts = createHosts(job, aborter.signal, (level, text) =>
    emit({ kind: 'console', level, text: redactor.redact(text) }),
  );
  const pooled = await pool.acquire(job.limits.memoryMb);
  const { isolate } = pooled;
  let context: ivm.Context | undefined;
  // References pin their context in the isolate until released.
  const references: ivm.Reference[] = [];
  let reusable = false;
  let scriptStarted = false;
  // An async answer the script did not await arrives after the task, into
  // whatever the isolate runs next, outside this task's limits: an isolate
  // that served an async call is never reused.
  let asyncCalls = 0;
  const guard = new ExecutionGuard(isolate, job.limits.wallMs, job.limits.cpuMs);

  try {
    // Script state lives in the context: a fresh one per task.
    const syntaxError = await checkSyntax(isolate, job);
    if (syntaxError !== undefined) {
      reusable = true;
      return { kind: 'rejected', code: 'SCRIPT_SYNTAX_ERROR', message: syntaxError };
    }

    context = await isolate.createContext();
    const install = await pooled.prelude.run(context, { reference: true });
    references.push(install);
    const run = await install.apply(
      undefined,
      [...hostCallbacks(hosts, redactor, blocked.emit, () => asyncCalls++), inputJson],
      { result: { reference: true } },
    );
    references.push(run);
    // From here the script shares the realm that writes the outcome: if `run`
    // rejects (an unhandled promise rejection, or an Object.prototype.toJSON
    // that throws while the outcome is written), the script did it.
    scriptStarted = true;
    const text = await run.apply(undefined, [job.source, job.filename], {
      result: { promise: true, copy: true },
    });
    reusable = true;
    return redactor.redactOutcome(parseOutcome(text, job.limits.outputBytes));
  } catch (err) {
    if (guard.breach)
      return { kind: 'timeout', limit: guard.breach.limit, limitMs: guard.breach.limitMs };
    if (isolate.isDisposed || (!scriptStarted && /memory limit/i.test(errorMessage(err)))) {
      return { kind: 'memoryLimit', limitMb: job.limits.memoryMb };
    }
    if (scriptStarted) {
      return redactor.redactOutcome({
        kind: 'error',
        name: 'SandboxOutputError',
        message: `the script left an error outside its own code (an unhandled promise rejection, or a built-in such as Object.prototype.toJSON made to throw): ${errorMessage(err)}`,
        policyViolation: false,
        outputTooLarge: true,
      });
    }
    throw err;
  } finally {
    guard[Symbol.dispose]();
    aborter.abort();
    for (const host of hosts.values()) host.dispose?.();
    if (!isolate.isDisposed) {
      for (const reference of references) reference.release();
      context?.release();
    }
    pool.release(pooled, reusable && !guard.breach && asyncCalls === 0);
    blocked.flush();
  }
}

/** Blocked calls of one task reported one by one; past these, summed per capability. */
const BLOCKED_EVENTS_PER_TASK = 100;

/**
 * A script can touch a trap in a loop: one event per call would flood the
 * executor's IPC channel (its queue grows without bound and starves the
 * limits' timers) and the worker's log. Every call is still counted.
 */
function summedBlockedCalls(emit: (event: ExecutionEvent) => void) {
  let reported = 0;
  const summed = new Map<string, { name: string; count: number }>();
  return {
    emit(event: ExecutionEvent): void {
      if (event.kind !== 'blocked' || reported < BLOCKED_EVENTS_PER_TASK) {
        if (event.kind === 'blocked') reported += 1;
        emit(event);
        return;
      }
      const entry = summed.get(event.capability);
      if (entry) entry.count += 1;
      else summed.set(event.capability, { name: event.name, count: 1 });
    },
    flush(): void {
      for (const [capability, { name, count }] of summed)
        emit({ kind: 'blocked', capability, name, count });
      summed.clear();
    },
  };
}

/** Sources known to parse, by hash: a syntax check costs a compile, once per script. */
const PARSED = new Set<string>();
const PARSED_LIMIT = 2000;

/**
 * Compiles the script once to find syntax errors with their line and column:
 * the prelude runs the script through eval, whose SyntaxError has no location.
 */
async function checkSyntax(isolate: ivm.Isolate, job: ScriptJob): Promise<string | undefined> {
  const key = createHash('sha256')
    .update(job.filename)
    .update('\0')
    .update(job.source)
    .digest('hex');
  if (PARSED.has(key)) return undefined;
  try {
    const script = await isolate.compileScript(job.source, { filename: job.filename });
    script.release();
  } catch (err) {
    if (err instanceof SyntaxError || /^SyntaxError/.test(String((err as Error).stack))) {
      return `SyntaxError: ${(err as Error).message}`;
    }
    throw err;
  }
  if (PARSED.size >= PARSED_LIMIT) PARSED.clear();
  PARSED.add(key);
  return undefined;
}

function createHosts(
  job: ScriptJob,
  signal: AbortSignal,
  log: (level: 'debug' | 'info' | 'warn' | 'error', text: string) => void,
): Map<string, CapabilityHost> {
  const hosts = new Map<string, CapabilityHost>();
  for (const [name, settings] of Object.entries(job.capabilities)) {
    const capability = CAPABILITIES.get(name);
    if (!capability) continue;
    const context = { taskId: job.taskId, topic: job.topic, policy: job.policy, log, signal };
    hosts.set(name, capability.createHost(settings, context));
  }
  return hosts;
}

/** The three callbacks the prelude receives. Arguments and results are copies. */
function hostCallbacks(
  hosts: Map<string, CapabilityHost>,
  redactor: Redactor,
  emit: (event: ExecutionEvent) => void,
  onAsyncCall: () => void,
): (ivm.Callback | ivm.Reference)[] {
  const refuse = (capability: string, name: string, err: unknown): Envelope => {
    emit({ kind: 'blocked', capability, name });
    return { refused: redactor.redact(errorMessage(err)) };
  };
  const settle = (capability: string, method: string, err: unknown): Envelope => {
    if (err instanceof CapabilityRefusal) return refuse(capability, `${capability}.${method}`, err);
    return { error: redactor.redact(errorMessage(err)) };
  };
  const track = (capability: string, host: CapabilityHost) => {
    if (capability === 'secrets') redactor.track(secretsCapability.handedOut(host));
  };

  const call = (capability: unknown, method: unknown, args: unknown): Envelope => {
    const host = hosts.get(String(capability));
    if (!host?.call || !Array.isArray(args))
      return { error: `${String(capability)} has no such method` };
    try {
      const value = host.call(String(method), args);
      track(String(capability), host);
      return { value };
    } catch (err) {
      return settle(String(capability), String(method), err);
    }
  };

  const callAsync = async (
    capability: unknown,
    method: unknown,
    args: unknown,
  ): Promise<Envelope> => {
    onAsyncCall();
    const host = hosts.get(String(capability));
    if (!host?.callAsync || !Array.isArray(args))
      return { error: `${String(capability)} has no such method` };
    try {
      return { value: await host.callAsync(String(method), args) };
    } catch (err) {
      return settle(String(capability), String(method), err);
    }
  };

  // The script learns nothing from it, and a label outside the known set
  // cannot reach the metrics.
  const notify = (kind: unknown, capability: unknown, name: unknown): void => {
    if (kind !== 'blocked') return;
    const label = String(capability);
    emit({
      kind: 'blocked',
      capability: KNOWN_LABELS.has(label) ? label : 'unknown',
      name: String(name).slice(0, 64),
    });
  };

  return [
    new ivm.Callback(call),
    // A Callback cannot hand back a promise; a Reference to the function can.
    new ivm.Reference(callAsync),
    // Synchronous although it answers nothing: a script touching a trap in a
    // loop then waits for each call, instead of queueing them faster than the
    // executor's main thread (where the limits' timers run) can take them.
    new ivm.Callback(notify),
  ];
}

/** The prelude's answer is untrusted text: bounded, parsed and checked here. */
function parseOutcome(text: unknown, outputBytes: number): ScriptOutcome {
  const fail = (message: string): ScriptOutcome => ({
    kind: 'error',
    name: 'SandboxOutputError',
    message,
    policyViolation: false,
    outputTooLarge: true,
  });
  if (typeof text !== 'string') return fail('the script produced no outcome');
  // The prelude counts characters; the limit is in bytes (UTF-8), checked here.
  // The envelope adds a little beside the variables themselves.
  if (Buffer.byteLength(text) > outputBytes + OUTCOME_ENVELOPE_BYTES) {
    return fail(`the script's output is over the policy's limit of ${outputBytes} bytes`);
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail('the script produced an outcome that is not JSON');
  }
  const checked = isolateOutcomeSchema.safeParse(parsed);
  if (!checked.success)
    return fail(`the script produced a malformed outcome: ${checked.error.issues[0]?.message}`);
  return checked.data;
}
