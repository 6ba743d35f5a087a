// `wsh proxy ssh` (the ProxyCommand of `wsh config`): SSH to a node carried inside mutual TLS to the
// proxy (ALPN ward-proxy-ssh). The client's X.509 certificate identifies the user; the first line names
// the target ("host:port\n"), the proxy answers "OK\n" or "ERR reason\n", then the bytes of the user's
// own SSH connection pass through unchanged.
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../time/clock.ts';
import type { ResourceCache } from '../cache/resources.ts';
import { identityFromPeerCert } from '../crypto/x509.ts';
import { identityRefusal } from '../rbac/identity.ts';
import type { Router } from './router.ts';
import { splice } from './splice.ts';

export const ALPN_PROXY_SSH = 'ward-proxy-ssh';
const MAX_REQUEST = 512;
const REQUEST_TIMEOUT_MS = 10_000;
/** A client that sends a ClientHello and then nothing is dropped after this (Node's default is 120 s). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ProxyTLS {
  keyPem: string;
  certChainPem: string;
  caPems: string[];
}

/** The secure context, given whole at creation and at each renewal (setSecureContext resets what it is not given). */
function secureContextOptions(material: ProxyTLS): tls.SecureContextOptions {
  return { key: material.keyPem, cert: material.certChainPem, ca: material.caPems, minVersion: 'TLSv1.2' };
}

export type SSHOverTLSServer = tls.Server & {
  /**
   * A renewed proxy certificate, or the CAs of a TLS CA rotation, for the handshakes that follow; connections open now
   * keep theirs, except those of users whose certificate comes from a CA that is no longer trusted (they are closed).
   */
  setTLS(material: ProxyTLS): void;
};

export function createSSHOverTLSServer(opts: {
  tls: ProxyTLS;
  cache: ResourceCache;
  router: Router;
  cluster: string;
  clock: Clock;
  log: Logger;
}): SSHOverTLSServer {
  const { log } = opts;
  const open = new Set<tls.TLSSocket>();
  let trusted = opts.tls.caPems;
  const server = tls.createServer(
    {
      ...secureContextOptions(opts.tls),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [ALPN_PROXY_SSH],
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    },
    (socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      socket.on('error', (err) => log.debug({ err: err.message }, 'ssh-over-tls connection error'));
      const refuse = (reason: string) => socket.end(`ERR ${reason.replace(/\n/g, ' ')}\n`);
      let grants;
      try {
        const id = identityFromPeerCert(socket.getPeerCertificate());
        const user =
          id.kind === 'user' && id.cluster === opts.cluster ? opts.cache.get('user', id.username) : undefined;
        const target = { user: id.username, roles: id.roles };
        const refusal = identityRefusal(user, opts.cache.list('lock'), target, opts.clock.now());
        if (refusal) return refuse(refusal);
        grants = { user: id.username, roles: id.roles, traits: id.traits ?? {} };
      } catch {
        return refuse('access denied');
      }
      const who = grants;
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => socket.destroy(), REQUEST_TIMEOUT_MS);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const nl = head.indexOf(0x0a);
        if (nl < 0) {
          if (head.length > MAX_REQUEST) socket.destroy();
          return;
        }
        clearTimeout(timer);
        socket.off('data', onData);
        socket.pause();
        const m = /^(.+):(\d{1,5})$/.exec(head.subarray(0, nl).toString('utf8').trim());
        const rest = head.subarray(nl + 1);
        if (!m) return refuse('expected HOST:PORT');
        opts.router.dial(who, m[1]!, Number(m[2]), socket.remoteAddress ?? '').then(
          (upstream) => {
            socket.write('OK\n');
            if (rest.length) upstream.write(rest);
            splice(socket, upstream);
            socket.resume();
          },
          (err: Error) => {
            log.info({ user: who.user, target: m[0], err: err.message }, 'ssh-over-tls: route refused');
            refuse(err.message);
          },
        );
      };
      socket.on('data', onData);
    },
  );
  // Node only reports a refused or timed-out handshake; the socket stays open until we destroy it.
  server.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message }, 'ssh-over-tls handshake refused');
    socket.destroy();
  });
  const setTLS = (material: ProxyTLS) => {
    server.setSecureContext(secureContextOptions(material));
    const dropped = trusted.filter((pem) => !material.caPems.includes(pem));
    trusted = material.caPems;
    if (dropped.length === 0) return;
    // A TLS CA rotation reached standby: a user's connection proved with a certificate from the dropped CA ends, as
    // it would not be let in again. The handshake checked the signature; which CA signed is a name and key id match.
    const cas = material.caPems.map((pem) => new X509Certificate(pem));
    for (const socket of open) {
      const raw = socket.getPeerCertificate().raw;
      if (raw && cas.some((ca) => new X509Certificate(raw).checkIssued(ca))) continue;
      log.info(
        { remote: socket.remoteAddress },
        'ssh-over-tls connection closed: its certificate is from a dropped CA',
      );
      socket.destroy();
    }
  };
  return Object.assign(server, { setTLS });
}
