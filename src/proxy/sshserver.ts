// SSH at the proxy: the jump host for unmodified OpenSSH clients (`ssh -J user@proxy:3080 login@node`,
// or a ProxyCommand). Users authenticate with their Ward certificate; the proxy then only forwards
// bytes (direct-tcpip, or the subsystem proxy:HOST:PORT), so the user's SSH session is end to end with
// the node, which checks the login itself.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { Logger } from 'pino';
import type { Clock } from '../time/clock.ts';
import type { ResourceCache } from '../cache/resources.ts';
import { verifySSHSignature } from '../crypto/sshkeys.ts';
import { checkUserCert, sshCertGrants } from '../rbac/sshaccess.ts';
import { connectionSocket } from '../ssh/ssh2hooks.ts';
import type { Grants, Router } from './router.ts';
import { splice } from './splice.ts';

const CERT_ALGO = /-cert-v01@openssh\.com$/;
/**
 * From the first byte to a successful authentication. ssh2's server has no such timer: without it an
 * "SSH-" followed by silence, or a key exchange packet cut short, holds a socket for ever.
 */
export const SSH_LOGIN_TIMEOUT_MS = 10_000;
const SUBSYSTEM = /^proxy:(.+):(\d{1,5})$/;

export interface ProxySSHConfig {
  /** The proxy's host key and its OpenSSH host certificate (the `certificate` form is Ward's ssh2 patch). */
  hostKeys: Array<{ key: string; certificate: Buffer }>;
  cache: ResourceCache;
  router: Router;
  cluster: string;
  clock: Clock;
  log: Logger;
}

export interface ProxySSHServer {
  /** Serves a connection the mux recognised as SSH; it must authenticate within SSH_LOGIN_TIMEOUT_MS. */
  handle(socket: net.Socket): void;
  /** Presents these host keys (a renewed host certificate) to connections from now on; open ones keep theirs. */
  setHostKeys(hostKeys: ProxySSHConfig['hostKeys']): void;
  close(): void;
}

export function createProxySSHServer(cfg: ProxySSHConfig, loginTimeoutMs = SSH_LOGIN_TIMEOUT_MS): ProxySSHServer {
  const { log } = cfg;
  const loginTimers = new WeakMap<net.Socket, NodeJS.Timeout>();
  // @types/ssh2 predates the patch that adds certificates to hostKeys.
  const withKeys = (hostKeys: ProxySSHConfig['hostKeys']) => hostKeys as unknown as ssh2.ServerConfig['hostKeys'];
  const onClient = (client: ssh2.Connection, info: ssh2.ClientInfo) => {
    let grants: Grants | undefined;
    let certified: Buffer | undefined;
    client.on('error', (err) => log.debug({ err: err.message }, 'ssh client error'));
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || !CERT_ALGO.test(ctx.key.algo)) return ctx.reject(['publickey']);
      const decision = checkUserCert(
        cfg.cache,
        cfg.clock,
        { cluster: cfg.cluster },
        { certBlob: ctx.key.data, login: ctx.username, remoteAddr: info.ip },
      );
      // ssh2 does not compare the announced algorithm with the certificate: a mismatch is refused here.
      if (decision.allowed && decision.cert.keyType !== ctx.key.algo) return ctx.reject(['publickey']);
      if (!decision.allowed) {
        log.info({ user: ctx.username, reason: decision.reason, remote: info.ip }, 'proxy ssh: certificate refused');
        return ctx.reject(['publickey']);
      }
      if (!ctx.signature || !ctx.blob) return ctx.accept(); // the client asks whether this key would do
      // The signature is made with the certified key (never a key ssh2 would build from the cert blob).
      if (!verifySSHSignature(decision.cert.publicKey, ctx.blob, ctx.signature)) return ctx.reject(['publickey']);
      certified = decision.cert.publicKey;
      grants = { user: decision.user, ...sshCertGrants(decision.cert) };
      ctx.accept();
    });
    client.on('ready', () => {
      if (!grants || !certified) return client.end();
      const sock = connectionSocket(client);
      if (sock) clearTimeout(loginTimers.get(sock));
      const who = grants;
      const route = async (
        host: string,
        port: number,
        open: () => Duplex | undefined,
        refuse: (msg: string) => void,
      ) => {
        try {
          const upstream = await cfg.router.dial(who, host, port, info.ip);
          const channel = open();
          if (channel) splice(channel, upstream);
          else upstream.destroy();
        } catch (err) {
          log.info(
            { user: who.user, target: `${host}:${port}`, err: (err as Error).message },
            'proxy ssh: route refused',
          );
          refuse((err as Error).message);
        }
      };
      client.on('tcpip', (accept, reject, req) => {
        void route(
          req.destIP,
          req.destPort,
          () => accept(),
          () => reject(),
        );
      });
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('subsystem', (accept, reject, req) => {
          const m = SUBSYSTEM.exec(req.name);
          if (!m) return reject();
          // Accepted before the dial: OpenSSH sends its banner on the channel without waiting for the
          // reply, and ssh2 drops data a session receives before its subsystem is accepted. The
          // channel buffers until the splice (its window bounds how much).
          const channel = accept();
          void route(
            m[1]!,
            Number(m[2]),
            () => channel,
            (msg) => {
              channel.stderr.write(`${msg}\n`);
              channel.exit(1);
              channel.end();
            },
          );
        });
        session.on('exec', (_a, reject) => reject());
        session.on('shell', (_a, reject) => reject());
        session.on('pty', (_a, reject) => reject());
      });
    });
  };
  // ssh2 reads the host keys when a server is made: a renewed host certificate takes a new one (setHostKeys).
  const newServer = (hostKeys: ProxySSHConfig['hostKeys']): ssh2.Server => {
    const server = new ssh2.Server({ hostKeys: withKeys(hostKeys), ident: 'Ward_Proxy' }, onClient);
    server.on('error', (err: Error) => log.debug({ err: err.message }, 'proxy ssh server error'));
    return server;
  };
  let server = newServer(cfg.hostKeys);
  return {
    handle(socket) {
      const timer = setTimeout(() => {
        log.debug({ remote: socket.remoteAddress }, 'proxy ssh: no login in time');
        socket.destroy();
      }, loginTimeoutMs);
      loginTimers.set(socket, timer);
      socket.once('close', () => clearTimeout(timer));
      server.injectSocket(socket);
    },
    setHostKeys(hostKeys) {
      server = newServer(hostKeys);
    },
    close: () => server.close(),
  };
}
