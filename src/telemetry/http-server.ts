import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Registry } from 'prom-client';

export interface HealthSource {
  /** Policies loaded and the engine answered recently. */
  ready(): { ready: boolean; reasons: string[] };
}

/**
 * Serves `/metrics` (Prometheus text format), `/healthz` (the process is
 * alive and its event loop turns) and `/readyz` (ready to take tasks).
 */
export function startTelemetryServer(
  registry: Registry,
  health: HealthSource,
  port: number,
  host: string,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (path === '/readyz') {
      const state = health.ready();
      res
        .writeHead(state.ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(
          JSON.stringify({ status: state.ready ? 'ready' : 'not ready', reasons: state.reasons }),
        );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function serverPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
