// The Auth API's network face: HTTP/2 over mutual TLS. The handshake asks every client for a
// certificate but does not require one, because Ping must answer before a client has a certificate;
// each handler then decides from the verified peer certificate (authz.ts). Before TLS, a proxy's signed
// header may say whose connection it passes through (connsource.ts).
import { X509Certificate, constants as cryptoConstants } from 'node:crypto';
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { createContextValues } from '@connectrpc/connect';
import { compressionGzip, connectNodeAdapter } from '@connectrpc/connect-node';
import type { Compression } from '@connectrpc/connect/protocol';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import { authRoutes, clientAddrKey, heartbeatStreamHandling, socketKey, type AuthRouteOptions } from './api.ts';
import { isPlainHeartbeatStream, serveHeartbeatStream } from './heartbeatstream.ts';
import type { AuthServer } from './server.ts';
import { listenOn, type ListenAddress } from '../config/listen.ts';
import { describeLock } from '../rbac/locks.ts';
import { admitConnection, ClientAddresses, ProxyHeaderVerifier } from './connsource.ts';
import { hostLock } from './hostlocks.ts';

/**
 * gzip at level 1 for the answers that are compressed (listings over 64 KiB): 10,000 nodes (2.5 MB of JSON)
 * took 14 ms at the default level and take 6.5 ms at 1, for 356 KB instead of 324 KB on the wire.
 */
const gzipLevel1 = promisify(zlib.gzip);
const fastGzip: Compression = {
  ...compressionGzip,
  compress: (bytes) => gzipLevel1(bytes, { level: 1 }),
};

/** Request bodies over this size are refused before they are parsed. */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** A client that starts a handshake and goes silent is dropped after this (Node's default is 120 s). */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface AuthListener {
  address: ListenAddress;
  /**
   * A renewed certificate, or CAs changed by a rotation, for the handshakes that follow. Connections open now keep the
   * certificate they started with, except that those whose client certificate no longer comes from `caPems` are
   * closed (a TLS CA rotation reached standby: an identity from the dropped key must not live on in an open call).
   */
  setTLS(tls: AuthListenerTLS): void;
  close(): Promise<void>;
}

/** The auth server's key, its certificate chain (leaf, then CA) and the CAs client certificates must come from. */
export interface AuthListenerTLS {
  keyPem: string;
  certPem: string;
  caPems: string[];
}

/** The secure context, given whole at creation and at each renewal (setSecureContext resets what it is not given). */
function secureContextOptions(tls: AuthListenerTLS): SecureContextOptions {
  return {
    key: tls.keyPem,
    cert: tls.certPem,
    ca: tls.caPems,
    minVersion: 'TLSv1.2',
    // HTTP/2 forbids renegotiation (RFC 9113 §9.2.1), and authz.ts reads a connection's certificate once.
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  };
}

export async function startAuthListener(
  auth: AuthServer,
  tls: AuthListenerTLS,
  listen: string,
  log: Logger,
  opts: AuthRouteOptions & { peekTimeoutMs?: number } = {},
): Promise<AuthListener> {
  const clientAddrs = new ClientAddresses();
  const handler = connectNodeAdapter({
    routes: authRoutes(auth, log, opts),
    readMaxBytes: MAX_REQUEST_BYTES,
    // Answers under 64 KiB go uncompressed: gzip of a login's certificates (~3 KiB that barely compress)
    // was 5% of the server's CPU per GenerateUserCerts (bench/profile-api.ts); large listings still compress.
    compressMinBytes: 64 * 1024,
    acceptCompression: [fastGzip],
    // The session's socket, not req.socket: Node hands each HTTP/2 request a socket proxy of its own, while
    // the session's is one object per connection, so authz.ts can read the certificate once per connection.
    contextValues: (req) => {
      const socket = ((req as http2.Http2ServerRequest).stream?.session?.socket ?? req.socket) as TLSSocket;
      return createContextValues().set(socketKey, socket).set(clientAddrKey, clientAddrs.of(socket));
    },
  });
  const heartbeats = heartbeatStreamHandling(auth, log);
  const server = http2.createSecureServer(
    {
      ...secureContextOptions(tls),
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
      maxSessionMemory: 10,
      settings: { maxConcurrentStreams: 1000 },
    },
    (req, res) => {
      // An answer sent before the whole request body was read (one over MAX_REQUEST_BYTES, a refusal
      // of a streaming call) must end the HTTP/2 stream: we will not read the rest, and a client that
      // is still sending (curl) would otherwise wait for the end of the stream for ever. close() right
      // after end() resets it with NO_ERROR once the answer is out (RFC 9113 §8.1).
      const end = res.end.bind(res) as (...args: unknown[]) => typeof res;
      res.end = ((...args: unknown[]) => {
        const ended = end(...args);
        if (!req.complete) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
        return ended;
      }) as typeof res.end;
      if (isPlainHeartbeatStream(req))
        serveHeartbeatStream(req, res, req.stream.session!.socket as TLSSocket, heartbeats);
      else handler(req, res);
    },
  );
  // Answers are small back-to-back writes too (HEADERS, DATA, trailers): no Nagle delay on them.
  server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  server.on('sessionError', (err) => log.debug({ err: err.message }, 'auth API session error'));
  // Node only reports a refused or timed-out handshake; the socket stays open until we destroy it.
  server.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message }, 'auth API TLS error');
    socket.destroy();
  });
  server.setTimeout(0);
  const sessions = new Set<http2.ServerHttp2Session>();
  let trusted = tls.caPems;
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  const verifier = new ProxyHeaderVerifier({
    clusterName: auth.clusterName,
    clock: { now: () => auth.now() },
    trustedCAs: () => trusted,
    hostRefusal: async (hostId) => {
      const lock = await hostLock(auth, hostId);
      return lock && describeLock(lock);
    },
  });
  if (opts.metrics && !opts.metrics.getSingleMetric('ward_auth_proxy_header_nonces')) {
    new Gauge({
      name: 'ward_auth_proxy_header_nonces',
      help: 'Nonces of proxy headers the auth server remembers to refuse replays (bounded at 100,000)',
      registers: [opts.metrics],
      collect() {
        this.set(verifier.nonceCount);
      },
    });
  }
  // The TLS server listens through this one, which first learns each connection's client address.
  const raw = new Set<Socket>();
  const front = net.createServer((socket) => {
    raw.add(socket);
    socket.once('close', () => raw.delete(socket));
    socket.on('error', (err) => log.debug({ err: err.message }, 'auth API connection error'));
    const admit = { addresses: clientAddrs, verifier, log, peekTimeoutMs: opts.peekTimeoutMs };
    admitConnection(socket, (admitted) => server.emit('connection', admitted), admit);
  });
  const address = await listenOn(front, listen, 'auth API');
  log.info({ addr: `${address.host}:${address.port}` }, 'auth API listening');
  return {
    address,
    setTLS: (renewed) => {
      server.setSecureContext(secureContextOptions(renewed));
      const dropped = trusted.filter((pem) => !renewed.caPems.includes(pem));
      trusted = renewed.caPems;
      if (dropped.length === 0) return;
      // The handshake verified each certificate's signature already; which CA it chains to is a name and key id match.
      const cas = renewed.caPems.map((pem) => new X509Certificate(pem));
      for (const session of sessions) {
        const peer = (session.socket as TLSSocket).getPeerCertificate?.(false);
        if (!peer?.raw) continue;
        const cert = new X509Certificate(peer.raw);
        if (cas.some((ca) => cert.checkIssued(ca))) continue;
        log.info({ subject: peer.subject?.CN }, 'closing an auth API connection: its certificate is from a dropped CA');
        session.destroy();
      }
    },
    close: () =>
      new Promise((resolve) => {
        front.close(() => resolve());
        // Open sessions (watch streams above all) would keep the server up: end them too.
        for (const session of sessions) session.destroy();
        for (const socket of raw) socket.destroy();
      }),
  };
}
