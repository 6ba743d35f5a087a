// Wiring of the Proxy Service. Next to its auth server in one process, its identity comes straight from
// the auth server; a standalone proxy joins with a token (hostprocess.ts) and keeps its identity in the data
// dir. Either way everything else it learns through the Auth API, failing over between auth servers.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock } from '../../time/clock.ts';
import { parseDuration } from '../../time/duration.ts';
import { createAuthClient } from '../../api/client.ts';
import { formatHostPort, isWildcard, loopbackDialable, parseHostPort } from '../../config/listen.ts';
import { splitAddrList } from '../../api/failover.ts';
import { edgeLimitRules, type WardConfig } from '../../config/schema.ts';
import { EdgeLimits } from '../../proxy/edgelimits.ts';
import type { AuthServer } from '../../auth/server.ts';
import { issueHostIdentity } from '../../auth/join.ts';
import { hostKeysOf, startHostCertRenewal, tlsIdentityOf } from '../../host/renewal.ts';
import { issuerOf } from '../../api/rotation.ts';
import { hostIdentity, newHostKeys, type HostIdentity } from '../../host/identity.ts';
import { generateTLSKey } from '../../crypto/x509.ts';
import { ResourceCache } from '../../cache/resources.ts';
import { describeLock, lockFor } from '../../rbac/locks.ts';
import { Router } from '../../proxy/router.ts';
import { startProxy } from '../../proxy/service.ts';
import { createProxySSHServer } from '../../proxy/sshserver.ts';
import { createSSHOverTLSServer } from '../../proxy/sshtls.ts';
import { createTunnelServer } from '../../tunnel/server.ts';
import { startHeartbeats, type Heartbeats } from '../../host/heartbeats.ts';
import type { Proxy } from '../../api/types.ts';
import { VERSION } from '../../api/version.ts';

/**
 * A TLS identity for a service of this process (the auth server itself, the local admin), valid for the cluster's
 * host certificate TTL: issued at every start, and again in process before it expires (servicecerts.ts).
 */
export async function serviceIdentity(
  auth: AuthServer,
  hostId: string,
  systemRoles: string[],
  dnsNames: string[],
  ipAddresses: string[],
) {
  const key = await generateTLSKey();
  const expires = new Date(auth.now().getTime() + auth.hostCertTTLMs);
  const { tlsCert, tlsCAs } = await auth.issueHostCerts({
    hostId,
    systemRoles,
    tlsPublicKey: key.publicKeyPem,
    dnsNames,
    ipAddresses,
    expires,
  });
  return { keyPem: key.privateKeyPem, certPem: tlsCert, caPems: tlsCAs };
}

/** The names and addresses a proxy's host certificates carry: clients reach it by any of them. */
export function proxyAddresses(cfg: WardConfig): string[] {
  const host = hostname();
  const publicHosts = cfg.proxy_service.public_addr.map((a) => parseHostPort(a).host);
  const listenHost = parseHostPort(cfg.proxy_service.listen_addr).host;
  return [...new Set(['localhost', host, ...publicHosts, ...(isWildcard(listenHost) ? [] : [listenHost])])];
}

export async function startLocalProxy(
  auth: AuthServer,
  cfg: WardConfig,
  authAddrText: string,
  log: Logger,
  metrics?: Registry,
): Promise<{ addr: string; close: () => Promise<void> }> {
  const host = hostname();
  const keys = newHostKeys();
  // One host identity for the proxy: an SSH host certificate (for `ssh -J`) and a TLS certificate with
  // the proxy system role (for the web API, tunnels and its own Auth API calls).
  // Each proxy process is its own host: several may run on one machine (and behind one address).
  const hostId = `proxy-${randomUUID()}`;
  const hostName = host.replace(/[^A-Za-z0-9._-]/g, '-');
  const id = await issueHostIdentity(auth, {
    hostId,
    hostname: hostName,
    systemRole: 'proxy',
    addresses: proxyAddresses(cfg),
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
  });
  return startProxyService(
    cfg,
    hostIdentity(keys, id, { hostname: hostName, systemRole: 'proxy' }),
    authAddrText,
    log,
    { metrics },
  );
}

/**
 * The Proxy Service with `identity` (system role proxy), reaching auth at `authAddrs` (comma-separated
 * auth servers; calls and the ward-auth pass-through fail over between them). `saveIdentity` keeps the identity
 * when its host certificate is renewed; `metrics` gets its certificates' expiry.
 */
export async function startProxyService(
  cfg: WardConfig,
  identity: HostIdentity,
  authAddrs: string,
  log: Logger,
  opts: { saveIdentity?: (identity: HostIdentity) => void; metrics?: Registry } = {},
): Promise<{ addr: string; close: () => Promise<void> }> {
  const { saveIdentity } = opts;
  const hostId = identity.hostId;
  const cluster = identity.cluster;
  // The proxy's TLS identity now: replaced when renewed, and read by the Auth API client before every call.
  let tls = tlsIdentityOf(identity);
  // The chain ends with the CA that signed the certificate: during a TLS CA rotation the proxy trusts two.
  const served = () => {
    const chainCA = issuerOf(tls.certPem, tls.caPems) ?? tls.caPems[0];
    return { keyPem: tls.keyPem, certChainPem: tls.certPem + chainCA, caPems: tls.caPems };
  };
  const authList = splitAddrList(authAddrs).map(parseHostPort);
  const client = createAuthClient({ addr: authAddrs, identity: () => tls });
  const cache = new ResourceCache(client, { kinds: ['node', 'user', 'role', 'cert_authority', 'lock'], log }).start();
  await cache.ready().catch((err: unknown) => {
    cache.close();
    throw err;
  });
  // A host whose id is locked (or revoked: its listing removed, auth/hostlocks.ts) holds no tunnel here; a new lock
  // closes its tunnels now. Any age of the cache will do: a tunnel grants nothing, the router checks fresh locks.
  const hostRefusal = (hostId: string) => {
    const lock = lockFor(cache.listAnyAge('lock'), { node: { id: hostId } }, new Date());
    return lock && describeLock(lock);
  };
  const tunnels = createTunnelServer({
    tls: served(),
    log,
    refusal: hostRefusal,
    maxStreamsPerUser: cfg.proxy_service.tunnel_streams_per_user,
  });
  cache.onChange((kind) => {
    if (kind === 'lock') tunnels.recheck();
  });
  const stopParts = async () => {
    await tunnels.close();
    cache.close();
  };
  // Nodes reached directly take the proxy's current host certificate as proof that a proxy is dialling.
  const router = new Router(cache, cluster, { tunnels, nodeTLS: { identity: () => tls, log }, clock: systemClock });
  const ssh = createProxySSHServer({
    hostKeys: hostKeysOf(identity),
    cache,
    router,
    cluster,
    clock: systemClock,
    log,
  });
  const sshOverTLS = createSSHOverTLSServer({ tls: served(), cache, router, cluster, clock: systemClock, log });
  const proxy = await startProxy({
    listen: cfg.proxy_service.listen_addr,
    authAddr: authList[0]!,
    authAddrs: authList,
    tls: served(),
    auth: client,
    ssh,
    sshOverTLS,
    tunnels,
    router,
    cache,
    webIdleTimeoutSeconds: parseDuration(cfg.proxy_service.web_idle_timeout) / 1000,
    limits: new EdgeLimits(edgeLimitRules(cfg.proxy_service.rate_limits), {
      clock: systemClock,
      log,
      audit: (event) => client.emitAuditEvents({ events: [JSON.stringify(event)] }),
      metrics: opts.metrics,
    }),
    log,
  }).catch(async (err: unknown) => {
    await stopParts();
    throw err;
  });
  // The proxy renews its certificates before they expire, and its SSH one (for `ssh -J`) when a host CA rotation
  // reaches it through the cache (host/renewal.ts). Every server it runs takes them for the handshakes that follow.
  let heartbeats: Heartbeats | undefined;
  const renewal = startHostCertRenewal({
    cache,
    auth: client,
    identity,
    onRenewed: (renewed) => {
      ssh.setHostKeys(hostKeysOf(renewed));
      // A new TLS certificate, or the CAs of a TLS CA rotation: the Auth API client, the web, SSH-in-TLS and tunnel
      // servers take them for what follows (agents' tunnels and users' connections from a dropped CA end).
      if (renewed.tlsCert !== tls.certPem || renewed.tlsCAs !== tls.caPems) {
        const newCert = renewed.tlsCert !== tls.certPem;
        tls = tlsIdentityOf(renewed);
        proxy.setTLS(served());
        sshOverTLS.setTLS(served());
        tunnels.setTLS(served());
        if (newCert) heartbeats?.reconnect();
      }
      saveIdentity?.(renewed);
    },
    log,
    metrics: opts.metrics,
  });
  const addr = formatHostPort(loopbackDialable(proxy.address));
  // Presence: agents learn the cluster's proxies from these and keep a tunnel to each.
  const presence: Proxy = {
    kind: 'proxy',
    version: 'v1',
    metadata: { name: hostId },
    spec: { addr: cfg.proxy_service.public_addr[0] ?? addr, version: VERSION },
  };
  heartbeats = await startHeartbeats({ auth: client, presence: () => presence, log });
  return {
    addr,
    close: async () => {
      heartbeats?.close();
      renewal.stop();
      await proxy.close();
      await stopParts();
    },
  };
}
