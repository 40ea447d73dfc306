import { afterAll, describe, expect, it } from 'vitest';

import { expectKind, newPool, run } from './sandbox-support.ts';

const pool = newPool();
afterAll(() => pool.dispose());

const ORDER = JSON.stringify({
  customer: { name: 'Ada', vip: true },
  items: [
    { sku: 'A', price: 2.5 },
    { sku: 'B', price: 4 },
  ],
  ref: 9007199254740993,
});

async function result(source: string) {
  const { outcome } = await run(pool, source, { variables: { order: { t: 'json', v: ORDER } } });
  return expectKind(outcome, 'completed').result;
}

describe('the Spin subset, as Camunda inline scripts use it', () => {
  it('reads nested properties of a Json variable as Camunda scripts write it', async () => {
    expect(
      await result(`S(execution.getVariable('order')).prop('customer').prop('name').stringValue()`),
    ).toEqual({
      t: 'string',
      v: 'Ada',
    });
  });

  it('parses JSON text, keeping integers beyond 2^53 exact', async () => {
    expect(await result(`typeof S('${ORDER}').prop('ref').numberValue()`)).toEqual({
      t: 'string',
      v: 'bigint',
    });
  });

  it('iterates elements with the Java list methods size() and get(i)', async () => {
    const source = `var items = S(execution.getVariable('order')).prop('items').elements();
var total = 0;
for (var i = 0; i < items.size(); i++) total += items.get(i).prop('price').numberValue();
total`;
    expect(await result(source)).toEqual({ t: 'double', v: 6.5 });
  });

  it('answers the type questions and lists field names', async () => {
    const source = `var c = S(execution.getVariable('order')).prop('customer');
[c.isObject(), c.prop('vip').isBoolean(), c.prop('vip').boolValue(), c.hasProp('name'), c.hasProp('age'),
 c.fieldNames().size(), c.isArray(), S('null').isNull()].join(',')`;
    expect(await result(source)).toEqual({
      t: 'string',
      v: 'true,true,true,true,false,2,false,true',
    });
  });

  it('writes properties and appends elements, and a node set as a variable becomes Json', async () => {
    const source = `var order = S(execution.getVariable('order'));
order.prop('checked', true).prop('items').append({ sku: 'C', price: 1 });
order.deleteProp('ref');
execution.setVariable('order', order);`;
    const { outcome } = await run(pool, source, { variables: { order: { t: 'json', v: ORDER } } });
    const order = expectKind(outcome, 'completed').variables['order'];
    expect(order?.t).toBe('json');
    expect(JSON.parse((order as { v: string }).v)).toEqual({
      customer: { name: 'Ada', vip: true },
      items: [
        { sku: 'A', price: 2.5 },
        { sku: 'B', price: 4 },
        { sku: 'C', price: 1 },
      ],
      checked: true,
    });
  });

  it('prints as JSON text and stringifies as its value', async () => {
    expect(
      await result(`String(S({ a: [1, 2] })) + ' ' + JSON.stringify({ n: S('{"b":1}') })`),
    ).toEqual({
      t: 'string',
      v: '{"a":[1,2]} {"n":{"b":1}}',
    });
  });

  it('throws a clear error for a missing property or a wrong value type', async () => {
    const missing = await run(pool, `S('{"a":1}').prop('b')`);
    expect(expectKind(missing.outcome, 'error').message).toContain("no property 'b'");
    const wrong = await run(pool, `S('{"a":1}').prop('a').stringValue()`);
    expect(expectKind(wrong.outcome, 'error').message).toContain('not a string');
  });

  it('refuses data formats other than JSON', async () => {
    const { outcome } = await run(pool, `S('<a/>', 'application/xml')`);
    expect(expectKind(outcome, 'error').message).toContain("'application/xml' is not available");
  });
});
