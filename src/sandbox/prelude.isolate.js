// Runs INSIDE the isolate, once in every fresh context, before the script.
//
// This file is plain JavaScript read as text by sandbox/isolate-pool.ts and
// evaluated as one function expression, in a scope that also holds
// `defineSpin` from spin.isolate.js. Nothing from the host's realm is ever
// handed in: the host passes two isolated-vm callbacks and one reference to a
// host function (arguments and results always copied) and one JSON string.
// The function returns `run`, which the host calls with the script source and which resolves to the task's
// outcome as a JSON string. The host re-validates that string: whatever this
// file produces is treated as untrusted, since the script shares its realm.
(function install(hostCall, hostCallAsync, hostNotify, inputJson) {
  'use strict';

  // Primordials, captured before the script can replace them.
  const global = globalThis;
  const { parse: jsonParse, stringify: jsonStringify, rawJSON, isRawJSON } = JSON;
  const { defineProperty, freeze, getPrototypeOf, keys, create, hasOwn } = Object;
  const { isArray } = Array;
  const { isFinite, isInteger, isSafeInteger } = Number;
  const DateCtor = Date;
  const dateGetTime = Date.prototype.getTime;
  const dateToISOString = Date.prototype.toISOString;
  const reflectApply = Reflect.apply;
  const regExpTest = RegExp.prototype.test;
  const LONG_DIGITS = /\d{16}/;
  const INTEGER_SOURCE = /^-?\d+$/;
  const ProxyCtor = Proxy;
  const WeakSetCtor = WeakSet;
  const weakSetHas = WeakSet.prototype.has;
  const weakSetAdd = WeakSet.prototype.add;
  const StringCtor = String;
  const BigIntCtor = BigInt;
  const indirectEval = eval;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const stringSplit = String.prototype.split;
  const stringIncludes = String.prototype.includes;
  const arrayFilter = Array.prototype.filter;
  const arrayJoin = Array.prototype.join;
  const PromiseResolve = Promise.resolve.bind(Promise);
  const INT32_MIN = -2147483648;
  const INT32_MAX = 2147483647;
  const INT64_MIN = -(2n ** 63n);
  const INT64_MAX = 2n ** 63n - 1n;
  const PRELUDE_MARK = 'sandbox-prelude';

  const input = jsonParse(inputJson);
  const meta = input.meta;
  const policyName = meta.policy;

  const policyErrors = new WeakSetCtor();
  const bpmnErrors = new WeakSetCtor();

  // ---------------------------------------------------------------- errors

  class SandboxPolicyError extends ErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'SandboxPolicyError';
      reflectApply(weakSetAdd, policyErrors, [this]);
    }
  }

  class BpmnError extends ErrorCtor {
    constructor(code, message, variables) {
      if (code === undefined || code === null || StringCtor(code) === '') {
        throw new TypeErrorCtor('BpmnError needs an error code as its first argument');
      }
      super(message === undefined ? StringCtor(code) : StringCtor(message));
      this.name = 'BpmnError';
      this.code = StringCtor(code);
      this.variables = variables === undefined ? {} : variables;
      reflectApply(weakSetAdd, bpmnErrors, [this]);
    }
  }

  class VariableError extends TypeErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'VariableError';
    }
  }

  // ------------------------------------------------------ host calls (copies)

  function unwrapEnvelope(capability, envelope) {
    if (envelope !== null && typeof envelope === 'object') {
      if (hasOwn(envelope, 'value')) return envelope.value;
      if (hasOwn(envelope, 'refused')) throw new SandboxPolicyError(StringCtor(envelope.refused));
      if (hasOwn(envelope, 'error')) throw new ErrorCtor(StringCtor(envelope.error));
    }
    throw new ErrorCtor(`capability '${capability}' returned no answer`);
  }

  function callFor(capability) {
    return (method, ...args) => unwrapEnvelope(capability, hostCall(capability, method, args));
  }

  // hostCallAsync is an isolated-vm Reference to a host function (a Callback
  // cannot return a promise); arguments and the answer are copied.
  const referenceApply = hostCallAsync.apply;
  function callAsyncFor(capability) {
    return async (method, ...args) => {
      const envelope = await reflectApply(referenceApply, hostCallAsync, [
        undefined,
        [capability, method, args],
        { arguments: { copy: true }, result: { promise: true, copy: true } },
      ]);
      return unwrapEnvelope(capability, envelope);
    };
  }

  // ------------------------------------------------------ blocked-call traps

  // A trap stands where a host object would be. Any use of it (property read,
  // call, construction, ...) reports the capability and throws. `typeof` is
  // the one thing that does not count: it cannot reach anything.
  function makeTrap(name, capability) {
    const reason =
      name === capability && !hasOwn(input.capabilityNames, name)
        ? `${name} is a host object, which sandboxed scripts cannot reach`
        : `policy '${policyName}' does not grant capability '${capability}'`;
    const refuse = () => {
      hostNotify('blocked', capability, name);
      throw new SandboxPolicyError(`${name} is not available in the sandbox: ${reason}`);
    };
    const handler = {
      get: refuse,
      set: refuse,
      has: refuse,
      apply: refuse,
      construct: refuse,
      ownKeys: refuse,
      getOwnPropertyDescriptor: refuse,
      defineProperty: refuse,
      deleteProperty: refuse,
      getPrototypeOf: refuse,
      setPrototypeOf: refuse,
    };
    return new ProxyCtor(function blocked() {}, freeze(handler));
  }

  function refuser(name, capability) {
    return () => {
      hostNotify('blocked', capability, name);
      throw new SandboxPolicyError(
        `${name} is not available in the sandbox: the engine's services are out of reach`,
      );
    };
  }

  function installGlobal(name, value) {
    defineProperty(global, name, { value, writable: true, configurable: true, enumerable: false });
  }

  // ------------------------------------------------------- variables: decode

  // Integers in Json beyond 2^53 would be rounded by a plain parse; the source
  // text of each number lets us keep them exact as bigints.
  function exactReviver(_key, value, context) {
    if (typeof value === 'number' && isInteger(value) && !isSafeInteger(value) && context) {
      const source = context.source;
      if (typeof source === 'string' && reflectApply(regExpTest, INTEGER_SOURCE, [source])) {
        return BigIntCtor(source);
      }
    }
    return value;
  }

  function decode(name, wire) {
    switch (wire.t) {
      case 'string':
      case 'boolean':
      case 'integer':
      case 'double':
        return wire.v;
      case 'long': {
        const asNumber = +wire.v;
        return isSafeInteger(asNumber) ? asNumber : BigIntCtor(wire.v);
      }
      case 'date':
        return new DateCtor(wire.v);
      case 'json':
        // The reviver costs; only a literal of 16+ digits can need it.
        return reflectApply(regExpTest, LONG_DIGITS, [wire.v])
          ? jsonParse(wire.v, exactReviver)
          : jsonParse(wire.v);
      case 'null':
        return null;
      default:
        throw new VariableError(
          `variable '${name}' has Camunda type ${wire.type}, which scripts cannot read`,
        );
    }
  }

  // ------------------------------------------------------- variables: encode

  function isDate(value) {
    try {
      reflectApply(dateGetTime, value, []);
      return true;
    } catch {
      return false;
    }
  }

  function isPlainObject(value) {
    const proto = getPrototypeOf(value);
    return proto === null || proto === Object.prototype;
  }

  function describe(value) {
    if (value === null) return 'null';
    if (typeof value !== 'object') return typeof value;
    if (isArray(value)) return 'an array';
    const proto = getPrototypeOf(value);
    const ctor = proto && hasOwn(proto, 'constructor') ? proto.constructor : undefined;
    return ctor && typeof ctor.name === 'string' && ctor.name ? `a ${ctor.name}` : 'an object';
  }

  function jsonText(name, value) {
    const replacer = function (key, item) {
      const where = key === '' ? `variable '${name}'` : `variable '${name}' (key '${key}')`;
      switch (typeof item) {
        case 'bigint':
          return rawJSON(StringCtor(item));
        case 'number':
          if (!isFinite(item))
            throw new VariableError(`${where}: ${item} cannot be stored in Json`);
          return item;
        case 'function':
        case 'symbol':
          throw new VariableError(`${where}: a ${typeof item} cannot be stored in Json`);
        case 'object':
          if (item !== null && !isArray(item) && !isPlainObject(item) && !isRawJSON(item)) {
            throw new VariableError(`${where}: ${describe(item)} cannot be stored in Json`);
          }
          return item;
        default:
          return item;
      }
    };
    try {
      return jsonStringify(value, replacer);
    } catch (err) {
      if (err instanceof VariableError) throw err;
      throw new VariableError(`variable '${name}': ${errorText(err)}`);
    }
  }

  function encode(name, value) {
    switch (typeof value) {
      case 'undefined':
        return undefined;
      case 'string':
        return { t: 'string', v: value };
      case 'boolean':
        return { t: 'boolean', v: value };
      case 'number':
        if (!isFinite(value)) {
          throw new VariableError(`variable '${name}': ${value} is not a finite number`);
        }
        if (isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) {
          return { t: 'integer', v: value === 0 ? 0 : value };
        }
        if (isSafeInteger(value)) return { t: 'long', v: StringCtor(value) };
        return { t: 'double', v: value };
      case 'bigint':
        if (value < INT64_MIN || value > INT64_MAX) {
          throw new VariableError(`variable '${name}': ${value} does not fit in a 64-bit Long`);
        }
        return { t: 'long', v: StringCtor(value) };
      case 'object':
        if (value === null) return { t: 'null' };
        if (isDate(value)) {
          if (reflectApply(dateGetTime, value, []) !== reflectApply(dateGetTime, value, [])) {
            throw new VariableError(`variable '${name}': Invalid Date`);
          }
          return { t: 'date', v: reflectApply(dateToISOString, value, []) };
        }
        if (isArray(value) || isPlainObject(value)) return { t: 'json', v: jsonText(name, value) };
        if (spin.isNode(value)) return encode(name, spin.valueOf(value));
        throw new VariableError(
          `variable '${name}': ${describe(value)} is not a supported variable type ` +
            '(use a string, number, bigint, boolean, Date, null, plain object or array)',
        );
      default:
        throw new VariableError(`variable '${name}': a ${typeof value} cannot be stored`);
    }
  }

  function encodeAll(values) {
    const out = create(null);
    for (const name of keys(values)) {
      const wire = encode(name, values[name]);
      if (wire !== undefined) out[name] = wire;
    }
    return out;
  }

  function checkName(name) {
    if (typeof name !== 'string' || name === '') {
      throw new TypeErrorCtor('a variable name must be a non-empty string');
    }
    return name;
  }

  function checkSettable(name, value) {
    if (typeof value === 'function' || typeof value === 'symbol') {
      throw new VariableError(`variable '${name}': a ${typeof value} cannot be stored`);
    }
  }

  // ------------------------------------------------------------------ Spin

  const spin = defineSpin({
    jsonParse,
    exactReviver,
    jsonText,
    TypeErrorCtor,
    ErrorCtor,
    StringCtor,
  });

  // ------------------------------------------------------------- execution

  const inputs = create(null);
  for (const name of keys(input.variables)) inputs[name] = input.variables[name];
  const decoded = create(null);
  const processSets = create(null);
  const localSets = create(null);

  function readInput(name) {
    if (!hasOwn(inputs, name)) return null;
    if (!hasOwn(decoded, name)) decoded[name] = decode(name, inputs[name]);
    return decoded[name];
  }

  function lookup(name) {
    if (hasOwn(localSets, name)) return localSets[name];
    if (hasOwn(processSets, name)) return processSets[name];
    return readInput(name);
  }

  function allNames() {
    const names = create(null);
    for (const source of [inputs, processSets, localSets]) {
      for (const name of keys(source)) names[name] = true;
    }
    return keys(names);
  }

  const execution = freeze({
    getVariable: (name) => lookup(checkName(name)),
    getVariableLocal: (name) => lookup(checkName(name)),
    getVariableTyped: (name) => lookup(checkName(name)),
    hasVariable: (name) => {
      const key = checkName(name);
      return hasOwn(inputs, key) || hasOwn(processSets, key) || hasOwn(localSets, key);
    },
    hasVariableLocal: (name) => {
      const key = checkName(name);
      return hasOwn(localSets, key) || hasOwn(inputs, key);
    },
    getVariables: () => {
      const out = {};
      for (const name of allNames()) out[name] = lookup(name);
      return out;
    },
    getVariablesLocal: () => {
      const out = {};
      for (const name of allNames()) out[name] = lookup(name);
      return out;
    },
    getVariableNames: () => allNames(),
    setVariable: (name, value) => {
      checkSettable(checkName(name), value);
      processSets[name] = value;
    },
    setVariableLocal: (name, value) => {
      checkSettable(checkName(name), value);
      localSets[name] = value;
    },
    removeVariable: (name) => {
      throw new ErrorCtor(
        `removeVariable('${StringCtor(name)}') is not supported in the sandbox: completing an ` +
          'external task cannot delete variables; set the variable to null instead',
      );
    },
    getId: () => meta.executionId,
    getProcessInstanceId: () => meta.processInstanceId,
    getProcessDefinitionId: () => meta.processDefinitionId,
    getProcessDefinitionKey: () => meta.processDefinitionKey,
    getActivityId: () => meta.activityId,
    getCurrentActivityId: () => meta.activityId,
    getActivityInstanceId: () => meta.activityInstanceId,
    getBusinessKey: () => meta.businessKey,
    getProcessBusinessKey: () => meta.businessKey,
    getTenantId: () => meta.tenantId,
    getTopicName: () => meta.topicName,
    // The engine's Java services: the most direct way out of a JVM script.
    getProcessEngineServices: refuser('execution.getProcessEngineServices', 'engineServices'),
    getProcessEngine: refuser('execution.getProcessEngine', 'engineServices'),
  });

  // -------------------------------------------------- the script's globals

  // Names a script reaches for to escape: Node's and the JVM script engines'.
  for (const [name, capability] of input.traps) installGlobal(name, makeTrap(name, capability));

  for (const name of keys(input.capabilities)) {
    const shim = indirectEval(`(${input.capabilities[name]})`);
    installGlobal(name, shim(callFor(name), callAsyncFor(name)));
  }
  if (hasOwn(input.capabilities, 'console')) installGlobal('print', global.console.log);

  // Not present at all: WebAssembly's memory escapes the isolate's limit, and
  // shared memory with Atomics.wait could park the thread outside our CPU clock.
  // FinalizationRegistry's callbacks run whenever the collector says, also
  // after the task, in the pooled isolate, outside every limit (and on the
  // next task's clock): they would outlive the script.
  for (const name of ['WebAssembly', 'SharedArrayBuffer', 'Atomics', 'FinalizationRegistry'])
    delete global[name];

  installGlobal('execution', execution);
  installGlobal('S', spin.S);
  installGlobal('BpmnError', BpmnError);
  installGlobal('SandboxPolicyError', SandboxPolicyError);

  // --------------------------------------------------------------- outcome

  function errorText(err) {
    try {
      if (err !== null && typeof err === 'object' && typeof err.message === 'string') {
        return err.message;
      }
      return StringCtor(err);
    } catch {
      return 'an error that cannot be printed';
    }
  }

  function scriptStack(err) {
    try {
      const stack = err !== null && typeof err === 'object' ? err.stack : undefined;
      if (typeof stack !== 'string') return undefined;
      const lines = reflectApply(stringSplit, stack, ['\n']);
      const kept = reflectApply(arrayFilter, lines, [
        (line) =>
          !reflectApply(stringIncludes, line, [PRELUDE_MARK]) &&
          !reflectApply(stringIncludes, line, ['at eval (<anonymous>)']),
      ]);
      return reflectApply(arrayJoin, kept, ['\n']);
    } catch {
      return undefined;
    }
  }

  function errorName(err) {
    try {
      const name = err !== null && typeof err === 'object' ? err.name : undefined;
      return typeof name === 'string' ? name : typeof err;
    } catch {
      return 'Error';
    }
  }

  function thrownOutcome(err) {
    if (err !== null && typeof err === 'object' && reflectApply(weakSetHas, bpmnErrors, [err])) {
      const variables = encodeAll({ ...processSets, ...err.variables });
      return { kind: 'bpmnError', code: err.code, message: errorText(err), variables };
    }
    const outcome = {
      kind: 'error',
      name: errorName(err),
      message: errorText(err),
      policyViolation:
        err !== null && typeof err === 'object' && reflectApply(weakSetHas, policyErrors, [err]),
    };
    const stack = scriptStack(err);
    if (stack !== undefined) outcome.stack = stack;
    return outcome;
  }

  function serialize(outcome) {
    const text = jsonStringify(outcome);
    if (text.length > meta.outputLimit) {
      return jsonStringify({
        kind: 'error',
        name: 'OutputTooLarge',
        message: `the script's output is ${text.length} characters, over the policy's limit of ${meta.outputLimit}`,
        policyViolation: false,
        outputTooLarge: true,
      });
    }
    return text;
  }

  function settle(describeOutcome) {
    let outcome;
    try {
      outcome = describeOutcome();
    } catch (err) {
      outcome = thrownOutcome(err);
    }
    try {
      return serialize(outcome);
    } catch (err) {
      return serialize(thrownOutcome(err));
    }
  }

  async function run(source, filename) {
    let completion;
    try {
      completion = indirectEval(`${source}\n//# sourceURL=${filename}`);
      if (
        completion !== null &&
        (typeof completion === 'object' || typeof completion === 'function')
      ) {
        const then = completion.then;
        if (typeof then === 'function') completion = await PromiseResolve(completion);
      }
    } catch (err) {
      return settle(() => thrownOutcome(err));
    }
    return settle(() => ({
      kind: 'completed',
      // Without a resultVariable the value is dropped, so an unstorable one
      // (a Map, a function) must not fail the task.
      result: meta.wantsResult ? encode('result', completion) : undefined,
      variables: encodeAll(processSets),
      localVariables: encodeAll(localSets),
    }));
  }

  return run;
});
