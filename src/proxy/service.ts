// The Proxy Service: one public port (mux.ts) in front of the HTTPS API, the auth API pass-through
// and (with the Node Service) SSH. It holds a proxy host certificate and talks to auth with it.
import http from 'node:http';
import http2 from 'node:http2';
import type { Logger } from 'pino';
import { ALPN_AUTH, type AuthClient } from '../api/client.ts';
import type { ListenAddress } from '../config/listen.ts';
import { startMux, spliceTo } from './mux.ts';
import { webHandler } from './web.ts';

export interface ProxyConfig {
  listen: string;
  /** Where auth API connections (ALPN ward-auth) are passed through to. */
  authAddr: { host: string; port: number };
  /** TLS key and certificate chain (leaf, then the cluster CA) the proxy serves. */
  tls: { keyPem: string; certChainPem: string };
  auth: AuthClient;
  log: Logger;
}

export interface ProxyService {
  address: ListenAddress;
  close(): Promise<void>;
}

export async function startProxy(cfg: ProxyConfig): Promise<ProxyService> {
  const { log } = cfg;
  const web = http2.createSecureServer(
    { key: cfg.tls.keyPem, cert: cfg.tls.certChainPem, allowHTTP1: true, minVersion: 'TLSv1.2', ALPNProtocols: ['h2', 'http/1.1'] },
    webHandler(cfg.auth, log),
  );
  web.on('tlsClientError', (err) => log.debug({ err: err.message }, 'web TLS error'));
  web.setTimeout(120_000);
  const redirect = http.createServer((req, res) => {
    const host = String(req.headers.host ?? 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '');
    res.writeHead(308, { location: `https://${host}${req.url?.startsWith('/') ? req.url : '/'}` });
    res.end();
  });
  redirect.headersTimeout = 10_000;
  redirect.requestTimeout = 10_000;
  const mux = await startMux(
    cfg.listen,
    {
      tls: (socket, hello) => {
        if (hello.alpn.includes(ALPN_AUTH)) spliceTo(socket, cfg.authAddr.host, cfg.authAddr.port, log);
        else web.emit('connection', socket);
      },
      http: (socket) => {
        redirect.emit('connection', socket);
        // The mux paused the socket to peek; the HTTP server takes over its handle but leaves a paused
        // socket paused, so without this the request the mux put back is never read.
        socket.resume();
      },
    },
    log,
  );
  return {
    address: mux.address,
    close: async () => {
      await mux.close();
      web.close();
      redirect.close();
    },
  };
}
