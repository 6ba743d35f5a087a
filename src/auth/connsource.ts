// Where an Auth API connection comes from. TLS ends at the auth server, so a client that comes through a proxy's
// pass-through has the proxy as its TCP peer; the proxy writes a signed header first (api/proxyheader.ts) naming
// the client's address. The listener peeks at each connection with a deadline: a TLS record is a direct client
// (its address is the TCP peer's), a header is accepted only from a proxy of this cluster that is not locked, fresh
// and never seen before, and anything else is closed. The address then goes wherever the auth server uses a
// client's address (a join's loopback names and audit event, the join limits).
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Clock } from '../time/clock.ts';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import {
  MAX_PROXY_HEADER_BYTES,
  mayBeProxyHeader,
  parseProxyHeader,
  verifyProxyHeaderSignature,
  type ProxyHeader,
} from '../api/proxyheader.ts';
import { certValidity, readIdentity } from '../api/certinfo.ts';
import { verifyChain } from '../crypto/x509.ts';

/** How far a header's time may be from the auth server's clock, either way. */
export const HEADER_WINDOW_MS = 60_000;
/** Nonces remembered: a header is remembered for two windows, so this is 830 proxied connections a second. */
const MAX_NONCES = 100_000;
/** Verified proxy certificates remembered (a cluster has a few proxies, each with a renewed cert now and then). */
const MAX_CERTS = 256;
/** A connection that has not finished its first bytes (a TLS record or a whole header) by then is closed. */
export const PEEK_TIMEOUT_MS = 10_000;

export interface ProxyHeaderVerifierOptions {
  clusterName: string;
  clock: Clock;
  /** The CAs a proxy certificate may come from now: every key of the TLS CA's trust bundle (api/rotation.ts). */
  trustedCAs(): readonly string[];
  /** Why this host id is refused now (a lock, or its revocation), or undefined. */
  hostRefusal(hostId: string): Promise<string | undefined>;
}

interface VerifiedCert {
  publicKey: KeyObject;
  hostId: string;
  notBefore: number;
  notAfter: number;
}

export class ProxyHeaderVerifier {
  /** By SHA-256 of the DER: each proxy's certificate is parsed and chain-checked once, not per connection. */
  private readonly certs = new Map<string, VerifiedCert>();
  private certsFor: readonly string[] | undefined;
  /** Nonce (hex) -> until when it is remembered; in insertion order, which is the order of their expiry. */
  private readonly nonces = new Map<string, number>();

  constructor(private readonly opts: ProxyHeaderVerifierOptions) {}

  /** The client address the header vouches for, or AccessDenied saying why it is refused. */
  async verify(header: ProxyHeader): Promise<string> {
    const now = this.opts.clock.now().getTime();
    if (Math.abs(now - header.timeMs) > HEADER_WINDOW_MS) {
      throw new AccessDenied('proxy header is stale or from the future');
    }
    const cert = this.proxyCert(header.certDer, now);
    if (!verifyProxyHeaderSignature(header, cert.publicKey)) {
      throw new AccessDenied('proxy header signature is invalid');
    }
    const refusal = await this.opts.hostRefusal(cert.hostId);
    if (refusal) throw new AccessDenied(`proxy ${cert.hostId} is refused: ${refusal}`);
    this.rememberNonce(header.nonce.toString('hex'), now);
    return header.clientAddr;
  }

  /** Nonces remembered now (for tests). */
  get nonceCount(): number {
    return this.nonces.size;
  }

  private proxyCert(der: Buffer, now: number): VerifiedCert {
    const trusted = this.opts.trustedCAs();
    // A rotation changed what is trusted: every certificate is checked again against the new bundle.
    if (trusted !== this.certsFor) {
      this.certs.clear();
      this.certsFor = trusted;
    }
    const digest = createHash('sha256').update(der).digest('hex');
    let cert = this.certs.get(digest);
    if (!cert) {
      verifyChain(der, [...trusted], new Date(now));
      const identity = readIdentity(der);
      if (identity.kind !== 'host' || !identity.systemRoles?.includes('proxy')) {
        throw new AccessDenied('proxy header is not signed by a proxy');
      }
      if (identity.cluster !== this.opts.clusterName) throw new AccessDenied('proxy header is from another cluster');
      const { notBefore, notAfter } = certValidity(der);
      const publicKey = new X509Certificate(der).publicKey;
      cert = { publicKey, hostId: identity.hostId ?? identity.username, notBefore, notAfter };
      if (this.certs.size >= MAX_CERTS) this.certs.delete(this.certs.keys().next().value!);
      this.certs.set(digest, cert);
    }
    if (now < cert.notBefore || now > cert.notAfter) {
      throw new AccessDenied('proxy certificate is expired or not yet valid');
    }
    return cert;
  }

  private rememberNonce(nonce: string, now: number): void {
    for (const [seen, until] of this.nonces) {
      if (until > now) break;
      this.nonces.delete(seen);
    }
    if (this.nonces.has(nonce)) throw new AccessDenied('proxy header was replayed');
    // Full of headers younger than two windows: a replay could not be told from a new header, so none is taken.
    if (this.nonces.size >= MAX_NONCES) throw new AccessDenied('too many proxied connections to check for replays');
    // A header taken now carries a time no earlier than now - window, so it can be replayed until now + 2 windows.
    this.nonces.set(nonce, now + 2 * HEADER_WINDOW_MS);
  }
}

/** What identifies one TCP connection of this server, on the raw socket and on the TLS socket over it alike. */
interface ConnectionEnds {
  localAddress?: string;
  localPort?: number;
  remoteAddress?: string;
  remotePort?: number;
}

function connectionKey(s: ConnectionEnds): string {
  return `${s.localAddress}|${s.localPort}|${s.remoteAddress}|${s.remotePort}`;
}

/** The client addresses of one listener's connections that are open now. */
export class ClientAddresses {
  private readonly byConnection = new Map<string, string>();

  /** `clientAddr` is `socket`'s client address until it closes. */
  record(socket: Socket, clientAddr: string): void {
    const key = connectionKey(socket);
    this.byConnection.set(key, clientAddr);
    socket.once('close', () => this.byConnection.delete(key));
  }

  /**
   * The client address of a connection (given its TLS socket, or the HTTP/2 session's view of it): what a proxy
   * vouched for, else the TCP peer. '' for a connection not admitted (or closed since), which counts as no address:
   * never a loopback one.
   */
  of(socket: ConnectionEnds | undefined): string {
    return socket ? (this.byConnection.get(connectionKey(socket)) ?? '') : '';
  }
}

export interface AdmitOptions {
  addresses: ClientAddresses;
  verifier: ProxyHeaderVerifier;
  log: Logger;
  peekTimeoutMs?: number;
}

/**
 * Reads the first bytes of a raw connection, with a deadline and at most a header's worth, and hands it to `tls`
 * (with those bytes still to read) once its client address is known; or closes it.
 */
export function admitConnection(socket: Socket, tls: (socket: Socket) => void, opts: AdmitOptions): void {
  const { log } = opts;
  let head: Buffer = Buffer.alloc(0);
  let decided = false;
  const deadline = opts.peekTimeoutMs ?? PEEK_TIMEOUT_MS;
  const timer = setTimeout(() => close('no TLS handshake or proxy header in time'), deadline);
  function close(why: string, level: 'forged' | 'unchecked' | 'quiet' = 'quiet'): void {
    decided = true;
    clearTimeout(timer);
    socket.off('data', onData);
    const fields = { remote_addr: socket.remoteAddress, reason: why };
    if (level === 'forged') log.warn(fields, 'refused a forged proxy header');
    // Fail closed: a header whose proxy could not be checked for locks (the backend away) is not taken.
    else if (level === 'unchecked') log.warn(fields, 'could not check a proxy header; connection closed');
    else log.debug(fields, 'auth API connection closed before TLS');
    socket.destroy();
  }
  function handOver(clientAddr: string, rest: Buffer): void {
    clearTimeout(timer);
    opts.addresses.record(socket, clientAddr);
    socket.pause();
    if (rest.length > 0) socket.unshift(rest);
    tls(socket);
  }
  function onData(chunk: Buffer): void {
    if (decided) return;
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    if (head[0] === 0x16) {
      decided = true;
      socket.off('data', onData);
      return handOver(socket.remoteAddress ?? '', head);
    }
    if (!mayBeProxyHeader(head)) return close('neither TLS nor a proxy header');
    const parsed = parseProxyHeader(head);
    if (parsed.status === 'incomplete') {
      if (head.length > MAX_PROXY_HEADER_BYTES) close('proxy header is too long', 'forged');
      return;
    }
    if (parsed.status === 'invalid') return close(parsed.reason, 'forged');
    decided = true;
    socket.off('data', onData);
    socket.pause();
    const rest = head.subarray(parsed.length);
    opts.verifier.verify(parsed.header).then(
      (clientAddr) => {
        if (socket.destroyed) return clearTimeout(timer);
        handOver(clientAddr, rest);
      },
      (err: unknown) => {
        if (err instanceof AccessDenied || err instanceof BadParameter) close(err.message, 'forged');
        else close(String(err), 'unchecked');
      },
    );
  }
  socket.on('data', onData);
  socket.once('close', () => clearTimeout(timer));
}
