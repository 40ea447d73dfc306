// Runs INSIDE the isolate: the `fetch` global. The isolate has no TextDecoder,
// so this decodes UTF-8 itself (the WHATWG decoder: U+FFFD for bad sequences,
// BOM dropped). String bodies go to the host as strings; the host encodes them.
// Evaluated as one function expression `(call, callAsync) => global`; see
// capability.ts.
(call, callAsync) => {
  const decode = (bytes) => {
    let text = '',
      units = [],
      cp = 0,
      needed = 0,
      seen = 0,
      lower = 0x80,
      upper = 0xbf;
    const emit = (c) => {
      units.push(c);
      if (units.length > 4095) {
        text += String.fromCodePoint(...units);
        units = [];
      }
    };
    for (let i = 0; i < bytes.length; i += 1) {
      const b = bytes[i];
      if (needed === 0) {
        if (b < 0x80) emit(b);
        else if (b >= 0xc2 && b <= 0xdf) {
          needed = 1;
          cp = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
          needed = 2;
          cp = b & 0xf;
          if (b === 0xe0) lower = 0xa0;
          if (b === 0xed) upper = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
          needed = 3;
          cp = b & 7;
          if (b === 0xf0) lower = 0x90;
          if (b === 0xf4) upper = 0x8f;
        } else emit(0xfffd);
      } else if (b < lower || b > upper) {
        needed = seen = 0;
        lower = 0x80;
        upper = 0xbf;
        emit(0xfffd);
        i -= 1;
      } else {
        lower = 0x80;
        upper = 0xbf;
        cp = (cp << 6) | (b & 0x3f);
        if ((seen += 1) === needed) {
          emit(cp);
          needed = seen = 0;
        }
      }
    }
    if (needed !== 0) emit(0xfffd);
    text += String.fromCodePoint(...units);
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  };
  const toBody = (body) => {
    if (
      body === undefined ||
      body === null ||
      typeof body === 'string' ||
      body instanceof ArrayBuffer
    )
      return body;
    if (ArrayBuffer.isView(body))
      return new Uint8Array(body.buffer, body.byteOffset, body.byteLength).slice().buffer;
    throw new TypeError(
      'fetch: body must be a string, an ArrayBuffer or a typed array (JSON.stringify objects)',
    );
  };
  const toHeaders = (headers) => {
    if (headers === undefined || headers === null) return undefined;
    if (typeof headers !== 'object') throw new TypeError('fetch: headers must be an object');
    const pairs = Array.isArray(headers)
      ? headers
      : typeof headers.entries === 'function'
        ? [...headers.entries()]
        : Object.entries(headers);
    return pairs.map((pair) => {
      if (!Array.isArray(pair) || pair.length !== 2)
        throw new TypeError('fetch: a header must be a [name, value] pair');
      return [String(pair[0]), String(pair[1])];
    });
  };
  const makeHeaders = (pairs) => {
    const all = (name) => pairs.filter((p) => p[0] === String(name).toLowerCase()).map((p) => p[1]);
    const entries = () => pairs.map((p) => [p[0], p[1]])[Symbol.iterator]();
    const headers = Object.freeze({
      get: (name) => (all(name).length === 0 ? null : all(name).join(', ')),
      has: (name) => all(name).length > 0,
      getSetCookie: () => all('set-cookie'),
      entries,
      [Symbol.iterator]: entries,
      keys: () => pairs.map((p) => p[0])[Symbol.iterator](),
      values: () => pairs.map((p) => p[1])[Symbol.iterator](),
      forEach: (fn, thisArg) => pairs.forEach((p) => fn.call(thisArg, p[1], p[0], headers)),
    });
    return headers;
  };
  return async function fetch(input, init) {
    const url =
      input !== null && typeof input === 'object' && typeof input.href === 'string'
        ? input.href
        : String(input);
    const options = init === undefined || init === null ? {} : init;
    const method = options.method === undefined ? 'GET' : String(options.method);
    const res = await callAsync('fetch', url, {
      method,
      headers: toHeaders(options.headers),
      body: toBody(options.body),
    });
    const body = res.body;
    const text = async () => decode(new Uint8Array(body));
    return Object.freeze({
      ok: res.status >= 200 && res.status < 300,
      status: res.status,
      statusText: res.statusText,
      url: res.url,
      headers: makeHeaders(res.headers),
      text,
      json: async () => JSON.parse(await text()),
      arrayBuffer: async () => body.slice(0),
      bytes: async () => new Uint8Array(body.slice(0)),
    });
  };
};
