import { SandboxError } from '../errors.ts';
import { fromCamunda, type TypedValue } from './camunda.ts';
import type { WireValue, WireVariables } from './wire.ts';

const CAMUNDA_TYPES = new Set([
  'string',
  'boolean',
  'integer',
  'short',
  'long',
  'double',
  'date',
  'json',
  'object',
  'null',
  'xml',
  'bytes',
  'file',
]);

function isTyped(value: unknown): value is TypedValue {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  const extra = Object.keys(record).filter(
    (k) => k !== 'type' && k !== 'value' && k !== 'valueInfo',
  );
  return (
    typeof record['type'] === 'string' &&
    CAMUNDA_TYPES.has(record['type'].toLowerCase()) &&
    'value' in record &&
    extra.length === 0
  );
}

// JSON.rawJSON (V8 11.4+) writes a bigint's digits into JSON unchanged; TypeScript's lib lacks it.
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

function plainToWire(name: string, value: unknown): WireValue {
  switch (typeof value) {
    case 'string':
      return { t: 'string', v: value };
    case 'boolean':
      return { t: 'boolean', v: value };
    case 'bigint':
      if (value < -(2n ** 63n) || value > 2n ** 63n - 1n) {
        throw new SandboxError(
          'SCRIPT_VARIABLE_INVALID',
          `variable '${name}': ${value} does not fit in a 64-bit Long`,
        );
      }
      return { t: 'long', v: value.toString() };
    case 'number':
      if (Number.isInteger(value) && value >= -2147483648 && value <= 2147483647)
        return { t: 'integer', v: value };
      if (Number.isSafeInteger(value)) return { t: 'long', v: String(value) };
      return { t: 'double', v: value };
    case 'object':
      if (value === null) return { t: 'null' };
      return {
        t: 'json',
        v: JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? rawJSON(v.toString()) : v)),
      };
    default:
      throw new SandboxError(
        'SCRIPT_VARIABLE_INVALID',
        `variable '${name}': a ${typeof value} is not a variable value`,
      );
  }
}

/** JSON.parse that turns integers beyond 2^53 into bigints instead of rounding them. */
export function parseJsonExact(text: string): unknown {
  return JSON.parse(text, (_key, value, context?: { source?: string }) => {
    if (
      typeof value === 'number' &&
      Number.isInteger(value) &&
      !Number.isSafeInteger(value) &&
      context?.source &&
      /^-?\d+$/.test(context.source)
    ) {
      return BigInt(context.source);
    }
    return value;
  });
}

/**
 * Variables for `camunda-sandbox run`, from a JSON object: each entry is
 * either a Camunda typed value as the REST API writes it
 * (`{"type": "Long", "value": 1}`) or a plain JSON value, typed as a script
 * setting it would be (objects and arrays become Json).
 */
export function variablesFromJson(text: string): WireVariables {
  let parsed: unknown;
  try {
    parsed = parseJsonExact(text);
  } catch (err) {
    throw new SandboxError(
      'SCRIPT_VARIABLE_INVALID',
      `the variables are not valid JSON: ${(err as Error).message}`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SandboxError(
      'SCRIPT_VARIABLE_INVALID',
      'the variables must be a JSON object of name to value',
    );
  }
  const out: WireVariables = {};
  for (const [name, value] of Object.entries(parsed)) {
    out[name] = isTyped(value)
      ? fromCamunda(name, normalizeTyped(value))
      : plainToWire(name, value);
  }
  return out;
}

function normalizeTyped(typed: TypedValue): TypedValue {
  // A bigint from the exact parse stands for the Long's digits.
  if (typeof typed.value === 'bigint') return { ...typed, value: typed.value.toString() };
  // The REST API wants Json serialized; a file written by hand may hold it parsed.
  const type = typed.type.toLowerCase();
  if (
    (type === 'json' || type === 'object') &&
    typed.value !== null &&
    typeof typed.value === 'object'
  ) {
    return {
      ...typed,
      value:
        plainToWire('', typed.value).t === 'json'
          ? (plainToWire('', typed.value) as { v: string }).v
          : '',
    };
  }
  return typed;
}
