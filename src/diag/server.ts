// The diagnostics listener (`ward.diag_addr`, as Teleport's --diag-addr): Prometheus metrics at
// /metrics and liveness at /healthz, on an address of its own that operators keep off the public
// port. Components register their metrics in the registry `ward start` creates and passes to them.
import http from 'node:http';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { listenOn, formatHostPort } from '../config/listen.ts';

export function newRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ward_process_' });
  return registry;
}

export async function startDiagServer(
  addr: string,
  registry: Registry,
  log: Logger,
): Promise<{ addr: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        log.warn({ err }, 'cannot collect metrics');
        res.writeHead(500).end();
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  const bound = await listenOn(server, addr, 'diagnostics listener');
  log.info({ addr: formatHostPort(bound) }, 'diagnostics listening (/metrics, /healthz)');
  return {
    addr: formatHostPort(bound),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
