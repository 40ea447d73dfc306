// DESIGN.md "Variables", each row both ways: the script half runs in the real
// sandbox (isolate prelude), the host half is variables/camunda.ts and
// variables/plain.ts, which the worker and `run` put around it.
import { afterAll, describe, expect, it } from 'vitest';

import { isSandboxError } from '../../src/errors.ts';
import {
  fromCamunda,
  fromCamundaAll,
  STRING_COLUMN_LIMIT,
  toCamunda,
  toCamundaAll,
  type TypedValue,
  type TypedVariables,
} from '../../src/variables/camunda.ts';
import { parseJsonExact, variablesFromJson } from '../../src/variables/plain.ts';
import type { WireValue, WireVariables } from '../../src/variables/wire.ts';
import { expectKind, newPool, run } from './sandbox-support.ts';

const pool = newPool();
afterAll(() => pool.dispose());

/** The script sets `amount` to the JavaScript expression; returns what leaves the isolate. */
async function scriptSets(expression: string): Promise<WireVariables> {
  const { outcome } = await run(pool, `execution.setVariable('amount', ${expression});`);
  return expectKind(outcome, 'completed').variables;
}

/** Runs `check` (an expression over `v`, the variable as the script reads it); resolves to what it found. */
async function scriptReads(typed: TypedValue, check: string): Promise<WireValue | undefined> {
  const source = [
    `const v = execution.getVariable('input');`,
    `const ok = (${check});`,
    `ok === true ? true : 'got ' + (v instanceof Date ? 'Date ' + v.toISOString() : typeof v + ' ' + String(v));`,
  ].join('\n');
  const { outcome } = await run(pool, source, {
    variables: { input: fromCamunda('input', typed) },
  });
  return expectKind(outcome, 'completed').result;
}

function expectVariableError(fn: () => unknown, ...fragments: string[]): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(isSandboxError(thrown), `expected a SandboxError, got ${String(thrown)}`).toBe(true);
  expect((thrown as { code: string }).code).toBe('SCRIPT_VARIABLE_INVALID');
  for (const fragment of fragments) expect((thrown as Error).message).toContain(fragment);
}

const CAMUNDA_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$/;

describe('JavaScript to Camunda: what a script sets is sent with the type of the table', () => {
  const rows: [string, string, WireValue, TypedValue][] = [
    [
      'a string becomes a String',
      `'Müller & Co'`,
      { t: 'string', v: 'Müller & Co' },
      { type: 'String', value: 'Müller & Co' },
    ],
    ['an empty string stays a String', `''`, { t: 'string', v: '' }, { type: 'String', value: '' }],
    ['true becomes a Boolean', 'true', { t: 'boolean', v: true }, { type: 'Boolean', value: true }],
    [
      'false becomes a Boolean',
      'false',
      { t: 'boolean', v: false },
      { type: 'Boolean', value: false },
    ],
    [
      'a small integer becomes an Integer',
      '42',
      { t: 'integer', v: 42 },
      { type: 'Integer', value: 42 },
    ],
    [
      '2^31-1 is still an Integer',
      '2147483647',
      { t: 'integer', v: 2147483647 },
      { type: 'Integer', value: 2147483647 },
    ],
    [
      '-2^31 is still an Integer',
      '-2147483648',
      { t: 'integer', v: -2147483648 },
      { type: 'Integer', value: -2147483648 },
    ],
    [
      'negative zero becomes the Integer 0',
      '-0',
      { t: 'integer', v: 0 },
      { type: 'Integer', value: 0 },
    ],
    [
      '2^31 becomes a Long',
      '2147483648',
      { t: 'long', v: '2147483648' },
      { type: 'Long', value: 2147483648 },
    ],
    [
      '-2^31-1 becomes a Long',
      '-2147483649',
      { t: 'long', v: '-2147483649' },
      { type: 'Long', value: -2147483649 },
    ],
    [
      'the largest safe integer becomes a Long',
      'Number.MAX_SAFE_INTEGER',
      { t: 'long', v: '9007199254740991' },
      { type: 'Long', value: 9007199254740991 },
    ],
    [
      'a fraction becomes a Double',
      '1.25',
      { t: 'double', v: 1.25 },
      { type: 'Double', value: 1.25 },
    ],
    [
      'a negative fraction becomes a Double',
      '-0.1',
      { t: 'double', v: -0.1 },
      { type: 'Double', value: -0.1 },
    ],
    [
      'an integer beyond the safe range (a rounded number) becomes a Double',
      '2 ** 53',
      { t: 'double', v: 2 ** 53 },
      { type: 'Double', value: 2 ** 53 },
    ],
    [
      'a large finite number becomes a Double',
      '1e300',
      { t: 'double', v: 1e300 },
      { type: 'Double', value: 1e300 },
    ],
    ['a small bigint becomes a Long', '5n', { t: 'long', v: '5' }, { type: 'Long', value: 5 }],
    [
      'the largest 64-bit bigint becomes an exact Long',
      '2n ** 63n - 1n',
      { t: 'long', v: '9223372036854775807' },
      { type: 'Long', value: '9223372036854775807' },
    ],
    [
      'the smallest 64-bit bigint becomes an exact Long',
      '-(2n ** 63n)',
      { t: 'long', v: '-9223372036854775808' },
      { type: 'Long', value: '-9223372036854775808' },
    ],
    [
      '2^53+1 as a bigint stays exact',
      '9007199254740993n',
      { t: 'long', v: '9007199254740993' },
      { type: 'Long', value: '9007199254740993' },
    ],
    [
      'a Date becomes a Date in the engine format, without a trailing Z',
      'new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678))',
      { t: 'date', v: '2024-01-02T03:04:05.678Z' },
      { type: 'Date', value: '2024-01-02T03:04:05.678+0000' },
    ],
    [
      'a plain object becomes Json',
      `{ id: 'A-1', lines: [{ qty: 2, price: 9.5 }], paid: false, note: null }`,
      { t: 'json', v: '{"id":"A-1","lines":[{"qty":2,"price":9.5}],"paid":false,"note":null}' },
      {
        type: 'Json',
        value: '{"id":"A-1","lines":[{"qty":2,"price":9.5}],"paid":false,"note":null}',
      },
    ],
    [
      'an array becomes Json',
      `[1, 'two', null, [3]]`,
      { t: 'json', v: '[1,"two",null,[3]]' },
      { type: 'Json', value: '[1,"two",null,[3]]' },
    ],
    ['an empty object becomes Json', '{}', { t: 'json', v: '{}' }, { type: 'Json', value: '{}' }],
    [
      'an object without a prototype is plain, and becomes Json',
      `Object.assign(Object.create(null), { a: 1 })`,
      { t: 'json', v: '{"a":1}' },
      { type: 'Json', value: '{"a":1}' },
    ],
    [
      'a bigint inside Json is written with its exact digits',
      '{ cents: 9007199254740993n, huge: 123456789012345678901234567890n }',
      { t: 'json', v: '{"cents":9007199254740993,"huge":123456789012345678901234567890}' },
      { type: 'Json', value: '{"cents":9007199254740993,"huge":123456789012345678901234567890}' },
    ],
    [
      'a Date inside Json is written as its ISO text',
      '{ due: new Date(Date.UTC(2024, 5, 30)) }',
      { t: 'json', v: '{"due":"2024-06-30T00:00:00.000Z"}' },
      { type: 'Json', value: '{"due":"2024-06-30T00:00:00.000Z"}' },
    ],
    ['null becomes Null', 'null', { t: 'null' }, { type: 'Null', value: null }],
  ];

  it.each(rows)('%s', async (_label, expression, wire, typed) => {
    const variables = await scriptSets(expression);
    expect(variables).toEqual({ amount: wire });
    expect(toCamunda('amount', variables['amount']!)).toEqual(typed);
  });

  it('undefined leaves the variable unset', async () => {
    const variables = await scriptSets('undefined');
    expect(variables).toEqual({});
    expect('amount' in variables).toBe(false);
  });

  it('a Date is sent as yyyy-MM-ddTHH:mm:ss.SSS+0000, the pattern the engine parses', async () => {
    const variables = await scriptSets('new Date(-1)');
    const typed = toCamunda('amount', variables['amount']!);
    expect(typed.value).toBe('1969-12-31T23:59:59.999+0000');
    expect(typed.value).toMatch(CAMUNDA_DATE);
  });

  it('a string of exactly 4000 characters is still a String', async () => {
    const variables = await scriptSets(`'x'.repeat(${STRING_COLUMN_LIMIT})`);
    expect(toCamunda('amount', variables['amount']!)).toEqual({
      type: 'String',
      value: 'x'.repeat(4000),
    });
  });

  it('a string over 4000 characters goes out as a serialized java.lang.String Object', async () => {
    const variables = await scriptSets(`'é'.repeat(4001)`);
    expect(variables['amount']).toEqual({ t: 'string', v: 'é'.repeat(4001) });
    const typed = toCamunda('amount', variables['amount']!);
    expect(typed).toEqual({
      type: 'Object',
      value: JSON.stringify('é'.repeat(4001)),
      valueInfo: {
        objectTypeName: 'java.lang.String',
        serializationDataFormat: 'application/json',
      },
    });
  });

  it('the completion value is typed by the same table', async () => {
    const { outcome } = await run(pool, '2n ** 40n');
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'long', v: String(2n ** 40n) });
  });

  it('setVariableLocal values are typed by the same table', async () => {
    const { outcome } = await run(
      pool,
      `execution.setVariableLocal('at', new Date(0)); execution.setVariableLocal('n', 3e9);`,
    );
    expect(expectKind(outcome, 'completed').localVariables).toEqual({
      at: { t: 'date', v: '1970-01-01T00:00:00.000Z' },
      n: { t: 'long', v: '3000000000' },
    });
  });
});

describe('JavaScript to Camunda: values the engine cannot hold fail the task with a message naming the variable', () => {
  const rows: [string, string, string][] = [
    ['NaN', 'NaN', "variable 'amount': NaN is not a finite number"],
    ['Infinity', 'Infinity', "variable 'amount': Infinity is not a finite number"],
    ['-Infinity', '-Infinity', "variable 'amount': -Infinity is not a finite number"],
    ['a function', '() => 1', "variable 'amount': a function cannot be stored"],
    ['a symbol', `Symbol('s')`, "variable 'amount': a symbol cannot be stored"],
    [
      'a cycle',
      '(() => { const o = { name: "loop" }; o.self = o; return o; })()',
      "variable 'amount': Converting circular structure to JSON",
    ],
    ['a Map', `new Map([['a', 1]])`, "variable 'amount': a Map is not a supported variable type"],
    ['a Set', 'new Set([1])', "variable 'amount': a Set is not a supported variable type"],
    [
      'a class instance',
      '(() => { class Invoice { constructor() { this.total = 1; } } return new Invoice(); })()',
      "variable 'amount': a Invoice is not a supported variable type",
    ],
    ['an invalid Date', `new Date('not a date')`, "variable 'amount': Invalid Date"],
    [
      'a bigint just over 64 bits',
      '2n ** 63n',
      "variable 'amount': 9223372036854775808 does not fit in a 64-bit Long",
    ],
    [
      'a negative bigint just under 64 bits',
      '-(2n ** 63n) - 1n',
      "variable 'amount': -9223372036854775809 does not fit in a 64-bit Long",
    ],
    [
      'NaN inside Json',
      '{ lines: [{ price: NaN }] }',
      "variable 'amount' (key 'price'): NaN cannot be stored in Json",
    ],
    [
      'Infinity inside Json',
      '[1, Infinity]',
      "variable 'amount' (key '1'): Infinity cannot be stored in Json",
    ],
    [
      'a function inside Json',
      '{ total: { compute() { return 1; } } }',
      "variable 'amount' (key 'compute'): a function cannot be stored in Json",
    ],
    [
      'a Map inside Json',
      '{ index: new Map() }',
      "variable 'amount' (key 'index'): a Map cannot be stored in Json",
    ],
  ];

  it.each(rows)('%s is refused', async (_label, expression, message) => {
    const { outcome } = await run(pool, `execution.setVariable('amount', ${expression});`);
    const error = expectKind(outcome, 'error');
    expect(error.name).toBe('VariableError');
    expect(error.message).toContain(message);
    expect(error.policyViolation).toBe(false);
  });

  it('a function is refused already by setVariable, so the script can catch it', async () => {
    const { outcome } = await run(
      pool,
      `try { execution.setVariable('amount', function f() {}); 'stored' } catch (e) { e.name + ': ' + e.message }`,
    );
    expect(expectKind(outcome, 'completed').result).toEqual({
      t: 'string',
      v: "VariableError: variable 'amount': a function cannot be stored",
    });
  });

  it('a completion value the engine cannot hold is refused under the name result', async () => {
    const { outcome } = await run(pool, 'NaN');
    expect(expectKind(outcome, 'error').message).toBe(
      "variable 'result': NaN is not a finite number",
    );
  });

  it('a BpmnError variable the engine cannot hold is refused with its name', async () => {
    const { outcome } = await run(pool, `throw new BpmnError('E', 'm', { ratio: 1 / 0 });`);
    expect(expectKind(outcome, 'error').message).toBe(
      "variable 'ratio': Infinity is not a finite number",
    );
  });
});

describe('Camunda to JavaScript: what the engine holds is read by the script as the inverse of the table', () => {
  const rows: [string, TypedValue, string][] = [
    [
      'a String arrives as a string',
      { type: 'String', value: 'Müller & Co' },
      `v === 'Müller & Co'`,
    ],
    ['an empty String arrives as an empty string', { type: 'String', value: '' }, `v === ''`],
    ['Xml arrives as its text', { type: 'Xml', value: '<a/>' }, `v === '<a/>'`],
    ['a Boolean arrives as a boolean', { type: 'Boolean', value: false }, 'v === false'],
    [
      'an Integer arrives as a number',
      { type: 'Integer', value: -2147483648 },
      'v === -2147483648',
    ],
    ['a Short arrives as a number', { type: 'Short', value: 7 }, 'v === 7'],
    [
      'a Long in the safe range arrives as a number',
      { type: 'Long', value: 5000000000 },
      `typeof v === 'number' && v === 5000000000`,
    ],
    [
      'the largest safe Long arrives as a number',
      { type: 'Long', value: 9007199254740991 },
      'v === Number.MAX_SAFE_INTEGER',
    ],
    [
      'a Long beyond 2^53 arrives as an exact bigint',
      { type: 'Long', value: '9007199254740993' },
      'v === 9007199254740993n',
    ],
    [
      'the largest Long arrives as an exact bigint',
      { type: 'Long', value: '9223372036854775807' },
      'v === 2n ** 63n - 1n',
    ],
    [
      'the smallest Long arrives as an exact bigint',
      { type: 'Long', value: '-9223372036854775808' },
      'v === -(2n ** 63n)',
    ],
    ['a Double arrives as a number', { type: 'Double', value: 1.25 }, 'v === 1.25'],
    [
      'a Date arrives as a Date at the same instant',
      { type: 'Date', value: '2024-01-02T03:04:05.678+0100' },
      'v instanceof Date && v.getTime() === Date.UTC(2024, 0, 2, 2, 4, 5, 678)',
    ],
    [
      'a Date in UTC arrives as a Date',
      { type: 'Date', value: '2024-01-02T03:04:05.678+0000' },
      `v instanceof Date && v.toISOString() === '2024-01-02T03:04:05.678Z'`,
    ],
    [
      'Json arrives parsed',
      { type: 'Json', value: '{"id":"A-1","lines":[{"qty":2,"price":9.5}],"paid":false}' },
      `v.id === 'A-1' && v.lines[0].qty === 2 && v.lines[0].price === 9.5 && v.paid === false`,
    ],
    [
      'a Json array arrives as an array',
      { type: 'Json', value: '[1,"two",null]' },
      `Array.isArray(v) && v.length === 3 && v[1] === 'two' && v[2] === null`,
    ],
    [
      'integers beyond 2^53 inside Json stay exact, as bigints',
      {
        type: 'Json',
        value: '{"cents":9007199254740993,"list":[-9223372036854775808],"small":12,"ratio":1.5}',
      },
      `v.cents === 9007199254740993n && v.list[0] === -(2n ** 63n) && v.small === 12 && v.ratio === 1.5`,
    ],
    [
      'an Object in application/json arrives parsed',
      {
        type: 'Object',
        value: '{"customer":"ACME","limit":100}',
        valueInfo: {
          objectTypeName: 'java.util.LinkedHashMap',
          serializationDataFormat: 'application/json',
        },
      },
      `v.customer === 'ACME' && v.limit === 100`,
    ],
    [
      'a serialized java.lang.String Object arrives as a string',
      {
        type: 'Object',
        value: JSON.stringify('y'.repeat(5000)),
        valueInfo: {
          objectTypeName: 'java.lang.String',
          serializationDataFormat: 'application/json',
        },
      },
      `v === 'y'.repeat(5000)`,
    ],
    ['Null arrives as null', { type: 'Null', value: null }, 'v === null'],
    ['a String whose value is null arrives as null', { type: 'String', value: null }, 'v === null'],
    ['a Json whose value is null arrives as null', { type: 'Json', value: null }, 'v === null'],
  ];

  it.each(rows)('%s', async (_label, typed, check) => {
    expect(await scriptReads(typed, check)).toEqual({ t: 'boolean', v: true });
  });

  it('a variable that is not set reads as null and hasVariable says false', async () => {
    const { outcome } = await run(
      pool,
      `[execution.getVariable('missing'), execution.hasVariable('missing')]`,
    );
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'json', v: '[null,false]' });
  });
});

describe('Camunda to JavaScript: types a script cannot read fail only when the script reads them', () => {
  const unsupported: [string, TypedValue, string][] = [
    [
      'a File',
      {
        type: 'File',
        value: null,
        valueInfo: { filename: 'scan.pdf', mimeType: 'application/pdf' },
      },
      "variable 'doc' has Camunda type File, which scripts cannot read",
    ],
    [
      'a java-serialized Object',
      {
        type: 'Object',
        value: 'rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==',
        valueInfo: {
          objectTypeName: 'java.util.HashMap',
          serializationDataFormat: 'application/x-java-serialized-object',
        },
      },
      "variable 'doc' has Camunda type Object (application/x-java-serialized-object), which scripts cannot read",
    ],
    [
      'Bytes',
      { type: 'Bytes', value: 'AAEC' },
      "variable 'doc' has Camunda type Bytes, which scripts cannot read",
    ],
  ];

  it.each(unsupported)('%s does not stop a script that leaves it alone', async (_label, typed) => {
    const variables = {
      doc: fromCamunda('doc', typed),
      n: fromCamunda('n', { type: 'Integer', value: 1 }),
    };
    const { outcome } = await run(
      pool,
      `execution.hasVariable('doc') && execution.getVariable('n') === 1`,
      { variables },
    );
    expect(expectKind(outcome, 'completed').result).toEqual({ t: 'boolean', v: true });
  });

  it.each(unsupported)(
    '%s throws a named error when the script reads it',
    async (_label, typed, message) => {
      const variables = { doc: fromCamunda('doc', typed) };
      const { outcome } = await run(pool, `execution.getVariable('doc')`, { variables });
      const error = expectKind(outcome, 'error');
      expect(error.name).toBe('VariableError');
      expect(error.message).toBe(message);
    },
  );

  it('getVariables reads every variable, so it throws on one the script cannot read', async () => {
    const variables = { doc: fromCamunda('doc', { type: 'File', value: null }) };
    const { outcome } = await run(pool, `execution.getVariables()`, { variables });
    expect(expectKind(outcome, 'error').message).toContain("variable 'doc' has Camunda type File");
  });

  it('a script cannot write an unreadable type back to the engine', () => {
    expectVariableError(
      () => toCamunda('doc', { t: 'unsupported', type: 'File' }),
      "variable 'doc'",
      'File',
    );
  });
});

describe('the host half checks what the engine sends', () => {
  it('a typed value whose value does not match its type is refused, naming the variable', () => {
    expectVariableError(
      () => fromCamunda('count', { type: 'Integer', value: '12' }),
      "variable 'count'",
      'integer',
    );
    expectVariableError(
      () => fromCamunda('count', { type: 'Integer', value: 1.5 }),
      "variable 'count'",
    );
    expectVariableError(
      () => fromCamunda('flag', { type: 'Boolean', value: 'true' }),
      "variable 'flag'",
    );
    expectVariableError(
      () => fromCamunda('name', { type: 'String', value: 12 }),
      "variable 'name'",
    );
    expectVariableError(
      () => fromCamunda('rate', { type: 'Double', value: '1.5' }),
      "variable 'rate'",
    );
  });

  it('a Long beyond 64 bits is refused rather than rounded', () => {
    expectVariableError(
      () => fromCamunda('big', { type: 'Long', value: '9223372036854775808' }),
      "variable 'big'",
      'does not fit in a Long',
    );
    expectVariableError(
      () => fromCamunda('big', { type: 'Long', value: '12.5' }),
      "variable 'big'",
      'not an integer',
    );
  });

  it('a Long the engine sent as a JSON number keeps its digits', () => {
    expect(fromCamunda('big', { type: 'Long', value: 9007199254740991 })).toEqual({
      t: 'long',
      v: '9007199254740991',
    });
    expect(fromCamunda('big', { type: 'Long', value: -42 })).toEqual({ t: 'long', v: '-42' });
  });

  it('a Date that is not a date is refused', () => {
    expectVariableError(
      () => fromCamunda('due', { type: 'Date', value: 'tomorrow' }),
      "variable 'due'",
      "'tomorrow' is not a date",
    );
  });

  it('Json that is not JSON is refused', () => {
    expectVariableError(
      () => fromCamunda('order', { type: 'Json', value: '{"a":' }),
      "variable 'order'",
      'not valid JSON',
    );
  });

  it('type names are read whatever their case, as the engine accepts them', () => {
    expect(fromCamunda('a', { type: 'string', value: 'x' })).toEqual({ t: 'string', v: 'x' });
    expect(fromCamunda('a', { type: 'long', value: '1' })).toEqual({ t: 'long', v: '1' });
    expect(fromCamunda('a', { type: 'json', value: '[]' })).toEqual({ t: 'json', v: '[]' });
  });

  it('a Long wire value that is safe goes out as a number, one that is not as its exact digits', () => {
    expect(toCamunda('a', { t: 'long', v: '-9007199254740991' })).toEqual({
      type: 'Long',
      value: -9007199254740991,
    });
    expect(toCamunda('a', { t: 'long', v: '-9007199254740993' })).toEqual({
      type: 'Long',
      value: '-9007199254740993',
    });
  });

  it('a non-finite Double is refused on the way out', () => {
    expectVariableError(
      () => toCamunda('rate', { t: 'double', v: Number.NaN }),
      "variable 'rate'",
      'not a finite number',
    );
  });
});

describe('round trips', () => {
  // Types that survive unchanged: Camunda → script → Camunda.
  const stable: TypedVariables = {
    s: { type: 'String', value: 'Grüße' },
    longText: {
      type: 'Object',
      value: JSON.stringify('z'.repeat(4001)),
      valueInfo: {
        objectTypeName: 'java.lang.String',
        serializationDataFormat: 'application/json',
      },
    },
    b: { type: 'Boolean', value: true },
    i: { type: 'Integer', value: 2147483647 },
    l: { type: 'Long', value: 4102444800000 },
    exact: { type: 'Long', value: '9223372036854775807' },
    negExact: { type: 'Long', value: '-9007199254740993' },
    d: { type: 'Double', value: 0.1 },
    when: { type: 'Date', value: '2030-12-31T23:59:59.999+0000' },
    order: {
      type: 'Json',
      value: '{"id":"A-1","total":9007199254740993,"lines":[{"qty":2,"price":9.5}]}',
    },
    none: { type: 'Null', value: null },
  };

  it('every variable the script reads and sets back returns to the engine unchanged', async () => {
    const names = JSON.stringify(Object.keys(stable));
    const { outcome } = await run(
      pool,
      `for (const name of ${names}) execution.setVariable(name, execution.getVariable(name));`,
      {
        variables: fromCamundaAll(stable),
      },
    );
    expect(toCamundaAll(expectKind(outcome, 'completed').variables)).toEqual(stable);
  });

  it('what one script sets, a later script reads as the same JavaScript values', async () => {
    const first = await run(
      pool,
      `execution.setVariable('max', 2n ** 63n - 1n);
       execution.setVariable('min', -(2n ** 63n));
       execution.setVariable('when', new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 1)));
       execution.setVariable('order', { id: 'A-1', cents: 9007199254740993n, lines: [{ qty: 2 }] });
       execution.setVariable('text', 'q'.repeat(4001));
       execution.setVariable('ratio', 0.1 + 0.2);
       execution.setVariable('big', 3e9);
       execution.setVariable('nothing', null);`,
    );
    // Through the engine's representation, as the worker sends and fetches it.
    const typed = toCamundaAll(expectKind(first.outcome, 'completed').variables);
    const second = await run(
      pool,
      `const g = (n) => execution.getVariable(n);
       const o = g('order');
       [
         g('max') === 2n ** 63n - 1n,
         g('min') === -(2n ** 63n),
         g('when') instanceof Date && g('when').getTime() === Date.UTC(2024, 1, 29, 12, 0, 0, 1),
         o.id === 'A-1' && o.cents === 9007199254740993n && o.lines[0].qty === 2,
         g('text') === 'q'.repeat(4001),
         g('ratio') === 0.1 + 0.2,
         g('big') === 3e9,
         g('nothing') === null,
       ]`,
      { variables: fromCamundaAll(typed) },
    );
    expect(expectKind(second.outcome, 'completed').result).toEqual({
      t: 'json',
      v: JSON.stringify(Array(8).fill(true)),
    });
  });

  it('a Long that fits in 32 bits comes back as an Integer, since JavaScript has one number type', async () => {
    const { outcome } = await run(pool, `execution.setVariable('n', execution.getVariable('n'));`, {
      variables: { n: fromCamunda('n', { type: 'Long', value: 5 }) },
    });
    expect(toCamundaAll(expectKind(outcome, 'completed').variables)).toEqual({
      n: { type: 'Integer', value: 5 },
    });
  });

  it('a Date with an offset comes back as the same instant in UTC', async () => {
    const { outcome } = await run(pool, `execution.setVariable('d', execution.getVariable('d'));`, {
      variables: { d: fromCamunda('d', { type: 'Date', value: '2024-01-02T03:04:05.678-0530' }) },
    });
    expect(toCamundaAll(expectKind(outcome, 'completed').variables)).toEqual({
      d: { type: 'Date', value: '2024-01-02T08:34:05.678+0000' },
    });
  });

  it('an Object in application/json comes back as Json', async () => {
    const { outcome } = await run(pool, `execution.setVariable('o', execution.getVariable('o'));`, {
      variables: {
        o: fromCamunda('o', {
          type: 'Object',
          value: '{"a":[1,2]}',
          valueInfo: {
            objectTypeName: 'java.util.LinkedHashMap',
            serializationDataFormat: 'application/json',
          },
        }),
      },
    });
    expect(toCamundaAll(expectKind(outcome, 'completed').variables)).toEqual({
      o: { type: 'Json', value: '{"a":[1,2]}' },
    });
  });
});

describe('plain variables for `run --vars`', () => {
  it('plain JSON values are typed as a script setting them would be', () => {
    expect(
      variablesFromJson(
        '{"s":"x","i":7,"l":3000000000,"d":1.5,"b":true,"n":null,"o":{"a":[1]},"a":[1,2],"big":9007199254740993}',
      ),
    ).toEqual({
      s: { t: 'string', v: 'x' },
      i: { t: 'integer', v: 7 },
      l: { t: 'long', v: '3000000000' },
      d: { t: 'double', v: 1.5 },
      b: { t: 'boolean', v: true },
      n: { t: 'null' },
      o: { t: 'json', v: '{"a":[1]}' },
      a: { t: 'json', v: '[1,2]' },
      big: { t: 'long', v: '9007199254740993' },
    });
  });

  it('typed values are read as the REST API writes them, Longs exactly', () => {
    expect(
      variablesFromJson(
        '{"l":{"type":"Long","value":9223372036854775807},"d":{"type":"Date","value":"2024-01-02T03:04:05.678+0000"},"j":{"type":"Json","value":"{\\"x\\":1}"}}',
      ),
    ).toEqual({
      l: { t: 'long', v: '9223372036854775807' },
      d: { t: 'date', v: '2024-01-02T03:04:05.678Z' },
      j: { t: 'json', v: '{"x":1}' },
    });
  });

  it('a Json typed value written parsed by hand is accepted, big integers kept exact', () => {
    expect(variablesFromJson('{"j":{"type":"Json","value":{"cents":9007199254740993}}}')).toEqual({
      j: { t: 'json', v: '{"cents":9007199254740993}' },
    });
  });

  it('integers inside plain Json stay exact', () => {
    expect(variablesFromJson('{"o":{"cents":12345678901234567890123}}')).toEqual({
      o: { t: 'json', v: '{"cents":12345678901234567890123}' },
    });
  });

  it('a plain integer beyond 64 bits is refused, naming the variable, as a Long cannot hold it', () => {
    expectVariableError(
      () => variablesFromJson('{"huge":123456789012345678901234}'),
      "variable 'huge'",
      'Long',
    );
  });

  it('a typed Long beyond 64 bits is refused, naming the variable', () => {
    expectVariableError(
      () => variablesFromJson('{"huge":{"type":"Long","value":9223372036854775808}}'),
      "variable 'huge'",
    );
  });

  it('text that is not JSON, or not an object, is refused', () => {
    expectVariableError(() => variablesFromJson('{"a": '), 'not valid JSON');
    expectVariableError(() => variablesFromJson('[1, 2]'), 'JSON object of name to value');
    expectVariableError(() => variablesFromJson('null'), 'JSON object of name to value');
  });

  it('parseJsonExact keeps integers beyond 2^53 as bigints and leaves other numbers alone', () => {
    expect(
      parseJsonExact('{"a":9007199254740993,"b":-9007199254740993,"c":9007199254740991,"d":1.5}'),
    ).toEqual({
      a: 9007199254740993n,
      b: -9007199254740993n,
      c: 9007199254740991,
      d: 1.5,
    });
  });
});
