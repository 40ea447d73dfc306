import dns from 'node:dns';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

import ivm from 'isolated-vm';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { CapabilityRefusal, type CapabilityContext } from '../../src/capabilities/capability.ts';
import { classifyAddress, parsePrivateEntry } from '../../src/capabilities/fetch-address.ts';
import { fetchCapability, type FetchResult } from '../../src/capabilities/fetch.ts';

interface TestServer {
  readonly port: number;
  readonly origin: string;
  readonly requests: http.IncomingMessage[];
  readonly bodies: string[];
}

const servers: http.Server[] = [];

/** A real HTTP server on 127.0.0.1 and an ephemeral port, closed after each test. */
async function serve(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
): Promise<TestServer> {
  const requests: http.IncomingMessage[] = [];
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push(req);
      bodies.push(body);
      handler(req, res, body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { port, origin: `http://127.0.0.1:${port}`, requests, bodies };
}

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

function taskContext(signal: AbortSignal = new AbortController().signal): CapabilityContext {
  return { taskId: 'task-1', topic: 'scripts', policy: 'test-policy', log: () => {}, signal };
}

/** The host side as the worker builds it: settings parsed, one host per execution. */
function hostFetch(settings: unknown, context = taskContext()) {
  const host = fetchCapability.createHost(fetchCapability.settings.parse(settings), context);
  return (...args: unknown[]) => host.callAsync!('fetch', args) as Promise<FetchResult>;
}

const text = (result: FetchResult) => Buffer.from(result.body).toString('utf8');
const refused = (pattern: RegExp) =>
  expect.objectContaining({ name: 'CapabilityRefusal', message: expect.stringMatching(pattern) });

const hello = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(200, 'Fine', { 'content-type': 'text/plain', 'x-answer': '42' });
  res.end('hello');
};

describe('fetch capability: what the policy lets through', () => {
  it('returns status, status text, headers and body from a server named in allowPrivate', async () => {
    const server = await serve(hello);
    const fetch = hostFetch({
      allow: [{ origin: server.origin }],
      allowPrivate: [`127.0.0.1:${server.port}`],
    });

    const result = await fetch(`${server.origin}/greeting?x=1`);

    expect(result.status).toBe(200);
    expect(result.statusText).toBe('Fine');
    expect(result.url).toBe(`${server.origin}/greeting?x=1`);
    expect(result.headers).toContainEqual(['x-answer', '42']);
    expect(result.body).toBeInstanceOf(ArrayBuffer);
    expect(text(result)).toBe('hello');
  });

  it('sends the method, headers and body the script gives, and a text content type for strings', async () => {
    const server = await serve(hello);
    const fetch = hostFetch({
      allow: [{ origin: server.origin, pathPrefixes: ['/api/'], methods: ['POST'] }],
      allowPrivate: ['127.0.0.1'],
    });

    await fetch(`${server.origin}/api/items`, {
      method: 'post',
      headers: [['X-Trace', 'abc']],
      body: 'héllo',
    });

    const [request] = server.requests;
    expect(request?.method).toBe('POST');
    expect(request?.headers['x-trace']).toBe('abc');
    expect(request?.headers['content-type']).toBe('text/plain;charset=UTF-8');
    expect(server.bodies[0]).toBe('héllo');
  });

  it('follows a redirect to an allowed path and reports the final URL', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/v1/old') res.writeHead(301, { location: '/v1/new' }).end();
      else hello(req, res);
    });
    const fetch = hostFetch({
      allow: [{ origin: server.origin, pathPrefixes: ['/v1/'] }],
      allowPrivate: [`127.0.0.1:${server.port}`],
    });

    const result = await fetch(`${server.origin}/v1/old`);

    expect(result.status).toBe(200);
    expect(result.url).toBe(`${server.origin}/v1/new`);
    expect(text(result)).toBe('hello');
  });

  it('turns a POST into a body-less GET on a 303 redirect', async () => {
    const server = await serve((req, res) => {
      if (req.method === 'POST') res.writeHead(303, { location: '/done' }).end();
      else hello(req, res);
    });
    const fetch = hostFetch({
      allow: [{ origin: server.origin, methods: ['GET', 'POST'] }],
      allowPrivate: [`127.0.0.1:${server.port}`],
    });

    await fetch(`${server.origin}/submit`, { method: 'POST', body: '{"a":1}' });

    expect(server.requests.map((r) => r.method)).toEqual(['POST', 'GET']);
    expect(server.requests[1]?.headers['content-type']).toBeUndefined();
    expect(server.bodies[1]).toBe('');
  });

  it('lets a name through to its private address when allowPrivate names host and port', async () => {
    const server = await serve(hello);
    const origin = `http://localhost:${server.port}`;
    const fetch = hostFetch({ allow: [{ origin }], allowPrivate: [`localhost:${server.port}`] });

    expect(text(await fetch(`${origin}/`))).toBe('hello');
  });

  it('connects to the address it checked, never resolving the name a second time', async () => {
    const server = await serve(hello);
    // `.test` names never resolve for real: reaching the server proves the
    // connection used the checked answer, not a second lookup.
    const lookup = vi
      .spyOn(dns.promises, 'lookup')
      .mockResolvedValue([{ address: '127.0.0.1', family: 4 }] as never);
    const origin = `http://rebind.test:${server.port}`;
    const fetch = hostFetch({ allow: [{ origin }], allowPrivate: [`rebind.test:${server.port}`] });

    expect(text(await fetch(`${origin}/`))).toBe('hello');
    expect(lookup).toHaveBeenCalledTimes(1);
    expect(server.requests[0]?.headers.host).toBe(`rebind.test:${server.port}`);
  });
  it('drops Authorization and Cookie when a redirect leaves the origin', async () => {
    const inner = await serve(hello);
    const innerOrigin = `http://localhost:${inner.port}`;
    const outer = await serve((_req, res) => {
      res.writeHead(307, { location: `${innerOrigin}/landing` }).end();
    });
    const fetch = hostFetch({
      allow: [{ origin: outer.origin }, { origin: innerOrigin }],
      allowPrivate: [`127.0.0.1:${outer.port}`, `localhost:${inner.port}`],
    });

    await fetch(`${outer.origin}/`, {
      headers: { Authorization: 'Bearer s3cret', Cookie: 'session=1', 'X-Keep': '1' },
    });

    expect(outer.requests[0]?.headers.authorization).toBe('Bearer s3cret');
    expect(inner.requests[0]?.headers.authorization).toBeUndefined();
    expect(inner.requests[0]?.headers.cookie).toBeUndefined();
    expect(inner.requests[0]?.headers['x-keep']).toBe('1');
  });
});

describe('fetch capability: what the policy refuses', () => {
  it('refuses 127.0.0.1 when allowPrivate does not name it, even if an allow rule does', async () => {
    const server = await serve(hello);
    const fetch = hostFetch({ allow: [{ origin: server.origin }] });

    await expect(fetch(`${server.origin}/`)).rejects.toEqual(refused(/loopback address/));
    expect(server.requests).toHaveLength(0);
  });

  it('refuses a port of a private address that allowPrivate does not name', async () => {
    const server = await serve(hello);
    const fetch = hostFetch({ allow: [{ origin: server.origin }], allowPrivate: ['127.0.0.1:1'] });

    await expect(fetch(`${server.origin}/`)).rejects.toBeInstanceOf(CapabilityRefusal);
  });

  it('refuses localhost, a name that resolves to 127.0.0.1', async () => {
    const server = await serve(hello);
    const origin = `http://localhost:${server.port}`;
    const fetch = hostFetch({ allow: [{ origin }] });

    await expect(fetch(`${origin}/`)).rejects.toEqual(
      refused(/localhost resolves to 127\.0\.0\.1, which is a loopback address/),
    );
    expect(server.requests).toHaveLength(0);
  });

  it('refuses a name when any one of its addresses is private', async () => {
    vi.spyOn(dns.promises, 'lookup').mockResolvedValue([
      { address: '93.184.216.34', family: 4 },
      { address: '10.1.2.3', family: 4 },
    ] as never);
    const fetch = hostFetch({ allow: [{ origin: 'https://mixed.test' }] });

    await expect(fetch('https://mixed.test/')).rejects.toEqual(refused(/10\.1\.2\.3.*private/));
  });

  it('refuses the cloud metadata address 169.254.169.254 before connecting', async () => {
    const connect = vi.spyOn(net, 'connect');
    const fetch = hostFetch({ allow: [{ origin: 'http://169.254.169.254' }], timeoutMs: 60_000 });

    await expect(fetch('http://169.254.169.254/latest/meta-data/')).rejects.toEqual(
      refused(/cloud metadata address/),
    );
    expect(connect).not.toHaveBeenCalled();
  });

  it('never opens a cloud metadata address for a name in allowPrivate, only for the address itself', async () => {
    vi.spyOn(dns.promises, 'lookup').mockResolvedValue([
      { address: '169.254.169.254', family: 4 },
    ] as never);
    const fetch = hostFetch({
      allow: [{ origin: 'http://metadata.test' }],
      allowPrivate: ['metadata.test'],
    });

    await expect(fetch('http://metadata.test/')).rejects.toEqual(refused(/cloud metadata/));
  });

  it('refuses the IPv4-mapped IPv6 spelling of loopback, ::ffff:127.0.0.1', async () => {
    const server = await serve(hello);
    const origin = `http://[::ffff:127.0.0.1]:${server.port}`;
    const fetch = hostFetch({ allow: [{ origin }] });

    await expect(fetch(`${origin}/`)).rejects.toEqual(refused(/loopback address/));
    expect(server.requests).toHaveLength(0);
  });

  it('refuses a redirect to 127.0.0.1 on a port allowPrivate does not name', async () => {
    const inner = await serve(hello);
    const outer = await serve((_req, res) => {
      res.writeHead(302, { location: `${inner.origin}/secret` }).end();
    });
    const fetch = hostFetch({
      allow: [{ origin: outer.origin }, { origin: inner.origin }],
      allowPrivate: [`127.0.0.1:${outer.port}`],
    });

    await expect(fetch(`${outer.origin}/`)).rejects.toEqual(
      refused(new RegExp(`redirect to ${inner.origin}/secret refused: .*loopback`)),
    );
    expect(inner.requests).toHaveLength(0);
  });

  it('refuses a redirect to an origin outside the allow list', async () => {
    const outer = await serve((_req, res) => {
      res.writeHead(307, { location: 'http://elsewhere.test/' }).end();
    });
    const fetch = hostFetch({ allow: [{ origin: outer.origin }], allowPrivate: ['127.0.0.1'] });

    await expect(fetch(`${outer.origin}/`)).rejects.toEqual(
      refused(/redirect to http:\/\/elsewhere\.test\/ refused: origin .* is not in policy/),
    );
  });

  it('refuses a path outside the allowed prefixes, including a look-alike of the prefix', async () => {
    const server = await serve(hello);
    const fetch = hostFetch({
      allow: [{ origin: server.origin, pathPrefixes: ['/v1'] }],
      allowPrivate: ['127.0.0.1'],
    });

    await expect(fetch(`${server.origin}/admin`)).rejects.toEqual(
      refused(/not under an allowed prefix/),
    );
    await expect(fetch(`${server.origin}/v1x`)).rejects.toEqual(
      refused(/not under an allowed prefix/),
    );
    await expect(fetch(`${server.origin}/v1/../admin`)).rejects.toEqual(refused(/path \/admin/));
    await expect(fetch(`${server.origin}/v1/..%2Fadmin`)).rejects.toEqual(refused(/encoded/));
    expect(server.requests).toHaveLength(0);
  });

  it('refuses a method the matching rule does not allow', async () => {
    const server = await serve(hello);
    const fetch = hostFetch({ allow: [{ origin: server.origin }], allowPrivate: ['127.0.0.1'] });

    await expect(fetch(`${server.origin}/`, { method: 'DELETE' })).rejects.toEqual(
      refused(/method DELETE is not allowed/),
    );
  });

  it('refuses an origin that is not in the allow list, and non-http schemes', async () => {
    const fetch = hostFetch({ allow: [{ origin: 'https://api.example.com' }] });

    await expect(fetch('https://evil.example.com/')).rejects.toEqual(
      refused(/origin https:\/\/evil\.example\.com is not in policy 'test-policy''s allow list/),
    );
    await expect(fetch('http://api.example.com/')).rejects.toEqual(refused(/origin/));
    await expect(fetch('file:///etc/passwd')).rejects.toEqual(refused(/scheme 'file:'/));
  });

  it('refuses calls beyond maxCalls for one execution', async () => {
    const server = await serve(hello);
    const fetch = hostFetch({
      allow: [{ origin: server.origin }],
      allowPrivate: ['127.0.0.1'],
      maxCalls: 2,
    });

    await fetch(`${server.origin}/`);
    await fetch(`${server.origin}/`);
    await expect(fetch(`${server.origin}/`)).rejects.toEqual(refused(/allows 2 calls/));
    expect(server.requests).toHaveLength(2);
  });
});

describe('fetch capability: failures that are not refusals', () => {
  it('fails when a streamed response grows past maxResponseBytes', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      // Never ends: only stopping at the cap lets the call return.
      const timer = setInterval(() => res.write(Buffer.alloc(512)), 1);
      res.on('close', () => clearInterval(timer));
    });
    const fetch = hostFetch({
      allow: [{ origin: server.origin }],
      allowPrivate: ['127.0.0.1'],
      maxResponseBytes: 4096,
      timeoutMs: 10_000,
    });

    const failure = fetch(`${server.origin}/`);
    await expect(failure).rejects.toThrow(/over the policy's maxResponseBytes of 4096/);
    await expect(failure).rejects.not.toBeInstanceOf(CapabilityRefusal);
  });

  it('fails at once when the declared Content-Length is over maxResponseBytes', async () => {
    const server = await serve((_req, res) => res.end(Buffer.alloc(5000)));
    const fetch = hostFetch({
      allow: [{ origin: server.origin }],
      allowPrivate: ['127.0.0.1'],
      maxResponseBytes: 4096,
    });

    await expect(fetch(`${server.origin}/`)).rejects.toThrow(/maxResponseBytes/);
  });

  it('fails with a timeout when the server answers slower than timeoutMs', async () => {
    const server = await serve(() => {}); // never answers
    const fetch = hostFetch({
      allow: [{ origin: server.origin }],
      allowPrivate: ['127.0.0.1'],
      timeoutMs: 200,
    });

    const started = Date.now();
    await expect(fetch(`${server.origin}/slow`)).rejects.toThrow(/timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('stops when the task ends', async () => {
    const server = await serve(() => {});
    const task = new AbortController();
    const fetch = hostFetch(
      { allow: [{ origin: server.origin }], allowPrivate: ['127.0.0.1'] },
      taskContext(task.signal),
    );

    const call = fetch(`${server.origin}/`);
    setTimeout(() => task.abort(), 50);
    await expect(call).rejects.toThrow(/the task ended/);
  });

  it('fails after maxRedirects redirects', async () => {
    const server = await serve((_req, res) => res.writeHead(302, { location: '/again' }).end());
    const fetch = hostFetch({
      allow: [{ origin: server.origin }],
      allowPrivate: ['127.0.0.1'],
      maxRedirects: 2,
    });

    await expect(fetch(`${server.origin}/`)).rejects.toThrow(/more than 2 redirects/);
    expect(server.requests).toHaveLength(3);
  });
});

describe('fetch capability: arguments from the script', () => {
  const fetch = (...args: unknown[]) =>
    hostFetch({ allow: [{ origin: 'https://api.example.com', methods: ['GET', 'POST'] }] })(
      ...args,
    );
  const url = 'https://api.example.com/';

  it.each([
    ['a URL that is not a string', [42], /URL must be a string/],
    ['a relative URL', ['/relative'], /not a valid absolute URL/],
    ['a URL with credentials', ['https://u:p@api.example.com/'], /credentials/],
    ['init that is not an object', [url, 'GET'], /init must be an object/],
    ['an unknown init key', [url, { redirect: 'follow' }], /init.redirect/],
    ['headers that are not an object', [url, { headers: 'x-a: 1' }], /headers must be an object/],
    ['a Host header', [url, { headers: { Host: 'internal' } }], /'Host' is set by the sandbox/],
    [
      'a Transfer-Encoding header',
      [url, { headers: [['transfer-encoding', 'chunked']] }],
      /sandbox/,
    ],
    [
      'a method override header',
      [url, { headers: { 'X-HTTP-Method-Override': 'DELETE' } }],
      /sandbox/,
    ],
    [
      'a header value with a line break',
      [url, { headers: { 'x-a': 'a\r\nHost: x' } }],
      /character/,
    ],
    ['a header name that is not a token', [url, { headers: { 'x a': '1' } }], /token/],
    ['a header value that is not a string', [url, { headers: { 'x-a': 1 } }], /string value/],
    ['an unsupported method', [url, { method: 'CONNECT' }], /not supported/],
    ['a method that is not a string', [url, { method: 7 }], /method must be/],
    ['a body on a GET', [url, { body: 'x' }], /cannot have a body/],
    ['a body of the wrong type', [url, { method: 'POST', body: { a: 1 } }], /body must be/],
  ])('rejects %s', async (_what, args, message) => {
    await expect(fetch(...args)).rejects.toThrow(message);
  });

  it('rejects a request body over maxRequestBytes', async () => {
    const small = hostFetch({
      allow: [{ origin: 'https://api.example.com', methods: ['POST'] }],
      maxRequestBytes: 10,
    });
    await expect(small(url, { method: 'POST', body: new Uint8Array(11) })).rejects.toThrow(
      /maxRequestBytes of 10/,
    );
  });

  it('rejects methods other than fetch', async () => {
    const host = fetchCapability.createHost(
      fetchCapability.settings.parse({ allow: [{ origin: url.slice(0, -1) }] }),
      taskContext(),
    );
    await expect(host.callAsync!('get', [url])).rejects.toThrow(/not a fetch method/);
  });
});

describe('fetch capability: settings and addresses', () => {
  it('fills in defaults and normalizes origins', () => {
    const config = fetchCapability.settings.parse({
      allow: [{ origin: 'HTTPS://API.example.com:443' }],
    });
    expect(config).toEqual({
      allow: [{ origin: 'https://api.example.com', pathPrefixes: ['/'], methods: ['GET'] }],
      allowPrivate: [],
      maxResponseBytes: 1_048_576,
      timeoutMs: 5_000,
      maxCalls: 10,
      maxRequestBytes: 262_144,
      maxRedirects: 3,
    });
  });

  it.each([
    ['no rule', { allow: [] }],
    ['an origin with a path', { allow: [{ origin: 'https://a.example/v1' }] }],
    ['an origin with a non-http scheme', { allow: [{ origin: 'ftp://a.example' }] }],
    [
      'a prefix that is not a normalized path',
      { allow: [{ origin: 'https://a.example', pathPrefixes: ['/a/../b'] }] },
    ],
    ['an unknown method', { allow: [{ origin: 'https://a.example', methods: ['TRACE'] }] }],
    ['an unknown key', { allow: [{ origin: 'https://a.example' }], proxy: 'x' }],
    [
      'a malformed allowPrivate entry',
      { allow: [{ origin: 'https://a.example' }], allowPrivate: ['http://x'] },
    ],
  ])('rejects settings with %s', (_what, value) => {
    expect(fetchCapability.settings.safeParse(value).success).toBe(false);
  });

  it.each([
    ['8.8.8.8', 'public'],
    ['2606:4700::1111', 'public'],
    ['127.0.0.53', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fd12::1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['169.254.169.254', 'cloud metadata'],
    ['fd00:ec2::254', 'cloud metadata'],
    ['100.100.100.200', 'cloud metadata'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['100.64.0.1', 'shared (CGNAT)'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'cloud metadata'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['2002:7f00:1::', 'loopback'],
    ['::ffff:8.8.8.8', 'public'],
  ])('classifies %s as %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });

  it('parses allowPrivate entries with and without ports, and rejects the rest', () => {
    expect(parsePrivateEntry('db.internal:5432')).toEqual({
      name: 'db.internal',
      ip: undefined,
      port: 5432,
    });
    expect(parsePrivateEntry('[::ffff:127.0.0.1]:80')).toEqual({
      name: undefined,
      ip: '127.0.0.1',
      port: 80,
    });
    expect(parsePrivateEntry('fd00::1')).toEqual({
      name: undefined,
      ip: 'fd00:0:0:0:0:0:0:1',
      port: undefined,
    });
    for (const bad of ['', 'a:b', 'x:70000', '[nope]:1', 'http://x', '1.2.3']) {
      expect(parsePrivateEntry(bad)).toBeUndefined();
    }
  });
});

describe('fetch capability: the isolate shim', () => {
  /** Installs the shim in a fresh isolate as the prelude does, with the host behind an envelope. */
  async function isolateWithFetch(settings: unknown) {
    const host = fetchCapability.createHost(
      fetchCapability.settings.parse(settings),
      taskContext(),
    );
    const isolate = new ivm.Isolate({ memoryLimit: 64 });
    const context = await isolate.createContext();
    // A Reference (not a Callback): isolated-vm 7 Callbacks cannot return a host promise.
    const hostCallAsync = new ivm.Reference(async (method: string, args: unknown[]) => {
      try {
        return { value: await host.callAsync!(method, args) };
      } catch (err) {
        const message = (err as Error).message;
        return err instanceof CapabilityRefusal ? { refused: message } : { error: message };
      }
    });
    await context.global.set('hostCallAsync', hostCallAsync);
    await context.eval(`
      const callAsync = async (method, ...args) => {
        const envelope = await hostCallAsync.apply(undefined, [method, args],
          { arguments: { copy: true }, result: { promise: true, copy: true } });
        if ('value' in envelope) return envelope.value;
        throw new Error(envelope.refused ?? envelope.error);
      };
      globalThis.fetch = (${fetchCapability.isolateShim})(() => { throw new Error('sync'); }, callAsync);
    `);
    const run = async (script: string): Promise<string> =>
      String(
        await context.eval(`(async () => JSON.stringify(await (async () => { ${script} })()))()`, {
          promise: true,
        }),
      );
    return { run, dispose: () => isolate.dispose() };
  }

  it('fetches inside a real isolate: json(), text(), headers and a UTF-8 body both ways', async () => {
    const server = await serve((req, res, body) => {
      if (req.url === '/json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ greeting: 'grüße 😀', n: 1 }));
      } else res.end(`echo: ${body}`);
    });
    const { run, dispose } = await isolateWithFetch({
      allow: [{ origin: server.origin, methods: ['GET', 'POST'] }],
      allowPrivate: [`127.0.0.1:${server.port}`],
    });
    try {
      const result = JSON.parse(
        await run(`
          const response = await fetch({ href: '${server.origin}/json' }); // URL-like: the isolate has no URL
          const echo = await fetch('${server.origin}/echo', {
            method: 'POST', body: 'ß→😀', headers: { 'x-n': 1 } });
          return {
            ok: response.ok, status: response.status, frozen: Object.isFrozen(response),
            type: response.headers.get('Content-Type'), has: response.headers.has('x-none'),
            data: await response.json(), echo: await echo.text(),
          };
        `),
      );
      expect(result).toEqual({
        ok: true,
        status: 200,
        frozen: true,
        type: 'application/json',
        has: false,
        data: { greeting: 'grüße 😀', n: 1 },
        echo: 'echo: ß→😀',
      });
      expect(server.requests[1]?.headers['x-n']).toBe('1');
    } finally {
      dispose();
    }
  });

  it('decodes malformed UTF-8 like the WHATWG decoder and drops a BOM', async () => {
    const bytes = Buffer.from([
      0xef, 0xbb, 0xbf, 0x68, 0xc3, 0xa9, 0xff, 0xf0, 0x9f, 0x98, 0x80, 0xed, 0xa0, 0x80, 0xe2,
      0x82,
    ]);
    const server = await serve((_req, res) => res.end(bytes));
    const { run, dispose } = await isolateWithFetch({
      allow: [{ origin: server.origin }],
      allowPrivate: ['127.0.0.1'],
    });
    try {
      const decoded = JSON.parse(await run(`return (await fetch('${server.origin}/')).text();`));
      expect(decoded).toBe(new TextDecoder().decode(bytes));
    } finally {
      dispose();
    }
  });

  it('turns a refusal into an error the script can catch', async () => {
    const { run, dispose } = await isolateWithFetch({
      allow: [{ origin: 'https://api.example.com' }],
    });
    try {
      const message = JSON.parse(
        await run(
          `try { await fetch('https://evil.example.com/'); } catch (e) { return e.message; }`,
        ),
      );
      expect(message).toMatch(/origin https:\/\/evil\.example\.com is not in policy/);
    } finally {
      dispose();
    }
  });
});
