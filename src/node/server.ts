// The Node Service's SSH server: the sshd replacement on every Ward node. It authenticates users by
// their Ward user certificate only, then hands each connection's channels to sessions (session.ts),
// SFTP (sftp.ts), port forwarding (forward.ts) and agent forwarding (agentforward.ts).
import net from 'node:net';
import type { Duplex } from 'node:stream';
import crypto from 'node:crypto';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerConfig } from 'ssh2';
import type pino from 'pino';
import { BadParameter } from '../api/errors.ts';
import { parseCertificate, type SSHCertificate } from '../crypto/sshcert.ts';
import { CERT_SUFFIX, verifySSHSignature } from '../crypto/sshkeys.ts';
import { lookupUser, type OSUser } from './osuser.ts';
import { handleSession } from './session.ts';
import { handleDirectTcpip, RemoteForwards } from './forward.ts';
import type { ConnContext, Identity, NodeSSHServerLimits, SessionHooks } from './connection.ts';
import { routeByFirstByte } from './listener.ts';
import { connectionSocket, onChannelData } from '../ssh/ssh2hooks.ts';

export type Authorization =
  | {
      allowed: true;
      user: string;
      cert: SSHCertificate;
      permitPortForwarding: boolean;
      permitGatewayPorts: boolean;
      permitAgentForwarding: boolean;
      permitPty: boolean;
    }
  /** `rbac`: the roles refused it (an access.denied event), not the certificate. */
  | { allowed: false; reason: string; rbac?: boolean };

/** Called on the first (unsigned) publickey request with the cert blob; returns the session's identity or a refusal
 * reason. */
export type UserAuthorizer = (req: { certBlob: Buffer; login: string; remoteAddr: string }) => Promise<Authorization>;

export interface NodeSSHServerConfig {
  hostKeys: Array<string | Buffer | { key: string | Buffer; certificate: Buffer }>; // passed through to ssh2
  authorize: UserAuthorizer;
  log: pino.Logger;
  /** Audit hook: auth, session.start, session.end, exec, subsystem, port, agent (fields as plain objects). */
  onEvent?: (event: string, fields: Record<string, unknown>) => void;
  banner?: string;
  limits?: Partial<NodeSSHServerLimits>;
  /** Interactive sessions: recording, the live-session registry and joining. None: not recorded. */
  sessions?: SessionHooks;
}

export interface NodeSSHServer {
  /**
   * Serves SSH on `addr`. With `tls`, a connection whose first byte opens a TLS handshake goes there instead
   * (listener.ts: the proxies' door); plain SSH is served either way.
   */
  listen(addr: string, opts?: { tls?: (socket: net.Socket) => void }): Promise<{ host: string; port: number }>;
  /** Serve an already-connected stream (a reverse-tunnel stream); `remoteAddr` is the user's address if known. */
  injectSocket(socket: Duplex, remoteAddr?: string): void;
  /** Presents these host keys (a renewed host certificate) to connections from now on; open ones keep theirs. */
  setHostKeys(hostKeys: NodeSSHServerConfig['hostKeys']): void;
  /**
   * Ends every connection whose identity `reasonFor` gives a reason for (a lock): each of its sessions
   * is told why, then the connection is closed. Returns how many connections were ended.
   */
  terminate(reasonFor: (identity: Identity) => string | undefined): number;
  close(): Promise<void>;
}

const DEFAULT_LIMITS: NodeSSHServerLimits = {
  maxChannels: 10,
  maxRemoteForwards: 10,
  handshakeTimeoutMs: 30_000,
  idleTimeoutMs: 0,
};
const MAX_AUTH_ATTEMPTS = 6; // distinct (login, cert) pairs per connection, like sshd's MaxAuthTries
/**
 * Our version string. OpenSSH sends `eow@openssh.com` (needed so `ssh node cmd | head` ends) only to
 * peers whose version starts "OpenSSH" (compat.c SSH_NEW_OPENSSH); "OpenSSH_*" with no known-bug
 * version number sets no other compat flag. The comment part names the real software.
 */
export const SERVER_IDENT = 'OpenSSH_9.9 Ward_0.1';

export function createNodeSSHServer(cfg: NodeSSHServerConfig): NodeSSHServer {
  const limits: NodeSSHServerLimits = { ...DEFAULT_LIMITS, ...cfg.limits };
  const log = cfg.log;
  const emit = (event: string, fields: Record<string, unknown>): boolean => {
    try {
      cfg.onEvent?.(event, fields);
      return true;
    } catch (err) {
      log.error({ err: (err as Error).message, event }, 'cannot write the audit event: refusing what needed it');
      return false;
    }
  };
  // One ssh2 server per set of host keys: ssh2 reads them when it is made, and a renewed host certificate
  // (setHostKeys) takes a new one for the connections that follow.
  const newServer = (hostKeys: NodeSSHServerConfig['hostKeys']): ssh2.Server => {
    const server = new ssh2.Server({
      hostKeys: hostKeys as ServerConfig['hostKeys'],
      ident: SERVER_IDENT,
      banner: cfg.banner,
    });
    server.on('connection', (client, info) => {
      try {
        onConnection(client, info.ip ?? '', info.port ?? 0);
      } catch (err) {
        log.debug({ err }, 'connection setup failed');
        client.end();
      }
    });
    server.on('error', (err: Error) => log.debug({ err }, 'ssh server error'));
    return server;
  };
  let sshd = newServer(cfg.hostKeys);
  const sockets = new Set<Duplex>();
  const listeners = new Set<net.Server>();
  const connections = new Set<ConnContext>();
  /** How long the user's sessions get to show why they end before the connection closes. */
  const NOTICE_GRACE_MS = 250;
  const authenticated = new WeakSet<object>();

  function onConnection(client: Connection, remoteAddr: string, remotePort: number): void {
    const id = crypto.randomUUID();
    const clog = log.child({ conn: id, remote: remoteAddr });
    const cleanups: Array<() => void> = [];
    const decisions = new Map<string, Promise<Authorization & { osUser?: OSUser }>>();
    let identity: Identity | undefined;
    let channels = 0;

    client.on('error', (err: Error) => clog.debug({ err: err.message }, 'connection error'));
    client.on('close', () => {
      for (const fn of cleanups.splice(0)) {
        try {
          fn();
        } catch (err) {
          clog.debug({ err }, 'cleanup failed');
        }
      }
      clog.debug('connection closed');
    });

    client.on('authentication', (ctx) => {
      authenticate(ctx).catch((err: unknown) => {
        clog.debug({ err }, 'authentication error');
        ctx.reject(['publickey']);
      });
    });

    async function authenticate(ctx: AuthContext): Promise<void> {
      const login = ctx.username;
      const fail = (reason: string): void => {
        clog.info({ login, method: ctx.method, reason }, 'authentication refused');
        emit('auth', { success: false, login, method: ctx.method, remote_addr: remoteAddr, reason });
        ctx.reject(['publickey']);
      };
      if (ctx.method === 'none') return ctx.reject(['publickey']); // the client asking which methods exist
      if (ctx.method !== 'publickey') return fail(`method ${ctx.method} is not allowed`);
      if (!ctx.key.algo.endsWith(CERT_SUFFIX)) return fail('a Ward user certificate is required');
      const certBlob = ctx.key.data;
      const cacheKey = `${login}\0${certBlob.toString('base64')}`;
      let decision = decisions.get(cacheKey);
      if (!decision) {
        if (decisions.size >= MAX_AUTH_ATTEMPTS) {
          fail('too many authentication attempts');
          client.end();
          return;
        }
        decision = decide(certBlob, login);
        decisions.set(cacheKey, decision);
      }
      const d = await decision;
      if (!d.allowed) {
        if (d.rbac)
          emit('access.denied', {
            user: userOf(certBlob),
            login,
            remote_addr: remoteAddr,
            action: 'ssh.login',
            reason: d.reason,
          });
        return fail(d.reason);
      }
      // ssh2 does not compare the announced algorithm with the certificate's own type.
      if (d.cert.keyType !== ctx.key.algo) return fail('the announced algorithm is not the certificate type');
      // The first request only asks "would this key do?" (RFC 4252 7): answer PK_OK without a signature.
      if (!ctx.signature) return ctx.accept();
      // The signature is by the certified key, never a key parsed out of the cert blob by ssh2.
      if (!verifySSHSignature(d.cert.publicKey, ctx.blob!, ctx.signature)) return fail('invalid signature');
      identity = {
        user: d.user,
        login,
        cert: d.cert,
        osUser: d.osUser!,
        permitPortForwarding: d.permitPortForwarding,
        permitGatewayPorts: d.permitGatewayPorts,
        permitAgentForwarding: d.permitAgentForwarding,
        permitPty: d.permitPty,
      };
      clog.info({ user: d.user, login, key_id: d.cert.keyId }, 'authenticated');
      emit('auth', { success: true, user: d.user, login, remote_addr: remoteAddr, key_id: d.cert.keyId });
      ctx.accept();
    }

    async function decide(certBlob: Buffer, login: string): Promise<Authorization & { osUser?: OSUser }> {
      let d: Authorization;
      try {
        d = await cfg.authorize({ certBlob, login, remoteAddr });
      } catch (err) {
        clog.warn({ err }, 'authorizer failed');
        return { allowed: false, reason: 'authorization failed' };
      }
      if (!d.allowed) return d;
      if (!d.cert.blob.equals(certBlob)) return { allowed: false, reason: 'authorizer returned another certificate' };
      try {
        return { ...d, osUser: await lookupUser(login) };
      } catch {
        return { allowed: false, reason: `no OS user "${login}" on this node` };
      }
    }

    client.on('ready', () => {
      const sock = connectionSocket(client);
      if (sock) authenticated.add(sock);
      const ctx: ConnContext = {
        id,
        client,
        identity: identity!,
        remote: { addr: remoteAddr, port: remotePort },
        local: { addr: sock?.localAddress ?? '', port: sock?.localPort ?? 0 },
        log: clog.child({ user: identity!.user, login: identity!.login }),
        limits,
        sessions: cfg.sessions,
        emit,
        acquireChannel() {
          if (channels >= limits.maxChannels) return null;
          channels++;
          let released = false;
          return () => {
            if (!released) channels--;
            released = true;
          };
        },
        onClose(fn) {
          cleanups.push(fn);
        },
        notices: new Set(),
      };
      connections.add(ctx);
      ctx.onClose(() => connections.delete(ctx));
      if (limits.idleTimeoutMs > 0) startIdleTimer(ctx);
      const forwards = new RemoteForwards(ctx);
      client.on('session', (accept, reject) => handleSession(ctx, accept, reject));
      client.on('tcpip', (accept, reject, info) => handleDirectTcpip(ctx, accept, reject, info));
      client.on('request', (accept, reject, name, info) => forwards.onRequest(accept, reject, name, info));
    });
  }

  /** Ends the connection after idleTimeoutMs without channel data from the client (keepalives do not count). */
  function startIdleTimer(ctx: ConnContext): void {
    const timer = setTimeout(() => {
      ctx.log.info('idle timeout');
      ctx.emit('session.idle_timeout', { user: ctx.identity.user, login: ctx.identity.login, conn: ctx.id });
      ctx.client.end();
    }, ctx.limits.idleTimeoutMs);
    ctx.onClose(() => clearTimeout(timer));
    onChannelData(ctx.client, () => timer.refresh());
  }

  function serve(socket: Duplex): void {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // ssh2 reports socket errors as client errors; a stream without listeners would throw
    // A peer that never finishes the handshake and authentication is dropped; ssh2 has no such timer.
    const timer = setTimeout(() => {
      if (!authenticated.has(socket)) socket.destroy();
    }, limits.handshakeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    sshd.injectSocket(socket as net.Socket);
  }

  return {
    async listen(addr, opts = {}) {
      const { host, port } = splitHostPort(addr);
      const door = opts.tls;
      const srv = net.createServer({ noDelay: true }, (socket) => {
        if (!door) return serve(socket);
        // Held from accept, so close() ends a connection still being told apart or in its TLS handshake.
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        socket.on('error', () => {});
        routeByFirstByte(socket, { tls: door, ssh: serve });
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen({ port, host, backlog: 4096 }, () => {
          // deep accept queue: see config/listen.ts
          srv.off('error', reject);
          resolve();
        });
      });
      srv.on('error', (err) => log.error({ err }, 'listener error'));
      listeners.add(srv);
      const a = srv.address() as net.AddressInfo;
      log.info({ addr: `${a.address}:${a.port}` }, 'ssh listening');
      return { host: a.address, port: a.port };
    },
    injectSocket(socket, remoteAddr) {
      // ssh2 reads remoteAddress/remotePort off the socket; a tunnel stream has none of its own.
      if (!(socket instanceof net.Socket)) {
        Object.defineProperty(socket, 'remoteAddress', { value: remoteAddr ?? '', configurable: true });
        Object.defineProperty(socket, 'remotePort', { value: 0, configurable: true });
      }
      serve(socket);
    },
    setHostKeys(hostKeys) {
      sshd = newServer(hostKeys);
    },
    terminate(reasonFor) {
      let ended = 0;
      for (const ctx of connections) {
        const reason = reasonFor(ctx.identity);
        if (!reason) continue;
        ended++;
        connections.delete(ctx);
        ctx.log.info({ reason }, 'ending the connection: locked');
        emit('session.terminated', {
          user: ctx.identity.user,
          login: ctx.identity.login,
          conn: ctx.id,
          remote_addr: ctx.remote.addr,
          reason,
        });
        for (const tell of ctx.notices) tell(`ward: ${reason}; this session is ended.`);
        setTimeout(() => ctx.client.end(), NOTICE_GRACE_MS).unref();
      }
      return ended;
    },
    async close() {
      // net.Server.close waits for its connections, so drop them after it stops accepting.
      const closing = [...listeners].map((srv) => new Promise<void>((resolve) => srv.close(() => resolve())));
      listeners.clear();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await Promise.all(closing);
    },
  };
}

/** The user a certificate names (its key id), for an event about a refusal; '' if it cannot be read. */
function userOf(certBlob: Buffer): string {
  try {
    return parseCertificate(certBlob).keyId;
  } catch {
    return '';
  }
}

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new BadParameter(`invalid listen address "${addr}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
