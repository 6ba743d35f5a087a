// The Proxy Service: one public port (portmux.ts) in front of the HTTPS API, the auth API pass-through,
// SSH (jump host, and SSH inside TLS for wsh) and the agents' reverse tunnels. It holds a proxy host
// identity and reads nodes, users and roles from a watch-fed cache.
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { ALPN_AUTH, type AuthClient } from '../api/client.ts';
import { encodeProxyHeader } from '../api/proxyheader.ts';
import { certDer } from '../api/certinfo.ts';
import type { ListenAddress } from '../config/listen.ts';
import type { EdgeLimits } from './edgelimits.ts';
import { startPortMux, spliceTo } from './portmux.ts';
import type { ProxySSHServer } from './sshserver.ts';
import { ALPN_PROXY_SSH, TLS_HANDSHAKE_TIMEOUT_MS } from './sshtls.ts';
import { webHandler } from './web.ts';
import { formatHostPort } from '../config/listen.ts';
import type { ResourceCache } from '../cache/resources.ts';
import type { Router } from './router.ts';
import { createTerminalServer } from './webterminal.ts';
import { WebSessions } from './websession.ts';
import { WebAssets, findWebRoot } from './webstatic.ts';

export const ALPN_TUNNEL = 'ward-reversetunnel';

export interface ProxyConfig {
  listen: string;
  /** Where auth API connections (ALPN ward-auth) are passed through to. */
  authAddr: { host: string; port: number };
  /** Several auth servers: the pass-through fails over between them (authAddr is then the first). */
  authAddrs?: Array<{ host: string; port: number }>;
  /** TLS key and certificate chain (leaf, then the cluster CA) the proxy serves. */
  tls: { keyPem: string; certChainPem: string };
  auth: AuthClient;
  /** SSH jump server for OpenSSH clients (connections that start with "SSH-"). */
  ssh?: ProxySSHServer;
  /** SSH inside mutual TLS, for `wsh proxy ssh`. */
  sshOverTLS?: tls.Server;
  /** Agents' reverse tunnels. */
  tunnels?: { handle(socket: net.Socket): void };
  /** The web UI's terminal dials nodes through the same router as the SSH paths. */
  router?: Router;
  cache?: ResourceCache;
  /** Web sessions end after this long without a request (seconds). */
  webIdleTimeoutSeconds?: number;
  /** Where the built web UI is (default: dist/web of this installation). */
  webRoot?: string;
  /** Per-address rate limits on sign-ins, links and auth API connections (edgelimits.ts). */
  limits?: EdgeLimits;
  log: Logger;
}

export interface ProxyService {
  address: ListenAddress;
  /** A renewed certificate for the web server's handshakes that follow (the SSH-in-TLS and tunnel servers have their
   * own). */
  setTLS(material: ProxyConfig['tls']): void;
  close(): Promise<void>;
}

/** The web server's secure context, given whole at creation and at each renewal (setSecureContext resets the rest). */
function webContextOptions(material: ProxyConfig['tls']): tls.SecureContextOptions {
  return { key: material.keyPem, cert: material.certChainPem, minVersion: 'TLSv1.2' };
}

/** What the proxy signs its headers to the auth server with: its host key and certificate, as renewed. */
function headerSigner(material: ProxyConfig['tls']): { key: KeyObject; certDer: Buffer } {
  return { key: createPrivateKey(material.keyPem), certDer: certDer(material.certChainPem) };
}

export async function startProxy(cfg: ProxyConfig): Promise<ProxyService> {
  const { log } = cfg;
  let signer = headerSigner(cfg.tls);
  // TLS ends at the auth server, which would see this proxy as every client's peer: the header tells it the client's
  // address, signed so that no one else can claim one (api/proxyheader.ts, auth/connsource.ts).
  // Written once per connection, when it is spliced: any dial that follows is well inside the header's minute.
  const authHeader = (socket: net.Socket): Buffer | undefined => {
    const clientAddr = socket.remoteAddress;
    // A client gone before it is spliced has no address left to vouch for.
    if (!clientAddr) return undefined;
    const fields = { clientAddr, clientPort: socket.remotePort ?? 0, timeMs: Date.now(), nonce: randomBytes(16) };
    try {
      return encodeProxyHeader({ ...fields, certDer: signer.certDer }, signer.key);
    } catch (err) {
      log.warn({ err: (err as Error).message, remote_addr: clientAddr }, 'cannot vouch for a client address');
      return undefined;
    }
  };
  const webSessions = new WebSessions(cfg.auth, formatHostPort(cfg.authAddr), cfg.webIdleTimeoutSeconds);
  const web = http2.createSecureServer(
    {
      ...webContextOptions(cfg.tls),
      allowHTTP1: true,
      ALPNProtocols: ['h2', 'http/1.1'],
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    },
    webHandler({
      auth: cfg.auth,
      sessions: webSessions,
      assets: new WebAssets(cfg.webRoot ?? findWebRoot()),
      cache: cfg.cache,
      limits: cfg.limits,
      log,
    }),
  );
  // Browsers open WebSockets over HTTP/1.1 (this server does not offer RFC 8441 over h2).
  const terminals = cfg.router ? createTerminalServer({ sessions: webSessions, router: cfg.router, log }) : undefined;
  web.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    if (terminals) terminals.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  // Node only reports a failed or timed-out handshake; the socket stays open until we destroy it.
  web.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message }, 'web TLS error');
    socket.destroy();
  });
  web.setTimeout(120_000);
  const redirect = http.createServer((req, res) => {
    const host = String(req.headers.host ?? 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '');
    res.writeHead(308, { location: `https://${host}${req.url?.startsWith('/') ? req.url : '/'}` });
    res.end();
  });
  redirect.headersTimeout = 10_000;
  redirect.requestTimeout = 10_000;
  const mux = await startPortMux(
    cfg.listen,
    {
      tls: (socket, hello) => {
        if (hello.alpn.includes(ALPN_AUTH)) {
          // The auth API's TLS ends at the auth server, so the proxy cannot see the calls inside (a join's
          // RegisterUsingToken among them): it limits the connections each address opens. A refused one is
          // closed before a byte reaches auth.
          if (cfg.limits && !cfg.limits.admit('auth_connect', socket.remoteAddress ?? '').allowed)
            return socket.destroy();
          const header = authHeader(socket);
          if (!header) return socket.destroy();
          return spliceTo(socket, cfg.authAddrs ?? cfg.authAddr.host, cfg.authAddr.port, log, () => header);
        }
        if (hello.alpn.includes(ALPN_PROXY_SSH) && cfg.sshOverTLS) return cfg.sshOverTLS.emit('connection', socket);
        if (hello.alpn.includes(ALPN_TUNNEL) && cfg.tunnels) return cfg.tunnels.handle(socket);
        web.emit('connection', socket);
      },
      ssh: cfg.ssh ? (socket) => cfg.ssh!.handle(socket) : undefined,
      // The HTTP server reads the connection itself once it is handed over; the mux left it paused.
      http: (socket) => {
        redirect.emit('connection', socket);
        socket.resume();
      },
    },
    log,
  );
  return {
    address: mux.address,
    setTLS: (material) => {
      web.setSecureContext(webContextOptions(material));
      signer = headerSigner(material);
    },
    close: async () => {
      await mux.close();
      terminals?.close();
      web.close();
      redirect.close();
      cfg.ssh?.close();
      cfg.sshOverTLS?.close();
    },
  };
}
