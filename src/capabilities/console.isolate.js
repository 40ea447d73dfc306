// Runs INSIDE the isolate: the `console` global. Arguments are formatted here
// so that one string crosses to the host per call.
// Evaluated as one function expression `(call, callAsync) => global`; see
// capability.ts.
(call) => {
  const format = (value) => {
    if (typeof value === 'string') return value;
    try {
      const text = JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
      return text === undefined ? String(value) : text;
    } catch {
      return String(value);
    }
  };
  const writer =
    (method) =>
    (...args) => {
      call(method, args.map(format).join(' '));
    };
  return Object.freeze({
    log: writer('log'),
    info: writer('info'),
    debug: writer('debug'),
    warn: writer('warn'),
    error: writer('error'),
  });
};
