// The Auth API client used by wsh, wctl, proxies and agents. It dials either an auth server or any
// proxy (ALPN "ward-auth" makes the proxy pass the connection through untouched), always with mutual
// TLS end to end: the server must prove it is an auth server of the cluster, the client proves who
// it is with its certificate.
import tls from 'node:tls';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { AuthService } from './gen/ward/auth/v1/auth_pb.ts';
import { ConnectionProblem, ERROR_CODE_HEADER, errorFromCode, type WardError } from './errors.ts';
import { identityFromPeerCert } from './certinfo.ts';
import { failoverClient, splitAddrList } from './failover.ts';
import { splitAddr } from './addr.ts';
import { untrustedServer } from './trust.ts';

export type AuthClient = Client<typeof AuthService>;

/** ALPN that proxies route straight to an auth server (DESIGN.md: the auth API through the proxy). */
export const ALPN_AUTH = 'ward-auth';

export interface TLSIdentity {
  keyPem: string;
  certPem: string;
  caPems: string[];
}

export interface AuthClientOptions {
  /** host:port of an auth server or of a proxy; a comma-separated list fails over (failover.ts). */
  addr: string;
  /**
   * Client certificate; without it only Ping answers. A function is asked before every call: when it returns another
   * object (a renewed host certificate), that call and the ones after it go over new connections with it, while
   * calls and streams already running finish on theirs.
   */
  identity?: TLSIdentity | (() => TLSIdentity);
  /** CA certs to trust when there is no identity (first contact). */
  caPems?: string[];
  /** Skip checking the server certificate (home labs only). */
  insecure?: boolean;
  timeoutMs?: number;
  /** Close the HTTP/2 connection after this long without a call (default: connect-node's, 15 minutes). */
  idleTimeoutMs?: number;
  /** What errors call the server when it cannot be reached (default "the auth server"), e.g. "the proxy at HOST:PORT".
   */
  describedAs?: string;
}

/** Turns an RPC failure into the typed Ward error the server meant. */
export function fromRPCError(err: unknown, server = 'the auth server'): WardError | Error {
  if (!(err instanceof ConnectError)) return err as Error;
  const code = err.metadata.get(ERROR_CODE_HEADER);
  if (code) return errorFromCode(code, err.rawMessage);
  const untrusted = untrustedServer(server, err.cause instanceof Error ? err.cause : { message: err.rawMessage });
  if (untrusted) return untrusted;
  if (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded || err.code === Code.Canceled) {
    return new ConnectionProblem(`cannot reach ${server}: ${err.rawMessage}`);
  }
  return errorFromCode('', err.rawMessage);
}

/**
 * Every unary call rejects with a typed Ward error. (An interceptor cannot do this: connect re-wraps
 * whatever an interceptor throws.) Streams are iterated by their callers, who use fromRPCError.
 */
function withTypedErrors<T extends object>(client: T, server: string | undefined): T {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return result instanceof Promise
          ? result.catch((err: unknown) => Promise.reject(fromRPCError(err, server)))
          : result;
      };
    },
  });
}

/** The server must hold an auth server's certificate from the cluster CA, whatever its DNS name. */
function checkAuthServer(_host: string, cert: tls.PeerCertificate): Error | undefined {
  try {
    const id = identityFromPeerCert(cert);
    if (id.kind === 'host' && id.systemRoles?.includes('auth')) return undefined;
  } catch {
    // fall through
  }
  return new ConnectionProblem('the server is not an auth server of this cluster');
}

export function createAuthClient(opts: AuthClientOptions): AuthClient {
  const addrs = splitAddrList(opts.addr);
  if (addrs.length === 0) throw new ConnectionProblem(`invalid address "${opts.addr}" (expected host:port)`);
  const { identity } = opts;
  // Failover sits below the typed errors: it decides on connect's own codes, before they are mapped.
  const build = (id: TLSIdentity | undefined) =>
    withTypedErrors(
      failoverClient(addrs.map((addr) => connectClient({ ...opts, identity: id, addr }))),
      opts.describedAs,
    );
  if (typeof identity !== 'function') return build(identity);
  // A client per identity: connect-node keeps an HTTP/2 connection open and reuses it, and the auth server reads the
  // certificate once per connection, so a renewed certificate needs connections of its own. The previous client's
  // connections close once idle (idleTimeoutMs).
  let current: { identity: TLSIdentity; client: AuthClient } | undefined;
  const client = (): AuthClient => {
    const id = identity();
    if (current?.identity !== id) current = { identity: id, client: build(id) };
    return current.client;
  };
  return new Proxy({} as AuthClient, {
    get(_target, prop) {
      const c = client();
      const value = Reflect.get(c, prop, c) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(c) : value;
    },
  });
}

function connectClient(opts: Omit<AuthClientOptions, 'identity'> & { identity?: TLSIdentity }): AuthClient {
  const [host, port] = splitAddr(opts.addr);
  const caPems = opts.identity?.caPems ?? opts.caPems;
  const transport = createConnectTransport({
    httpVersion: '2',
    baseUrl: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    defaultTimeoutMs: opts.timeoutMs ?? 15_000,
    ...(opts.idleTimeoutMs !== undefined ? { idleConnectionTimeoutMs: opts.idleTimeoutMs } : {}),
    // A connection that carried nothing for this long is checked with an HTTP/2 PING (answered within 15 s, or it is
    // closed with its streams): a long-lived stream (heartbeats, watch) to an auth server that hangs or is cut off
    // by a partition ends and is re-opened, instead of waiting on a dead connection until TCP gives up (~15 min).
    pingIntervalMs: 30_000,
    nodeOptions: {
      // RPCs are small back-to-back writes (HEADERS, DATA, WINDOW_UPDATE): Nagle would hold them for ACKs.
      createConnection: () =>
        tls
          .connect({
            host,
            port,
            servername: /^[\d.:]+$/.test(host) ? undefined : host,
            ALPNProtocols: [ALPN_AUTH, 'h2'],
            key: opts.identity?.keyPem,
            cert: opts.identity?.certPem,
            ca: caPems,
            rejectUnauthorized: !opts.insecure,
            checkServerIdentity: opts.insecure ? () => undefined : checkAuthServer,
          })
          .setNoDelay(true),
    },
  });
  return createClient(AuthService, transport);
}

export { splitAddr } from './addr.ts';
