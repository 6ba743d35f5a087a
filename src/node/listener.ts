// The node's SSH port takes two kinds of connection (docs/nodes.md). Plain SSH, as from OpenSSH for break-glass
// access without a proxy; and SSH inside mutual TLS, which is how a proxy reaches a node it dials directly: only a
// proxy's host certificate opens that door, and the proxy checks the node's certificate in turn, so a proxy only
// ever splices a user to a real node. The first byte tells them apart: 0x16 opens a TLS handshake, SSH starts "SSH-".
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { ALPN_NODE_SSH, hostIdentityMismatch } from '../api/nodessh.ts';

/**
 * How long to wait for the client's first byte. Proxies and OpenSSH speak first (RFC 4253 4.2 lets both sides send
 * their version at once); a client that waits for the server's version line gets it after this, as plain SSH.
 */
export const FIRST_BYTE_TIMEOUT_MS = 3_000;
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
const TLS_RECORD_HANDSHAKE = 0x16;

/** Hands `socket` to `routes.tls` if its first byte opens a TLS handshake, else (or if it stays silent) to `ssh`. */
export function routeByFirstByte(
  socket: net.Socket,
  routes: { tls(socket: net.Socket): void; ssh(socket: net.Socket): void },
  timeoutMs = FIRST_BYTE_TIMEOUT_MS,
): void {
  const dispatch = (head: Buffer | undefined) => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    if (head) socket.unshift(head);
    if (head?.[0] === TLS_RECORD_HANDSHAKE) routes.tls(socket);
    else routes.ssh(socket);
  };
  const onData = (chunk: Buffer) => dispatch(chunk);
  const onClose = () => clearTimeout(timer);
  const timer = setTimeout(() => dispatch(undefined), timeoutMs);
  socket.on('data', onData);
  socket.once('close', onClose);
}

export interface ProxyDoorOptions {
  /** The node's TLS identity now (a renewed certificate from the next handshake on): its host certificate. */
  identity(): { keyPem: string; certPem: string };
  /** The cluster's TLS CA certificates now (tlsTrustBundle), read at every handshake; throws if unknown. */
  trustedCAs(): string[];
  cluster: string;
  /** Takes the TLS connection of a proxy that proved who it is: the user's SSH connection flows inside it. */
  onProxied(socket: tls.TLSSocket): void;
  log: Logger;
}

/** The TLS side of the node's SSH port: mutual TLS, and only a proxy of this cluster gets through. */
export function createProxyDoor(opts: ProxyDoorOptions): { handle(socket: net.Socket): void; close(): void } {
  const { log } = opts;
  let material = '';
  const contextFor = (id: { keyPem: string; certPem: string }, cas: string[]): tls.SecureContextOptions => ({
    key: id.keyPem,
    cert: id.certPem,
    ca: cas,
    minVersion: 'TLSv1.3',
  });
  const server = tls.createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [ALPN_NODE_SSH],
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
  });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    socket.on('error', (err) => log.debug({ err: err.message }, 'proxy connection error'));
    const remote = socket.remoteAddress;
    const reason = !socket.authorized
      ? `its certificate is not trusted (${String(socket.authorizationError)})`
      : socket.alpnProtocol !== ALPN_NODE_SSH
        ? `it did not ask for ${ALPN_NODE_SSH}`
        : hostIdentityMismatch(socket.getPeerCertificate(), { cluster: opts.cluster, systemRole: 'proxy' });
    if (reason) {
      log.warn({ remote, reason }, 'refused a TLS connection to the SSH port: only proxies may use it');
      socket.destroy();
      return;
    }
    opts.onProxied(socket);
  });
  // A failed handshake (no certificate, one from another CA, a stall past the timeout) is only reported: end it.
  server.on('tlsClientError', (err, socket) => {
    log.warn({ remote: socket.remoteAddress, err: err.message }, 'refused a TLS connection to the SSH port');
    socket.destroy();
  });
  return {
    handle(socket) {
      let cas: string[];
      let id: { keyPem: string; certPem: string };
      try {
        cas = opts.trustedCAs();
        id = opts.identity();
      } catch (err) {
        const reason = (err as Error).message;
        log.warn({ remote: socket.remoteAddress, err: reason }, 'cannot check a proxy now: connection refused');
        socket.destroy();
        return;
      }
      if (cas.length === 0) {
        log.warn({ remote: socket.remoteAddress }, 'no cluster TLS CA known: connection refused');
        socket.destroy();
        return;
      }
      // The server makes each connection's TLS state from its current context when it takes the connection, so a
      // renewed certificate or a rotated CA is in force from this handshake on.
      const now = id.certPem + cas.join('');
      if (now !== material) {
        server.setSecureContext(contextFor(id, cas));
        material = now;
      }
      server.emit('connection', socket);
    },
    close() {
      server.close();
    },
  };
}
