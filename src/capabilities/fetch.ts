import type { LookupAddress } from 'node:dns';

import { fetch as undiciFetch, type Agent, type Response } from 'undici';
import { z } from 'zod';

import { CapabilityRefusal, type Capability } from './capability.ts';
import {
  bareHost,
  parsePrivateEntry,
  pinnedAgent,
  resolveChecked,
  type PrivateEntry,
} from './fetch-address.ts';

const MIB = 1_048_576;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
type Method = (typeof METHODS)[number];

// Nothing but scheme, host and port: then the URL's href is its origin and a slash.
const isOrigin = (text: string) => {
  const url = URL.parse(text);
  return url !== null && /^https?:$/.test(url.protocol) && `${url.origin}/` === url.href;
};

// A prefix must be spelt as the URL parser spells a path, or it could never match.
const isPathPrefix = (text: string) =>
  text.startsWith('/') && new URL(text, 'http://x').pathname === text;

const isPrivateEntry = (text: string) => parsePrivateEntry(text) !== undefined;

const rule = z.strictObject({
  /** `scheme://host[:port]`, http or https, nothing after it; stored in the URL's own spelling. */
  origin: z
    .string()
    .refine(isOrigin, 'an origin is http(s)://host[:port] with no path')
    .transform((o) => new URL(o).origin),
  /** Paths reachable on the origin. `/v1/` covers `/v1/x`; `/v1` covers `/v1` and `/v1/x` but not `/v1x`. */
  pathPrefixes: z
    .array(z.string().refine(isPathPrefix, 'a path prefix is a normalized path starting with /'))
    .min(1)
    .default(['/']),
  /** Methods allowed on those paths. */
  methods: z.array(z.enum(METHODS)).min(1).default(['GET']),
});

const int = (min: number, max: number, fallback: number) =>
  z.number().int().min(min).max(max).default(fallback);

const settings = z.strictObject({
  /** Where scripts may send requests; a request must match one rule in origin, path and method. */
  allow: z.array(rule).min(1),
  /** `host[:port]` or IP literals (`10.0.0.5`, `[fd00::1]:8443`) that may resolve to non-public addresses. */
  allowPrivate: z
    .array(z.string().refine(isPrivateEntry, 'expected host[:port] or an IP'))
    .default([]),
  /** Cap on one response body, counted after content decoding. */
  maxResponseBytes: int(1, 64 * MIB, MIB),
  /** Time for one call, redirects and body included. */
  timeoutMs: int(1, 300_000, 5_000),
  /** Calls per execution; redirects do not count as calls. */
  maxCalls: int(1, 1_000, 10),
  /** Cap on one request body. */
  maxRequestBytes: int(0, 16 * MIB, 256 * 1024),
  /** Redirects followed per call, each judged like a new request. */
  maxRedirects: int(0, 20, 3),
});

export type FetchSettings = z.infer<typeof settings>;
type Rule = FetchSettings['allow'][number];

interface Policy {
  readonly name: string;
  readonly config: FetchSettings;
  readonly privateEntries: readonly PrivateEntry[];
}

/** One request on the wire: the first, or one produced by a redirect. */
interface Hop {
  readonly url: URL;
  readonly method: Method;
  readonly headers: readonly [string, string][];
  readonly body: Uint8Array | undefined;
}

/** What crosses back into the isolate: plain data only. */
export interface FetchResult {
  status: number;
  statusText: string;
  url: string;
  headers: [string, string][];
  body: ArrayBuffer;
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
const BODY_HEADERS = new Set([
  'content-type',
  'content-encoding',
  'content-language',
  'content-location',
]);
// Not carried to another origin by a redirect, as browsers and undici do.
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const where = (url: URL) => `${url.origin}${url.pathname}`; // never the query: it may hold a key

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
function parseRequest(args: unknown[], config: FetchSettings): Hop {
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
  const body = parseBody(init.body, config.maxRequestBytes);
  if (body !== undefined && (method === 'GET' || method === 'HEAD'))
    throw new TypeError(`fetch: a ${method} request cannot have a body`);
  if (typeof init.body === 'string' && !headers.some(([name]) => name === 'content-type')) {
    headers.push(['content-type', 'text/plain;charset=UTF-8']);
  }
  return { url, method, headers, body };
}

const underPrefix = (path: string, prefix: string) =>
  prefix.endsWith('/') ? path.startsWith(prefix) : path === prefix || path.startsWith(`${prefix}/`);

/** Why the policy's rules refuse this request, or undefined if one rule allows it. */
function ruleRefusal(hop: Hop, policy: Policy): string | undefined {
  const { url, method } = hop;
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `scheme '${url.protocol}' is not allowed: only http: and https:`;
  const forOrigin = policy.config.allow.filter((r: Rule) => r.origin === url.origin);
  if (forOrigin.length === 0)
    return `origin ${url.origin} is not in policy '${policy.name}''s allow list`;
  // A server may decode %2F after our prefix check and step outside the prefix.
  // Limitation: an API that puts %2F in its ids is refused too.
  if (/%2f|%5c/i.test(url.pathname)) return `path ${url.pathname} holds an encoded '/' or '\\'`;
  const forPath = forOrigin.filter((r) => r.pathPrefixes.some((p) => underPrefix(url.pathname, p)));
  if (forPath.length === 0) {
    const prefixes = forOrigin.flatMap((r) => r.pathPrefixes).join(', ');
    return `path ${url.pathname} is not under an allowed prefix for ${url.origin} (${prefixes})`;
  }
  if (!forPath.some((r) => r.methods.includes(method)))
    return `method ${method} is not allowed for ${where(url)}`;
  return undefined;
}

/** Judges one hop by the rules, then by the addresses its host resolves to. */
async function judge(
  hop: Hop,
  policy: Policy,
  redirected: boolean,
  signal: AbortSignal,
): Promise<LookupAddress[]> {
  const refuse = (reason: string) =>
    new CapabilityRefusal(
      `fetch ${redirected ? 'redirect to ' : ''}${where(hop.url)} refused: ${reason}`,
    );
  const reason = ruleRefusal(hop, policy);
  if (reason !== undefined) throw refuse(reason);
  try {
    return await resolveChecked(hop.url, policy.privateEntries, signal);
  } catch (err) {
    throw err instanceof CapabilityRefusal ? refuse(err.message) : err;
  }
}

async function send(hop: Hop, agent: Agent, signal: AbortSignal): Promise<Response> {
  try {
    const { url, method, body } = hop;
    const headers = hop.headers.map(([name, value]): [string, string] => [name, value]);
    return await undiciFetch(url, {
      method,
      headers,
      body,
      redirect: 'manual',
      signal,
      dispatcher: agent,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    const cause =
      err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    throw new Error(`fetch ${where(hop.url)} failed: ${cause}`);
  }
}

/** The request a redirect response asks for, or undefined if the response is final. */
function nextHop(hop: Hop, response: Response): Hop | undefined {
  const location = response.headers.get('location');
  if (!REDIRECT_STATUSES.has(response.status) || location === null) return undefined;
  if (!URL.canParse(location, hop.url.href))
    throw new Error(`fetch ${where(hop.url)} failed: the redirect's Location is not a URL`);
  const url = new URL(location, hop.url);
  url.hash = '';
  if (url.username !== '' || url.password !== '')
    throw new Error(`fetch ${where(hop.url)} failed: the redirect's Location holds credentials`);
  // As the Fetch standard: 303 turns anything but GET/HEAD into GET, 301/302 turn POST into GET.
  const toGet =
    response.status === 303
      ? hop.method !== 'GET' && hop.method !== 'HEAD'
      : response.status <= 302 && hop.method === 'POST';
  let headers = hop.headers;
  if (toGet) headers = headers.filter(([name]) => !BODY_HEADERS.has(name));
  if (url.origin !== hop.url.origin)
    headers = headers.filter(([name]) => !CREDENTIAL_HEADERS.has(name));
  return { url, method: toGet ? 'GET' : hop.method, headers, body: toGet ? undefined : hop.body };
}

/** Reads the body, stopping as soon as it passes the cap rather than buffering it all. */
async function readCapped(hop: Hop, response: Response, limit: number): Promise<ArrayBuffer> {
  const tooBig = () =>
    new Error(
      `fetch ${where(hop.url)} failed: the response body is over the policy's maxResponseBytes of ${limit}`,
    );
  if (response.body === null) return new ArrayBuffer(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    // A declared length over the cap fails before any byte is read.
    if (Number(response.headers.get('content-length') ?? 0) > limit) throw tooBig();
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      size += next.value.byteLength;
      if (size > limit) throw tooBig();
      chunks.push(next.value);
    }
  } catch (err) {
    void reader.cancel().catch(() => {});
    throw err;
  }
  const out = new Uint8Array(size);
  chunks.reduce((offset, chunk) => (out.set(chunk, offset), offset + chunk.byteLength), 0);
  return out.buffer;
}

async function follow(first: Hop, policy: Policy, signal: AbortSignal): Promise<FetchResult> {
  let hop = first;
  for (let redirects = 0; ; redirects += 1) {
    const addresses = await judge(hop, policy, redirects > 0, signal);
    const agent = pinnedAgent(bareHost(hop.url), addresses);
    try {
      const response = await send(hop, agent, signal);
      const next = nextHop(hop, response);
      if (next === undefined) {
        const body = await readCapped(hop, response, policy.config.maxResponseBytes);
        const { status, statusText } = response;
        return { status, statusText, url: hop.url.href, headers: [...response.headers], body };
      }
      void response.body?.cancel().catch(() => {});
      if (redirects >= policy.config.maxRedirects) {
        throw new Error(
          `fetch ${where(first.url)} failed: more than ${policy.config.maxRedirects} redirects`,
        );
      }
      hop = next;
    } finally {
      void agent.destroy().catch(() => {});
    }
  }
}

/** One call: a single deadline for every hop and the body, also ended by the task's signal. */
async function fetchWithPolicy(
  first: Hop,
  policy: Policy,
  taskSignal: AbortSignal,
): Promise<FetchResult> {
  const timeout = AbortSignal.timeout(policy.config.timeoutMs);
  const signal = AbortSignal.any([timeout, taskSignal]);
  try {
    return await follow(first, policy, signal);
  } catch (err) {
    if (err instanceof CapabilityRefusal) throw err;
    if (timeout.aborted)
      throw new Error(`fetch ${where(first.url)} timed out after ${policy.config.timeoutMs} ms`);
    if (taskSignal.aborted)
      throw new Error(`fetch ${where(first.url)} was aborted: the task ended`);
    throw err;
  }
}

// Isolate side. The isolate has no TextDecoder, so the shim decodes UTF-8
// itself (the WHATWG decoder: U+FFFD for bad sequences, BOM dropped). String
// bodies go to the host as strings; the host encodes them.
const SHIM = `(call, callAsync) => {
  const decode = (bytes) => {
    let text = '', units = [], cp = 0, needed = 0, seen = 0, lower = 0x80, upper = 0xbf;
    const emit = (c) => { units.push(c); if (units.length > 4095) { text += String.fromCodePoint(...units); units = []; } };
    for (let i = 0; i < bytes.length; i += 1) {
      const b = bytes[i];
      if (needed === 0) {
        if (b < 0x80) emit(b);
        else if (b >= 0xc2 && b <= 0xdf) { needed = 1; cp = b & 0x1f; }
        else if (b >= 0xe0 && b <= 0xef) { needed = 2; cp = b & 0xf; if (b === 0xe0) lower = 0xa0; if (b === 0xed) upper = 0x9f; }
        else if (b >= 0xf0 && b <= 0xf4) { needed = 3; cp = b & 7; if (b === 0xf0) lower = 0x90; if (b === 0xf4) upper = 0x8f; }
        else emit(0xfffd);
      } else if (b < lower || b > upper) {
        needed = seen = 0; lower = 0x80; upper = 0xbf; emit(0xfffd); i -= 1;
      } else {
        lower = 0x80; upper = 0xbf; cp = (cp << 6) | (b & 0x3f);
        if ((seen += 1) === needed) { emit(cp); needed = seen = 0; }
      }
    }
    if (needed !== 0) emit(0xfffd);
    text += String.fromCodePoint(...units);
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  };
  const toBody = (body) => {
    if (body === undefined || body === null || typeof body === 'string' || body instanceof ArrayBuffer) return body;
    if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength).slice().buffer;
    throw new TypeError('fetch: body must be a string, an ArrayBuffer or a typed array (JSON.stringify objects)');
  };
  const toHeaders = (headers) => {
    if (headers === undefined || headers === null) return undefined;
    if (typeof headers !== 'object') throw new TypeError('fetch: headers must be an object');
    const pairs = Array.isArray(headers) ? headers
      : typeof headers.entries === 'function' ? [...headers.entries()] : Object.entries(headers);
    return pairs.map((pair) => {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('fetch: a header must be a [name, value] pair');
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
      entries, [Symbol.iterator]: entries,
      keys: () => pairs.map((p) => p[0])[Symbol.iterator](),
      values: () => pairs.map((p) => p[1])[Symbol.iterator](),
      forEach: (fn, thisArg) => pairs.forEach((p) => fn.call(thisArg, p[1], p[0], headers)),
    });
    return headers;
  };
  return async function fetch(input, init) {
    const url = input !== null && typeof input === 'object' && typeof input.href === 'string' ? input.href : String(input);
    const options = init === undefined || init === null ? {} : init;
    const method = options.method === undefined ? 'GET' : String(options.method);
    const res = await callAsync('fetch', url, { method, headers: toHeaders(options.headers), body: toBody(options.body) });
    const body = res.body;
    const text = async () => decode(new Uint8Array(body));
    return Object.freeze({
      ok: res.status >= 200 && res.status < 300, status: res.status, statusText: res.statusText, url: res.url,
      headers: makeHeaders(res.headers),
      text, json: async () => JSON.parse(await text()),
      arrayBuffer: async () => body.slice(0), bytes: async () => new Uint8Array(body.slice(0)),
    });
  };
}`;

/**
 * `fetch(url, { method, headers, body })`: a subset of WHATWG fetch to the
 * origins, paths and methods the policy allows. Every hop is judged on the
 * address its name resolves to, and the connection goes to that address.
 *
 * Limitations: no streaming (bodies are buffered, capped both ways); no
 * Request/Headers/AbortSignal objects from the script; no connection reuse
 * between calls (one pinned agent per hop); concurrent calls are bounded only
 * by maxCalls, so a script can hold maxCalls × maxResponseBytes at once.
 */
export const fetchCapability: Capability<FetchSettings> = {
  name: 'fetch',
  settings,
  isolateShim: SHIM,

  createHost(config, context) {
    const entries = config.allowPrivate
      .map((e) => parsePrivateEntry(e))
      .filter((e) => e !== undefined);
    const policy: Policy = { name: context.policy, config, privateEntries: entries };
    let calls = 0;
    return {
      async callAsync(method, args) {
        if (method !== 'fetch') throw new TypeError(`fetch.${method} is not a fetch method`);
        calls += 1;
        if (calls > config.maxCalls) {
          throw new CapabilityRefusal(
            `fetch refused: policy '${context.policy}' allows ${config.maxCalls} calls per execution`,
          );
        }
        return fetchWithPolicy(parseRequest(args, config), policy, context.signal);
      },
    };
  },
};
