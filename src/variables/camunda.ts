import { SandboxError } from '../errors.ts';
import type { WireValue, WireVariables } from './wire.ts';

/** A variable as Camunda's REST API writes and reads it. */
export interface TypedValue {
  type: string;
  value: unknown;
  valueInfo?: Record<string, unknown>;
}

export type TypedVariables = Record<string, TypedValue>;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Camunda's String column holds 4000 characters; longer text is stored as a serialized String. */
export const STRING_COLUMN_LIMIT = 4000;

function invalid(name: string, problem: string): SandboxError {
  return new SandboxError('SCRIPT_VARIABLE_INVALID', `variable '${name}': ${problem}`);
}

/** Camunda writes `2024-01-02T03:04:05.678+0000`; ISO-8601 wants the offset as `+00:00`. */
export function camundaDateToIso(name: string, text: string): string {
  const normalized = text.replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const time = Date.parse(normalized);
  if (Number.isNaN(time)) throw invalid(name, `'${text}' is not a date`);
  return new Date(time).toISOString();
}

/** The engine refuses a trailing `Z`: it wants `yyyy-MM-dd'T'HH:mm:ss.SSSZ`. */
export function isoToCamundaDate(iso: string): string {
  return iso.replace(/Z$/, '+0000');
}

function exactInteger(name: string, value: unknown): string {
  const text = typeof value === 'string' ? value.trim() : JSON.stringify(value);
  if (typeof text !== 'string' || !/^-?\d+$/.test(text)) {
    throw invalid(name, `${String(value)} is not an integer`);
  }
  const big = BigInt(text);
  if (big < INT64_MIN || big > INT64_MAX) throw invalid(name, `${text} does not fit in a Long`);
  return big.toString();
}

function isJsonFormat(valueInfo: Record<string, unknown> | undefined): boolean {
  const format = valueInfo?.['serializationDataFormat'];
  return typeof format === 'string' && format.startsWith('application/json');
}

function expectType<T>(name: string, value: unknown, kind: string, ok: boolean): T {
  if (!ok) throw invalid(name, `expected a ${kind} value, got ${JSON.stringify(value)}`);
  return value as T;
}

/** Camunda → wire: the variable as the script will see it (decoded inside the isolate). */
export function fromCamunda(name: string, typed: TypedValue): WireValue {
  const type = typed.type.charAt(0).toLowerCase() + typed.type.slice(1);
  const { value } = typed;
  if (value === null || value === undefined) {
    return type === 'object' || type === 'json' || type === 'null' || isScalarType(type)
      ? { t: 'null' }
      : { t: 'unsupported', type: typed.type };
  }

  switch (type) {
    case 'string':
    case 'xml':
      return { t: 'string', v: expectType(name, value, 'string', typeof value === 'string') };
    case 'boolean':
      return { t: 'boolean', v: expectType(name, value, 'boolean', typeof value === 'boolean') };
    case 'integer':
    case 'short':
      return {
        t: 'integer',
        v: expectType(name, value, 'integer', Number.isInteger(value)),
      };
    case 'long':
      return { t: 'long', v: exactInteger(name, value) };
    case 'double':
      return { t: 'double', v: expectType(name, value, 'number', typeof value === 'number') };
    case 'date':
      return {
        t: 'date',
        v: camundaDateToIso(name, expectType(name, value, 'date', typeof value === 'string')),
      };
    case 'json':
      return { t: 'json', v: jsonTextOf(name, value) };
    case 'object':
      if (isJsonFormat(typed.valueInfo)) return { t: 'json', v: jsonTextOf(name, value) };
      return {
        t: 'unsupported',
        type: `Object (${String(typed.valueInfo?.['serializationDataFormat'])})`,
      };
    default:
      return { t: 'unsupported', type: typed.type };
  }
}

function isScalarType(type: string): boolean {
  return ['string', 'boolean', 'integer', 'short', 'long', 'double', 'date', 'xml'].includes(type);
}

function jsonTextOf(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalid(name, 'a serialized Json value must be a string');
  try {
    JSON.parse(value);
  } catch {
    throw invalid(name, 'the stored Json is not valid JSON');
  }
  return value;
}

/** Wire → Camunda: the typed value to send to the engine. */
export function toCamunda(name: string, wire: WireValue): TypedValue {
  switch (wire.t) {
    case 'string':
      if (wire.v.length > STRING_COLUMN_LIMIT) {
        // A serialized java.lang.String has no column limit and reads back as a String.
        return {
          type: 'Object',
          value: JSON.stringify(wire.v),
          valueInfo: {
            objectTypeName: 'java.lang.String',
            serializationDataFormat: 'application/json',
          },
        };
      }
      return { type: 'String', value: wire.v };
    case 'boolean':
      return { type: 'Boolean', value: wire.v };
    case 'integer':
      return { type: 'Integer', value: wire.v };
    case 'long': {
      // JSON numbers beyond 2^53 are rounded by every JSON encoder on the way;
      // the engine accepts the exact digits as a string.
      const asNumber = Number(wire.v);
      return {
        type: 'Long',
        value: Number.isSafeInteger(asNumber) ? asNumber : exactInteger(name, wire.v),
      };
    }
    case 'double':
      if (!Number.isFinite(wire.v)) throw invalid(name, `${wire.v} is not a finite number`);
      return { type: 'Double', value: wire.v };
    case 'date':
      // The engine answers 400 for a year past 9999 and stores a negative one as a positive one.
      if (!/^\d{4}-/.test(wire.v) || wire.v.startsWith('0000-')) {
        throw invalid(
          name,
          `${wire.v} is outside the years 0001 to 9999 that a Camunda Date can hold`,
        );
      }
      return { type: 'Date', value: isoToCamundaDate(wire.v) };
    case 'json':
      return { type: 'Json', value: wire.v };
    case 'null':
      return { type: 'Null', value: null };
    case 'unsupported':
      throw invalid(name, `type ${wire.type} cannot be written by a script`);
  }
}

export function fromCamundaAll(variables: TypedVariables): WireVariables {
  const out: WireVariables = {};
  for (const [name, typed] of Object.entries(variables)) out[name] = fromCamunda(name, typed);
  return out;
}

export function toCamundaAll(variables: WireVariables): TypedVariables {
  const out: TypedVariables = {};
  for (const [name, wire] of Object.entries(variables)) out[name] = toCamunda(name, wire);
  return out;
}
