// Proxy side of reverse tunnels: accepts agents' outbound TLS connections (ALPN ward-reversetunnel, routed
// here by the mux), checks their host identity, and opens one HTTP/2 stream on an agent's session for
// each user connection the proxy routes to that agent. The agent serves; the proxy is the HTTP/2 client.
import { constants as cryptoConstants } from 'node:crypto';
import http2 from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { BadParameter, ConnectionProblem, NotFound } from '../api/errors.ts';
import { identityFromPeerCert } from '../crypto/x509.ts';
import {
  AGENT_SYSTEM_ROLES,
  ALPN_REVERSE_TUNNEL,
  DIAL_METHOD,
  DIAL_PATH,
  HEADER_CLIENT_ADDR,
  HEADER_TARGET,
  MAX_SESSION_MEMORY_MB,
  PING_INTERVAL_MS,
  SESSION_WINDOW,
  checkMetaValue,
  h2Settings,
  type DialMeta,
} from './protocol.ts';

export interface TunnelServerOptions {
  /** The proxy's host certificate: key, chain (leaf then cluster CA), and the cluster CA(s) agents are signed by. */
  tls: { keyPem: string; certChainPem: string; caPems: string[] };
  log: Logger;
  /** Told when an agent's tunnel becomes the current one (up) and when the current one goes away (down). */
  onAgent?(hostId: string, up: boolean): void;
  /** Bound on waiting for the agent to answer a dial (default 10 s). */
  dialTimeoutMs?: number;
}

export interface TunnelServer {
  /** Takes a raw TCP socket whose ClientHello offered ALPN ward-reversetunnel (not yet TLS-terminated). */
  handle(rawSocket: net.Socket): void;
  /** Opens a stream to `hostId`'s agent. NotFound if it holds no tunnel here. */
  dial(hostId: string, meta: DialMeta, signal?: AbortSignal): Promise<Duplex>;
  /** Host ids with a tunnel to this proxy. */
  agents(): string[];
  close(): Promise<void>;
}

// Per-tunnel state is deliberately small: at 10,000 idle tunnels every field is paid 10,000 times.
interface AgentSession {
  hostId: string;
  h2: ClientHttp2Session;
  /** Certificate notAfter (ms): the handshake checked validity once, the sweep enforces it for the tunnel's life. */
  expiresAt: number;
  /** A keepalive PING is in flight. */
  pinging: boolean;
}

const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export function createTunnelServer(opts: TunnelServerOptions): TunnelServer {
  const { log } = opts;
  const dialTimeoutMs = opts.dialTimeoutMs ?? 10_000;
  /** The current session per host; a reconnecting agent's newest session replaces the old one here. */
  const current = new Map<string, AgentSession>();
  /** Every live session, current or draining, so keepalive and close() reach them all. */
  const live = new Set<AgentSession>();
  let closed = false;

  // One TLS server object terminates every tunnel; sockets are handed in with emit('connection').
  const tlsServer = tls.createServer({
    key: opts.tls.keyPem,
    cert: opts.tls.certChainPem,
    ca: opts.tls.caPems,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [ALPN_REVERSE_TUNNEL],
    minVersion: 'TLSv1.2',
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    // No session tickets: an agent never resumes (it holds one long-lived connection and a fresh handshake
    // re-checks its certificate), and issuing TLS 1.3 tickets left ~9 KiB more per idle tunnel in the proxy
    // (bench/tunnel-memory.ts, 2,000 tunnels: 68 -> 59 KiB RSS each).
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  });
  tlsServer.on('tlsClientError', (err, socket) => {
    log.info({ err: err.message, remote: socket.remoteAddress }, 'tunnel agent refused in TLS handshake');
    // Node reports a refused or timed-out handshake (handshakeTimeout) but leaves the socket open.
    socket.destroy();
  });
  tlsServer.on('secureConnection', (socket) => {
    try {
      accept(socket);
    } catch (err) {
      log.warn({ err: (err as Error).message, remote: socket.remoteAddress }, 'tunnel agent refused');
      socket.destroy();
    }
  });

  function accept(socket: tls.TLSSocket): void {
    if (closed) throw new ConnectionProblem('tunnel server is closing');
    if (socket.alpnProtocol !== ALPN_REVERSE_TUNNEL) throw new BadParameter('agent did not negotiate ward-reversetunnel');
    // rejectUnauthorized already tied the chain to the cluster CA; what is left is what kind of peer this is.
    const id = identityFromPeerCert(socket.getPeerCertificate());
    const hostId = id.hostId;
    if (id.kind !== 'host' || !hostId) throw new BadParameter('tunnel peer is not a host');
    if (!id.systemRoles?.some((r) => (AGENT_SYSTEM_ROLES as readonly string[]).includes(r))) {
      throw new BadParameter(`host ${hostId} has no agent system role`);
    }
    // Roles reversed: the agent dialled us, but the proxy is the side that opens streams, so it is the
    // HTTP/2 client on the socket it accepted.
    const h2 = http2.connect(`http://${ALPN_REVERSE_TUNNEL}.invalid`, {
      createConnection: () => socket,
      settings: h2Settings,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
      // The agent is a server here; it may not push or open streams, and its headers are bounded above.
      maxHeaderListPairs: 32,
    });
    const s: AgentSession = { hostId, h2, expiresAt: Date.parse(id.expires), pinging: false };
    live.add(s);
    h2.on('error', (err) => log.debug({ hostId, err: err.message }, 'tunnel session error'));
    h2.once('connect', () => h2.setLocalWindowSize(SESSION_WINDOW));
    h2.once('close', () => {
      live.delete(s);
      if (current.get(hostId) === s) {
        current.delete(hostId);
        log.info({ hostId }, 'tunnel down');
        opts.onAgent?.(hostId, false);
      }
    });
    const previous = current.get(hostId);
    current.set(hostId, s);
    // Graceful: the old session takes no new streams (GOAWAY) but keeps the ones it carries. If it is dead
    // (the usual reason an agent reconnects), keepalive destroys it.
    if (previous) previous.h2.close();
    log.info({ hostId, remote: socket.remoteAddress, replaced: previous !== undefined }, 'tunnel up');
    opts.onAgent?.(hostId, true);
  }

  // One timer for all tunnels instead of one per tunnel. An agent also pings us; this catches a half-open
  // connection from the proxy's side within two intervals, and ends tunnels whose certificate expired.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of live) {
      if (s.h2.destroyed) continue;
      if (now >= s.expiresAt) {
        log.info({ hostId: s.hostId }, 'tunnel certificate expired');
        s.h2.destroy();
      } else if (s.pinging) {
        log.info({ hostId: s.hostId }, 'tunnel keepalive timed out');
        s.h2.destroy();
      } else {
        s.pinging = true;
        try {
          s.h2.ping((err) => {
            if (!err) s.pinging = false;
          });
        } catch {
          s.h2.destroy(); // too many unacknowledged pings, or the session is closing
        }
      }
    }
  }, PING_INTERVAL_MS);
  sweep.unref();

  return {
    handle(rawSocket) {
      if (closed) return void rawSocket.destroy();
      tlsServer.emit('connection', rawSocket);
    },

    async dial(hostId, meta, signal) {
      signal?.throwIfAborted();
      for (const [what, value] of [[HEADER_CLIENT_ADDR, meta.clientAddr], [HEADER_TARGET, meta.target]] as const) {
        const problem = checkMetaValue(what, value);
        if (problem) throw new BadParameter(problem);
      }
      const s = current.get(hostId);
      if (!s || s.h2.closed || s.h2.destroyed) throw new NotFound(`no tunnel to node ${hostId}`);
      let stream: ClientHttp2Stream;
      try {
        stream = s.h2.request({
          ':method': DIAL_METHOD,
          ':path': DIAL_PATH,
          [HEADER_CLIENT_ADDR]: meta.clientAddr,
          [HEADER_TARGET]: meta.target,
        });
      } catch (err) {
        throw new ConnectionProblem(`tunnel to node ${hostId} is closing: ${(err as Error).message}`);
      }
      // Whoever takes the stream adds its own handlers; this one keeps a reset from crashing the process.
      stream.on('error', (err) => log.debug({ hostId, err: err.message }, 'tunnel stream error'));
      await waitForResponse(stream, hostId, dialTimeoutMs, signal);
      return stream;
    },

    agents: () => [...current.keys()],

    async close() {
      closed = true;
      clearInterval(sweep);
      const all = [...live];
      await Promise.all(
        all.map((s) => new Promise<void>((resolve) => {
          if (s.h2.destroyed) return resolve();
          s.h2.once('close', () => resolve());
          s.h2.destroy();
        })),
      );
    },
  };
}

/** Resolves on the agent's 200; rejects on any other answer, a reset, the deadline, or the caller's abort. */
function waitForResponse(stream: ClientHttp2Stream, hostId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      cleanup();
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(err);
    };
    const onResponse = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
      cleanup();
      if (headers[':status'] === 200) return resolve();
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new ConnectionProblem(`agent ${hostId} refused the connection (status ${headers[':status']})`));
    };
    const onClose = () => fail(new ConnectionProblem(`tunnel to node ${hostId} closed before the agent answered`));
    const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new ConnectionProblem('dial aborted'));
    const timer = setTimeout(() => fail(new ConnectionProblem(`agent ${hostId} did not answer within ${timeoutMs} ms`)), timeoutMs);
    function cleanup() {
      clearTimeout(timer);
      stream.off('response', onResponse);
      stream.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    }
    stream.once('response', onResponse);
    stream.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
