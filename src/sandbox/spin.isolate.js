// Runs INSIDE the isolate: a subset of Camunda Spin's JSON API
// (`S(json).prop('a').stringValue()`), which inline scripts use to read Json
// variables. Nodes wrap plain data; list results also answer Java's size()
// and get(i), as Spin's do.
//
// Plain JavaScript read as text by sandbox/isolate-pool.ts and compiled
// together with prelude.isolate.js, which calls this function once per
// context with the primordials it captured before the script runs.
(function defineSpin(tools) {
  'use strict';

  const { jsonParse, exactReviver, jsonText, TypeErrorCtor, ErrorCtor, StringCtor } = tools;
  const { defineProperty, keys, hasOwn } = Object;
  const { isArray } = Array;
  const reflectApply = Reflect.apply;
  const weakSetHas = WeakSet.prototype.has;
  const weakSetAdd = WeakSet.prototype.add;

  const spinNodes = new WeakSet();

  function javaList(items) {
    const list = [...items];
    defineProperty(list, 'size', { value: () => list.length });
    defineProperty(list, 'get', { value: (index) => list[index] });
    return list;
  }

  function unwrapSpin(value) {
    return value !== null &&
      typeof value === 'object' &&
      reflectApply(weakSetHas, spinNodes, [value])
      ? value.value()
      : value;
  }

  class SpinJsonNode {
    #holder;
    #key;
    constructor(holder, key) {
      this.#holder = holder;
      this.#key = key;
      reflectApply(weakSetAdd, spinNodes, [this]);
    }
    value() {
      return this.#holder[this.#key];
    }
    #object() {
      const value = this.value();
      if (value === null || typeof value !== 'object' || isArray(value)) {
        throw new TypeErrorCtor('Spin: this JSON node is not an object');
      }
      return value;
    }
    #array() {
      const value = this.value();
      if (!isArray(value)) throw new TypeErrorCtor('Spin: this JSON node is not an array');
      return value;
    }
    prop(name, newValue) {
      const object = this.#object();
      if (arguments.length > 1) {
        object[name] = unwrapSpin(newValue);
        return this;
      }
      if (!hasOwn(object, name))
        throw new ErrorCtor(`Spin: the JSON object has no property '${name}'`);
      return new SpinJsonNode(object, name);
    }
    hasProp(name) {
      const value = this.value();
      return value !== null && typeof value === 'object' && !isArray(value) && hasOwn(value, name);
    }
    deleteProp(name) {
      delete this.#object()[name];
      return this;
    }
    fieldNames() {
      return javaList(keys(this.#object()));
    }
    elements() {
      const array = this.#array();
      return javaList(array.map((_item, index) => new SpinJsonNode(array, index)));
    }
    append(value) {
      this.#array().push(unwrapSpin(value));
      return this;
    }
    isObject() {
      const value = this.value();
      return value !== null && typeof value === 'object' && !isArray(value);
    }
    isArray() {
      return isArray(this.value());
    }
    isNull() {
      return this.value() === null;
    }
    isString() {
      return typeof this.value() === 'string';
    }
    isNumber() {
      return typeof this.value() === 'number' || typeof this.value() === 'bigint';
    }
    isBoolean() {
      return typeof this.value() === 'boolean';
    }
    isValue() {
      const value = this.value();
      return value === null || typeof value !== 'object';
    }
    stringValue() {
      const value = this.value();
      if (typeof value !== 'string')
        throw new TypeErrorCtor('Spin: this JSON node is not a string');
      return value;
    }
    numberValue() {
      const value = this.value();
      if (typeof value === 'bigint') return value;
      if (typeof value !== 'number')
        throw new TypeErrorCtor('Spin: this JSON node is not a number');
      return value;
    }
    boolValue() {
      const value = this.value();
      if (typeof value !== 'boolean')
        throw new TypeErrorCtor('Spin: this JSON node is not a boolean');
      return value;
    }
    toJSON() {
      return this.value();
    }
    toString() {
      return jsonText('Spin node', this.value());
    }
  }

  function S(input, format) {
    if (format !== undefined && !/json/i.test(StringCtor(format))) {
      throw new TypeErrorCtor(
        `Spin: data format '${format}' is not available in the sandbox (JSON only)`,
      );
    }
    if (input !== null && typeof input === 'object' && reflectApply(weakSetHas, spinNodes, [input]))
      return input;
    const value = typeof input === 'string' ? jsonParse(input, exactReviver) : input;
    return new SpinJsonNode({ root: value }, 'root');
  }

  return {
    S,
    isNode: (value) =>
      value !== null && typeof value === 'object' && reflectApply(weakSetHas, spinNodes, [value]),
    valueOf: (node) => node.value(),
  };
});
