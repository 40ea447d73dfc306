// Runs INSIDE the isolate: the `crypto` global. Random bytes and hashes come
// from the host; typed arrays cross as copies.
// Evaluated as one function expression `(call, callAsync) => global`; see
// capability.ts.
(call) =>
  Object.freeze({
    randomUUID: () => call('randomUUID'),
    getRandomValues: (array) => {
      if (
        !ArrayBuffer.isView(array) ||
        array instanceof DataView ||
        array instanceof Float32Array ||
        array instanceof Float64Array
      ) {
        throw new TypeError('getRandomValues takes an integer typed array');
      }
      const bytes = call('randomBytes', array.byteLength);
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(new Uint8Array(bytes));
      return array;
    },
    hash: (algorithm, data, encoding = 'hex') => {
      if (encoding !== 'hex' && encoding !== 'base64')
        throw new TypeError("encoding must be 'hex' or 'base64'");
      const bytes = ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()
        : data;
      return call('hash', String(algorithm), bytes, encoding);
    },
  });
