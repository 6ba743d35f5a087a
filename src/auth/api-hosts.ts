// The Auth API's handlers for hosts: join tokens, joining (rate limited per client address), heartbeats of nodes,
// proxies and session trackers, and the renewal of a host's certificates.
import type { Registry } from 'prom-client';
import { BadParameter } from '../api/errors.ts';
import { parseAs, SYSTEM_ROLES } from '../api/types.ts';
import type { BucketRule } from '../ratelimit/buckets.ts';
import type { Logger } from 'pino';
import { clientAddrKey, peerCertNames, socketKey } from './api-context.ts';
import { callerName } from './authz.ts';
import { heartbeat, registerUsingToken } from './join.ts';
import { DEFAULT_JOIN_RULE, JoinLimits } from './joinlimits.ts';
import { renewHostSSHCert, renewHostTLSCert, subjectAltNames, tlsRenewalFor } from './renew.ts';
import type { UnaryHandlers } from './rpcauthz.ts';
import type { AuthServer } from './server.ts';
import { heartbeatSession } from './sessions.ts';
import { present, ttlMs } from './wire.ts';

type HostRPC = 'createToken' | 'registerUsingToken' | 'heartbeat' | 'renewHostCerts';

/** The auth server's limit on joins (joinlimits.ts), from auth_service.rate_limits. */
export interface AuthRouteOptions {
  joinRule?: BucketRule;
  metrics?: Registry;
}

export function hostHandlers(auth: AuthServer, log: Logger, opts: AuthRouteOptions): Pick<UnaryHandlers, HostRPC> {
  const joinLimits = new JoinLimits(opts.joinRule ?? DEFAULT_JOIN_RULE, {
    clock: { now: () => auth.now() },
    log,
    audit: (fields) => auth.audit.emit('auth.rate_limited', fields),
    metrics: opts.metrics,
  });
  return {
    createToken: async (req, { who }) => {
      const roles = req.roles.map((r) => {
        if (!(SYSTEM_ROLES as readonly string[]).includes(r)) {
          throw new BadParameter(`unknown token type "${r}" (expected ${SYSTEM_ROLES.join(', ')})`);
        }
        return r as (typeof SYSTEM_ROLES)[number];
      });
      if (roles.length === 0) throw new BadParameter('a token needs at least one type');
      const ttl = ttlMs(req.ttlSeconds, 30 * 60_000);
      const token = await auth.createToken({ roles, ttlMs: ttl, labels: req.labels, by: callerName(who) });
      return { json: present(token) };
    },

    registerUsingToken: async (req, _call, ctx) => {
      // The token is the credential, so joins are rate limited before it is looked up.
      // The client's address is the TCP peer's, or the one a proxy vouched for (connsource.ts): loopback names
      // are issued only when it is this machine (joinnames.ts).
      const socket = ctx.values.get(socketKey);
      const remoteAddr = ctx.values.get(clientAddrKey);
      joinLimits.admitJoin(remoteAddr, socket ?? ctx);
      return registerUsingToken(auth, {
        token: req.token,
        systemRole: req.systemRole,
        hostname: req.hostname,
        addresses: req.addresses,
        sshPublicKey: req.sshPublicKey,
        tlsPublicKey: req.tlsPublicKey,
        remoteAddr,
      });
    },

    heartbeat: async (req, { who: c, on }, ctx) => {
      if (on.kind === 'session_tracker') {
        const tracker = parseAs('session_tracker', on.data);
        return { json: present(await heartbeatSession(auth, c.name, tracker, req.remove)) };
      }
      const stored = await heartbeat(auth, c.name, parseAs(on.kind, on.data), peerCertNames(ctx.values.get(socketKey)));
      return { json: present(stored) };
    },

    // The caller's TLS certificate (verified by the handshake, its dates by authz.ts) says what may be renewed and
    // for whom (renew.ts), so this reads it off the connection.
    renewHostCerts: async (req, { who: c }, ctx) => {
      if (!req.sshCert && !req.tlsPublicKey) {
        throw new BadParameter('nothing to renew: give the SSH host certificate, the TLS public key or both');
      }
      const peer = ctx.values.get(socketKey)?.getPeerCertificate(false);
      // Both requests are checked before either certificate is issued: a refused call gets nothing.
      const tlsRenewal = req.tlsPublicKey ? tlsRenewalFor(peer?.raw, { tlsPublicKey: req.tlsPublicKey }) : undefined;
      const ssh = req.sshCert
        ? await renewHostSSHCert(auth, c.name, subjectAltNames(peer?.subjectaltname), { sshCert: req.sshCert })
        : undefined;
      const tls = tlsRenewal
        ? await renewHostTLSCert(auth, { hostId: c.name, systemRoles: c.systemRoles }, tlsRenewal)
        : undefined;
      return {
        sshCert: ssh?.sshCert ?? '',
        sshHostCas: ssh?.sshHostCas ?? [],
        tlsCert: tls?.tlsCert ?? '',
        tlsCas: tls?.tlsCas ?? [],
      };
    },
  };
}
