import type { LookupAddress } from 'node:dns';

import { fetch as undiciFetch, type Agent, type Response } from 'undici';
import { z } from 'zod';

import { CapabilityRefusal, isolateSource, type Capability } from './capability.ts';
import {
  bareHost,
  parsePrivateEntry,
  pinnedAgent,
  resolveChecked,
  type PrivateEntry,
} from './fetch-address.ts';
import { BODY_HEADERS, METHODS, parseRequest, type Hop } from './fetch-request.ts';

const MIB = 1_048_576;

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
  /**
   * Paths reachable on the origin. `/v1/` covers `/v1/x`; `/v1` covers `/v1`
   * and `/v1/x` but not `/v1x`.
   */
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
  /**
   * `host[:port]` or IP literals (`10.0.0.5`, `[fd00::1]:8443`) that may
   * resolve to non-public addresses.
   */
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

/** What crosses back into the isolate: plain data only. */
export interface FetchResult {
  status: number;
  statusText: string;
  url: string;
  headers: [string, string][];
  body: ArrayBuffer;
}

// Not carried to another origin by a redirect, as browsers and undici do.
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const where = (url: URL) => `${url.origin}${url.pathname}`; // never the query: it may hold a key

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
  isolateShim: isolateSource('fetch'),

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
        return fetchWithPolicy(parseRequest(args, config.maxRequestBytes), policy, context.signal);
      },
    };
  },
};
