// The proxy's one public port. Peeks at the first bytes of each connection, with a deadline, and hands
// it on: TLS (routed by the ALPN it offers), SSH ("SSH-") or plain HTTP (redirected to HTTPS). A
// connection that says nothing, or nothing we know, is closed: never leaked, never crashing us.
import net from 'node:net';
import type { Logger } from 'pino';
import { listenOn, type ListenAddress } from '../config/listen.ts';
import { MAX_RECORD, peekClientHello, type ClientHelloInfo } from './clienthello.ts';

export interface PortMuxRoutes {
  tls(socket: net.Socket, hello: ClientHelloInfo): void;
  ssh?(socket: net.Socket): void;
  http(socket: net.Socket): void;
}

export interface PortMux {
  address: ListenAddress;
  close(): Promise<void>;
}

const EMPTY = Buffer.alloc(0);
const HTTP_METHODS = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) /;
/**
 * Once we have ended our side (ssh2 and TLS end rather than destroy on a protocol error), the peer has
 * this long to read our last words and close its side; a peer that never does would otherwise keep a
 * half-closed socket, and its descriptor, for ever.
 */
const END_GRACE_MS = 2_000;

export async function startPortMux(
  listen: string,
  routes: PortMuxRoutes,
  log: Logger,
  peekTimeoutMs = 10_000,
): Promise<PortMux> {
  const sockets = new Set<net.Socket>();
  // noDelay: the proxy relays SSH and TLS handshakes, whose small back-to-back writes Nagle would hold
  // for a delayed ACK (the node listener and the proxy's dial to it already set it).
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', (err) => log.debug({ err: err.message }, 'client connection error'));
    socket.once('finish', () => setTimeout(() => socket.destroy(), END_GRACE_MS).unref());
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), peekTimeoutMs);
    const dispatch = (route: (s: net.Socket) => void) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      socket.unshift(head);
      // This closure lives as long as the socket (its 'finish' listener shares it): drop the peeked bytes, a
      // slice that would pin an 8 KiB buffer-pool slab for every idle tunnel.
      head = EMPTY;
      route(socket);
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head[0] === 0x16) {
        const peek = peekClientHello(head);
        if (peek.status === 'ok') return dispatch((s) => routes.tls(s, peek.info));
        if (peek.status === 'invalid' || head.length > MAX_RECORD) return socket.destroy();
        return;
      }
      if (head.length < 4) return;
      if (head.subarray(0, 4).toString('latin1') === 'SSH-' && routes.ssh) return dispatch(routes.ssh);
      if (HTTP_METHODS.test(head.subarray(0, 8).toString('latin1'))) return dispatch(routes.http);
      socket.destroy();
    };
    socket.on('data', onData);
  });
  server.maxConnections = 50_000;
  const address = await listenOn(server, listen, 'proxy');
  log.info({ addr: `${address.host}:${address.port}` }, 'proxy listening');
  return {
    address,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Where the next pass-through starts: the backend that last answered (shared by all calls of one list). */
const lastGood = new WeakMap<object, number>();

/**
 * Splices a client connection to a backend (the auth API pass-through), bounded by a dial deadline per
 * backend. Given several, a backend that refuses or does not answer in time is skipped for the next, so
 * with one auth server dead the client still reaches another; the first that answers is remembered.
 * `prelude` is written to the backend first, once it answers (the proxy's signed header).
 */
export function spliceTo(
  socket: net.Socket,
  host: string | Array<{ host: string; port: number }>,
  port: number,
  log: Logger,
  prelude?: () => Buffer,
): void {
  const backends = typeof host === 'string' ? [{ host, port }] : host;
  const start = lastGood.get(backends) ?? 0;
  let upstream: net.Socket | undefined;
  let closed = false;
  const done = (err?: Error) => {
    if (closed) return;
    closed = true;
    if (err) log.debug({ err: err.message }, 'pass-through connection closed');
    socket.destroy();
    upstream?.destroy();
  };
  socket.once('close', () => done());
  const dial = (attempt: number) => {
    if (closed) return;
    const i = (start + attempt) % backends.length;
    const target = backends[i]!;
    // noDelay here too: with Nagle on the upstream leg, each small write behind unacknowledged data waits
    // for the auth server's delayed ACK, ~40 ms per round trip of every call through the proxy (bench/ls.ts;
    // the figures are in bench/README.md).
    const conn = net.connect({ host: target.host, port: target.port, noDelay: true });
    upstream = conn;
    const dialTimer = setTimeout(
      () => conn.destroy(new Error('dial timeout')),
      attempt + 1 < backends.length ? 3_000 : 10_000,
    );
    const failedDial = (err: Error) => {
      clearTimeout(dialTimer);
      if (attempt + 1 < backends.length) {
        log.debug(
          { backend: `${target.host}:${target.port}`, err: err.message },
          'pass-through backend unreachable; trying the next',
        );
        return dial(attempt + 1);
      }
      done(err);
    };
    conn.once('error', failedDial);
    conn.once('connect', () => {
      clearTimeout(dialTimer);
      conn.off('error', failedDial);
      if (backends.length > 1) lastGood.set(backends, i);
      conn.once('error', done);
      conn.once('close', () => done());
      if (prelude) conn.write(prelude());
      socket.pipe(conn);
      conn.pipe(socket);
      socket.resume();
    });
  };
  dial(0);
}
