/**
 * The `fetch` capability's request as the script gives it (`[url, init]`),
 * checked as a public API facing an attacker would check it: types, sizes,
 * header names and values, and the headers the sandbox owns.
 */
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type Method = (typeof METHODS)[number];

/** One request on the wire: the first, or one produced by a redirect. */
export interface Hop {
  readonly url: URL;
  readonly method: Method;
  readonly headers: readonly [string, string][];
  readonly body: Uint8Array | undefined;
}

const MAX_URL_LENGTH = 8_192;
const MAX_HEADERS = 100;
const MAX_HEADER_BYTES = 64 * 1024;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
// Headers the sandbox owns: the target (Host: virtual-host confusion), framing
// and connection (request smuggling), encodings (the size cap counts decoded
// bytes), and method overrides, which would slip past the policy's methods.
const FORBIDDEN_HEADERS = new Set(
  ['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te']
    .concat(['trailer', 'expect', 'http2-settings', 'accept-encoding'])
    .concat(['x-http-method-override', 'x-http-method', 'x-method-override']),
);
export const BODY_HEADERS = new Set([
  'content-type',
  'content-encoding',
  'content-language',
  'content-location',
]);
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function parseMethod(value: unknown): Method {
  if (value === undefined) return 'GET';
  if (typeof value !== 'string' || !TOKEN.test(value))
    throw new TypeError('fetch: method must be an HTTP method name');
  const method = METHODS.find((m) => m === value.toUpperCase());
  if (method === undefined)
    throw new TypeError(`fetch: method '${value.slice(0, 20)}' is not supported`);
  return method;
}

function parseHeader(pair: unknown): [string, string] {
  if (!Array.isArray(pair) || pair.length !== 2)
    throw new TypeError('fetch: each header must be a [name, value] pair');
  const [name, raw]: unknown[] = pair;
  if (typeof name !== 'string' || !TOKEN.test(name))
    throw new TypeError('fetch: a header name is not a valid HTTP token');
  if (typeof raw !== 'string')
    throw new TypeError(`fetch: header '${name}' must have a string value`);
  const value = raw.replace(/^[\t ]+|[\t ]+$/g, '');
  if (BAD_HEADER_VALUE.test(value))
    throw new TypeError(`fetch: header '${name}' has a character not allowed in a header value`);
  const lower = name.toLowerCase();
  if (FORBIDDEN_HEADERS.has(lower) || lower.startsWith('proxy-')) {
    throw new TypeError(`fetch: header '${name}' is set by the sandbox, not by scripts`);
  }
  return [lower, value];
}

function parseHeaders(value: unknown): [string, string][] {
  if (value === undefined || value === null) return [];
  const pairs: unknown[] | undefined = Array.isArray(value)
    ? value
    : isPlainObject(value)
      ? Object.entries(value)
      : undefined;
  if (pairs === undefined)
    throw new TypeError('fetch: headers must be an object or an array of [name, value] pairs');
  if (pairs.length > MAX_HEADERS) throw new TypeError(`fetch: at most ${MAX_HEADERS} headers`);
  const headers = pairs.map(parseHeader);
  if (headers.reduce((n, [k, v]) => n + k.length + v.length, 0) > MAX_HEADER_BYTES) {
    throw new TypeError(`fetch: headers are over ${MAX_HEADER_BYTES} bytes`);
  }
  return headers;
}

function parseBody(value: unknown, limit: number): Uint8Array | undefined {
  if (value === undefined || value === null) return undefined;
  let size: number;
  if (typeof value === 'string') size = Buffer.byteLength(value);
  else if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) size = value.byteLength;
  else throw new TypeError('fetch: body must be a string, an ArrayBuffer or a typed array');
  if (size > limit)
    throw new RangeError(
      `fetch: request body is ${size} bytes, over the policy's maxRequestBytes of ${limit}`,
    );
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return value instanceof ArrayBuffer
    ? new Uint8Array(value)
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** The script's `[url, init]`, checked as a public API would check them. */
export function parseRequest(args: unknown[], maxRequestBytes: number): Hop {
  const [input, init = {}] = args;
  if (typeof input !== 'string') throw new TypeError('fetch: the URL must be a string');
  if (input.length > MAX_URL_LENGTH)
    throw new TypeError(`fetch: the URL is over ${MAX_URL_LENGTH} characters`);
  if (!URL.canParse(input)) throw new TypeError('fetch: the URL is not a valid absolute URL');
  const url = new URL(input);
  if (url.username !== '' || url.password !== '')
    throw new TypeError(
      'fetch: URLs with credentials are not supported; send an Authorization header',
    );
  url.hash = '';
  if (!isPlainObject(init)) throw new TypeError('fetch: init must be an object');
  const unknown = Object.keys(init).find(
    (key) => key !== 'method' && key !== 'headers' && key !== 'body',
  );
  if (unknown !== undefined) throw new TypeError(`fetch: init.${unknown} is not supported`);
  const method = parseMethod(init.method);
  const headers = parseHeaders(init.headers);
  const body = parseBody(init.body, maxRequestBytes);
  if (body !== undefined && (method === 'GET' || method === 'HEAD'))
    throw new TypeError(`fetch: a ${method} request cannot have a body`);
  if (typeof init.body === 'string' && !headers.some(([name]) => name === 'content-type')) {
    headers.push(['content-type', 'text/plain;charset=UTF-8']);
  }
  return { url, method, headers, body };
}
