// Client side of reverse tunnels: a joined host (a node, or a db/app/kube service) behind NAT keeps one outbound
// TLS connection to every proxy and accepts multiplexed streams on it (muxsession.ts), so each proxy can open a
// stream per user connection it routes to this host. Connections are re-dialled with capped, jittered backoff and
// kept alive with PINGs.
import net, { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { identityFromPeerCert, readIdentity } from '../crypto/x509.ts';
import type { DialFields } from './streammux.ts';
import { MuxSession, type MuxStream } from './muxsession.ts';
import { RecordChannel } from './records.ts';
import {
  ALPN_REVERSE_TUNNEL,
  HEADER_CLIENT_ADDR,
  HEADER_TARGET,
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  checkMetaValue,
  muxLimits,
  type DialMeta,
} from './protocol.ts';

export interface TunnelClientTLS {
  keyPem: string;
  certPem: string;
  caPems: string[];
}

export interface TunnelClientOptions {
  /** `host:port` of every proxy; re-read before each (re)connect, so discovery can add and drop proxies. */
  proxyAddrs: () => string[];
  /** The agent's host certificate; a function is re-read on each (re)connect, so a renewed cert is picked up. */
  tls: TunnelClientTLS | (() => TunnelClientTLS);
  /** Called once per stream the proxy opens, after the agent has accepted it. The handler owns the stream. */
  onConnection(stream: Duplex, meta: DialMeta): void;
  log: Logger;
  backoff?: { minMs: number; maxMs: number };
  /** PING every intervalMs, drop the link if unacknowledged after timeoutMs (default 15 s / 10 s). */
  keepalive?: { intervalMs: number; timeoutMs: number };
  /** Bound on the TCP connect plus TLS handshake to one proxy (default 10 s). */
  connectTimeoutMs?: number;
}

export interface TunnelClient {
  close(): Promise<void>;
  /**
   * Dials every proxy again with the current certificate (`tls` is re-read: a renewed one) while the tunnels up now
   * keep working: each proxy moves new connections to the new tunnel and lets the old one drain.
   */
  renew(): void;
  /** Proxy addresses whose tunnel is up (the proxy accepted us and sent its HELLO). */
  connected(): string[];
}

interface ProxyLink {
  addr: string;
  attempt: number;
  timer?: NodeJS.Timeout;
  socket?: RecordChannel;
  session?: MuxSession;
  up: boolean;
}

export function startTunnelClient(opts: TunnelClientOptions): TunnelClient {
  const { log } = opts;
  const minMs = opts.backoff?.minMs ?? 200;
  const maxMs = opts.backoff?.maxMs ?? 10_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const pingEveryMs = opts.keepalive?.intervalMs ?? PING_INTERVAL_MS;
  const pingTimeoutMs = opts.keepalive?.timeoutMs ?? PING_TIMEOUT_MS;
  const links = new Map<string, ProxyLink>();
  /** Every open connection, a link's current one or one draining after renew(), so close() ends them all. */
  const sockets = new Set<RecordChannel>();
  let closed = false;
  /**
   * The TLS context of the current certificate. Building one parses the key, the certificate and the CAs (~0.75 ms
   * here), which every dial paid; after a proxy restart an agent may dial many times before it gets in (the proxy
   * closes connections past its handshake limit at once). Kept by content: `tls` may hand a new object each time,
   * and a renewal hands new material, which gets a new context.
   */
  let context: { material: string; value: tls.SecureContext } | undefined;
  function secureContextFor(cfg: TunnelClientTLS): tls.SecureContext {
    const material = `${cfg.keyPem}\0${cfg.certPem}\0${cfg.caPems.join('\0')}`;
    if (context?.material !== material) {
      // The records take their keys from the TLS 1.3 exporter (records.ts).
      context = {
        material,
        value: tls.createSecureContext({ key: cfg.keyPem, cert: cfg.certPem, ca: cfg.caPems, minVersion: 'TLSv1.3' }),
      };
    }
    return context.value;
  }

  // Roles reversed: the agent dialled out (it has no reachable port), yet the proxy is the side that
  // opens streams, so the agent accepts them on its own outbound socket.
  function onStream(stream: MuxStream, meta: DialFields): void {
    stream.on('error', (err) => log.debug({ err: err.message }, 'tunnel stream error'));
    const problem = checkMetaValue(HEADER_CLIENT_ADDR, meta.clientAddr) ?? checkMetaValue(HEADER_TARGET, meta.target);
    if (problem) {
      log.warn({ problem }, 'proxy sent a malformed dial');
      stream.refuse();
      return;
    }
    stream.accept();
    log.debug({ clientAddr: meta.clientAddr, target: meta.target }, 'tunnel stream opened');
    opts.onConnection(stream, { clientAddr: meta.clientAddr, target: meta.target });
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
    const raw = net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: PING_INTERVAL_MS });
    const socket = new RecordChannel(raw, { switchTimeoutMs: connectTimeoutMs });
    sockets.add(socket);
    const tlsSocket = tls.connect({
      socket: socket.transport!,
      servername: isIP(host) ? undefined : host,
      secureContext: secureContextFor(cfg),
      ALPNProtocols: [ALPN_REVERSE_TUNNEL],
      // Trust comes from the cluster CA plus the proxy role in the certificate, not the host name: proxies
      // sit behind load balancers and are reached by addresses their certificates need not list.
      checkServerIdentity: (_host, cert) => {
        try {
          const id = identityFromPeerCert(cert);
          if (id.kind !== 'host' || !id.systemRoles?.includes('proxy'))
            return new Error('proxy certificate lacks the proxy role');
          if (id.cluster !== ownCluster) return new Error(`proxy belongs to cluster ${id.cluster}, not ${ownCluster}`);
          return undefined;
        } catch (err) {
          return err as Error;
        }
      },
    });
    link.socket = socket;
    tlsSocket.once('secureConnect', () => {
      if (tlsSocket.alpnProtocol !== ALPN_REVERSE_TUNNEL)
        return void socket.destroy(new Error('proxy did not negotiate ward-reversetunnel'));
      try {
        socket.switchFromTLS(tlsSocket, 'client');
      } catch (err) {
        return void socket.destroy(err as Error);
      }
      serve(link, socket);
    });
    // Say why once: a TCP error ends TLS too (logged from the connection), a TLS error (a certificate) ends
    // the connection without one.
    const failed = (err: Error) => log.warn({ proxy: link.addr, err: err.message }, 'tunnel connection failed');
    socket.on('error', failed);
    tlsSocket.on('error', (err) => {
      if (!socket.errored) failed(err);
      socket.destroy();
    });
    socket.once('close', () => {
      sockets.delete(socket);
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

  function serve(link: ProxyLink, socket: RecordChannel): void {
    const s = new MuxSession(socket, {
      ...muxLimits,
      role: 'acceptor',
      onOpen: onStream,
      // The proxy sends its HELLO only after it accepted our identity; in TLS 1.3 a refused client cert
      // shows up only after our handshake finished, so this, not secureConnect, is "connected".
      onReady: () => {
        link.up = true;
        link.attempt = 0;
        log.info({ proxy: link.addr }, 'tunnel up');
      },
      onClose: (err) => {
        if (err) log.debug({ proxy: link.addr, err: err.message }, 'tunnel session error');
        // The session owns the socket, but make sure the link sees it go.
        socket.destroy();
      },
    });
    link.session = s;
    keepAlive(link, s);
  }

  // A NAT or firewall silently drops idle flows; a PING every interval keeps the mapping alive, and a
  // missing answer tells us the proxy is gone long before TCP would.
  function keepAlive(link: ProxyLink, s: MuxSession): void {
    let deadline: NodeJS.Timeout | undefined;
    const interval = setInterval(() => {
      if (s.isClosed) return clearInterval(interval);
      if (s.pingOutstanding) return; // the deadline below is already running
      s.ping();
      deadline = setTimeout(() => {
        if (!s.pingOutstanding || s.isClosed) return;
        log.info({ proxy: link.addr }, 'tunnel keepalive timed out');
        s.destroy();
      }, pingTimeoutMs);
    }, pingEveryMs);
    link.socket?.once('close', () => {
      clearInterval(interval);
      clearTimeout(deadline);
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
    renew() {
      if (closed) return;
      // Only tunnels that are up: one still connecting or waiting to retry takes the certificate when it dials.
      for (const link of links.values()) if (link.up) connect(link);
    },
    async close() {
      closed = true;
      clearInterval(discovery);
      const waits: Promise<void>[] = [];
      for (const link of links.values()) {
        clearTimeout(link.timer);
        const socket = link.socket;
        if (socket && !socket.destroyed) {
          waits.push(new Promise((resolve) => socket.once('close', () => resolve())));
          // Destroying the session ends its streams, so every connection through this agent ends.
          if (link.session) link.session.destroy();
          socket.destroy();
        }
      }
      links.clear();
      // Tunnels left draining by renew().
      for (const socket of sockets) {
        if (socket.destroyed) continue;
        waits.push(new Promise((resolve) => socket.once('close', () => resolve())));
        socket.destroy();
      }
      await Promise.all(waits);
    },
  };
}

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new Error(`proxy address ${JSON.stringify(addr)} is not host:port`);
  return { host: m[1]!, port };
}
