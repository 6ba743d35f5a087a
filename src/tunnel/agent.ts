// Agent side of reverse tunnels: a node (or db/app/kube agent) behind NAT keeps one outbound TLS connection
// to every proxy and serves HTTP/2 on it, so each proxy can open a stream per user connection it routes to
// this agent. Connections are re-dialled with capped, jittered backoff and kept alive with HTTP/2 PINGs.
import http2 from 'node:http2';
import type { Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { identityFromPeerCert, readIdentity } from '../crypto/x509.ts';
import {
  ALPN_REVERSE_TUNNEL,
  DIAL_METHOD,
  DIAL_PATH,
  HEADER_CLIENT_ADDR,
  HEADER_TARGET,
  MAX_SESSION_MEMORY_MB,
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  SESSION_WINDOW,
  checkMetaValue,
  h2Settings,
  type DialMeta,
} from './protocol.ts';

export interface AgentTLS {
  keyPem: string;
  certPem: string;
  caPems: string[];
}

export interface TunnelAgentOptions {
  /** `host:port` of every proxy; re-read before each (re)connect, so discovery can add and drop proxies. */
  proxyAddrs: () => string[];
  /** The agent's host certificate; a function is re-read on each (re)connect, so a renewed cert is picked up. */
  tls: AgentTLS | (() => AgentTLS);
  /** Called once per stream the proxy opens, after the agent has answered 200. The handler owns the stream. */
  onConnection(stream: Duplex, meta: DialMeta): void;
  log: Logger;
  backoff?: { minMs: number; maxMs: number };
  /** PING every intervalMs, drop the link if unacknowledged after timeoutMs (default 15 s / 10 s). */
  keepalive?: { intervalMs: number; timeoutMs: number };
  /** Bound on the TCP connect plus TLS handshake to one proxy (default 10 s). */
  connectTimeoutMs?: number;
}

export interface TunnelAgent {
  close(): Promise<void>;
  /** Proxy addresses whose tunnel is up (the proxy accepted us and sent its HTTP/2 SETTINGS). */
  connected(): string[];
}

interface ProxyLink {
  addr: string;
  attempt: number;
  timer?: NodeJS.Timeout;
  socket?: tls.TLSSocket;
  session?: Http2Session;
  up: boolean;
}

export function startTunnelAgent(opts: TunnelAgentOptions): TunnelAgent {
  const { log } = opts;
  const minMs = opts.backoff?.minMs ?? 200;
  const maxMs = opts.backoff?.maxMs ?? 10_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const pingEveryMs = opts.keepalive?.intervalMs ?? PING_INTERVAL_MS;
  const pingTimeoutMs = opts.keepalive?.timeoutMs ?? PING_TIMEOUT_MS;
  const links = new Map<string, ProxyLink>();
  let closed = false;

  // Roles reversed: the agent dialled out (it has no reachable port), yet the proxy is the side that
  // opens streams, so the agent is the HTTP/2 *server* on its own outbound socket. One server object
  // serves every proxy link; each socket is handed to it with emit('connection').
  const server: Http2Server = http2.createServer({ settings: h2Settings, maxSessionMemory: MAX_SESSION_MEMORY_MB });
  server.on('stream', onStream);
  // A server session reports stream-level trouble here; the link's own handlers deal with the session.
  server.on('sessionError', (err) => log.debug({ err: err.message }, 'tunnel session error'));

  function onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', (err) => log.debug({ err: err.message }, 'tunnel stream error'));
    if (headers[':method'] !== DIAL_METHOD || headers[':path'] !== DIAL_PATH) {
      stream.respond({ ':status': 404 }, { endStream: true });
      return;
    }
    const clientAddr = headers[HEADER_CLIENT_ADDR];
    const target = headers[HEADER_TARGET];
    const problem = checkMetaValue(HEADER_CLIENT_ADDR, clientAddr) ?? checkMetaValue(HEADER_TARGET, target);
    if (problem) {
      log.warn({ problem }, 'proxy sent a malformed dial');
      stream.respond({ ':status': 400 }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200 });
    log.debug({ clientAddr, target }, 'tunnel stream opened');
    opts.onConnection(stream, { clientAddr: clientAddr as string, target: target as string });
  }

  /** Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): spreads a fleet of agents that all
   * lost the same proxy over the whole window instead of reconnecting in waves. */
  function backoffDelay(attempt: number): number {
    const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
    return minMs + Math.random() * (cap - minMs);
  }

  function schedule(link: ProxyLink): void {
    if (closed || link.timer) return;
    const delay = backoffDelay(link.attempt++);
    link.timer = setTimeout(() => {
      link.timer = undefined;
      // Discovery may have dropped this proxy meanwhile.
      if (!opts.proxyAddrs().includes(link.addr)) {
        links.delete(link.addr);
        return;
      }
      connect(link);
    }, delay);
  }

  function connect(link: ProxyLink): void {
    if (closed) return;
    const cfg = typeof opts.tls === 'function' ? opts.tls() : opts.tls;
    let ownCluster: string;
    let host: string;
    let port: number;
    try {
      ownCluster = readIdentity(cfg.certPem).cluster;
      ({ host, port } = splitHostPort(link.addr));
    } catch (err) {
      log.error({ proxy: link.addr, err: (err as Error).message }, 'cannot dial proxy');
      return schedule(link);
    }
    const socket = tls.connect({
      host,
      port,
      servername: isIP(host) ? undefined : host,
      key: cfg.keyPem,
      cert: cfg.certPem,
      ca: cfg.caPems,
      ALPNProtocols: [ALPN_REVERSE_TUNNEL],
      minVersion: 'TLSv1.2',
      // Trust comes from the cluster CA plus the proxy role in the certificate, not the host name: proxies
      // sit behind load balancers and are reached by addresses their certificates need not list.
      checkServerIdentity: (_host, cert) => {
        try {
          const id = identityFromPeerCert(cert);
          if (id.kind !== 'host' || !id.systemRoles?.includes('proxy')) return new Error('proxy certificate lacks the proxy role');
          if (id.cluster !== ownCluster) return new Error(`proxy belongs to cluster ${id.cluster}, not ${ownCluster}`);
          return undefined;
        } catch (err) {
          return err as Error;
        }
      },
    });
    link.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, PING_INTERVAL_MS);
    const handshakeTimer = setTimeout(() => socket.destroy(new Error('connect timed out')), connectTimeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(handshakeTimer);
      if (socket.alpnProtocol !== ALPN_REVERSE_TUNNEL) return void socket.destroy(new Error('proxy did not negotiate ward-reversetunnel'));
      serve(link, socket);
    });
    socket.on('error', (err) => log.warn({ proxy: link.addr, err: err.message }, 'tunnel connection failed'));
    socket.once('close', () => {
      clearTimeout(handshakeTimer);
      if (link.socket !== socket) return;
      if (link.up) log.info({ proxy: link.addr }, 'tunnel down');
      // In TLS 1.3 a proxy that refuses our certificate does so after our side of the handshake is done;
      // the alert often arrives as a bare close, so say it here rather than stay silent.
      else if (link.session) log.warn({ proxy: link.addr }, 'proxy closed the connection before accepting the tunnel');
      link.socket = undefined;
      link.session = undefined;
      link.up = false;
      schedule(link);
    });
  }

  function serve(link: ProxyLink, socket: tls.TLSSocket): void {
    let session: Http2Session | undefined;
    const take = (s: Http2Session) => (session = s);
    server.once('session', take);
    server.emit('connection', socket); // emits 'session' synchronously
    server.off('session', take);
    if (!session) return void socket.destroy(new Error('HTTP/2 session did not start'));
    const s = session;
    link.session = s;
    s.on('error', (err) => log.debug({ proxy: link.addr, err: err.message }, 'tunnel session error'));
    // The proxy sends its SETTINGS only after it accepted our identity; in TLS 1.3 a refused client cert
    // shows up only after our handshake finished, so this, not secureConnect, is "connected".
    s.once('remoteSettings', () => {
      link.up = true;
      link.attempt = 0;
      s.setLocalWindowSize(SESSION_WINDOW);
      log.info({ proxy: link.addr }, 'tunnel up');
    });
    keepAlive(link, s);
  }

  // A NAT or firewall silently drops idle flows; a PING every interval keeps the mapping alive, and a
  // missing ACK tells us the proxy is gone long before TCP would.
  function keepAlive(link: ProxyLink, s: Http2Session): void {
    const interval = setInterval(() => {
      if (s.destroyed) return clearInterval(interval);
      const deadline = setTimeout(() => {
        log.info({ proxy: link.addr }, 'tunnel keepalive timed out');
        s.destroy();
      }, pingTimeoutMs);
      try {
        s.ping((err) => {
          if (!err) clearTimeout(deadline);
        });
      } catch {
        clearTimeout(deadline);
        s.destroy();
      }
    }, pingEveryMs);
    s.once('close', () => {
      clearInterval(interval);
      // The session owns the socket, but make sure the link sees it go.
      link.socket?.destroy();
    });
  }

  // Proxies added by discovery are picked up on the next reconnect of any link and on this periodic look.
  function reconcile(): void {
    if (closed) return;
    for (const addr of opts.proxyAddrs()) {
      if (links.has(addr)) continue;
      const link: ProxyLink = { addr, attempt: 0, up: false };
      links.set(addr, link);
      connect(link);
    }
  }
  reconcile();
  const discovery = setInterval(reconcile, Math.max(maxMs, 1000));
  discovery.unref();

  return {
    connected: () => [...links.values()].filter((l) => l.up).map((l) => l.addr),
    async close() {
      closed = true;
      clearInterval(discovery);
      const waits: Promise<void>[] = [];
      for (const link of links.values()) {
        clearTimeout(link.timer);
        const socket = link.socket;
        if (socket && !socket.destroyed) {
          waits.push(new Promise((resolve) => socket.once('close', () => resolve())));
          // Destroying the session resets its streams, so every connection through this agent ends.
          if (link.session) link.session.destroy();
          socket.destroy();
        }
      }
      links.clear();
      await Promise.all(waits);
      server.close();
    },
  };
}

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new Error(`proxy address ${JSON.stringify(addr)} is not host:port`);
  return { host: m[1]!, port };
}
