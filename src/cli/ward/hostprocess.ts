// A process without an auth server: a standalone proxy and/or a Node Service. Each joins the cluster with
// a token on first start (through a proxy or an auth server), then reuses the identity kept in the data
// dir. `ward.auth_server` may list several addresses: joins and every Auth API call fail over between them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { startDiagServer } from '../../diag/server.ts';
import { systemClock } from '../../time/clock.ts';
import { createAuthClient } from '../../api/client.ts';
import { BadParameter } from '../../api/errors.ts';
import type { WardConfig } from '../../config/schema.ts';
import { nodeAddresses, parseHostPort } from '../../config/listen.ts';
import {
  defaultHostname,
  joinCluster,
  loadHostIdentity,
  saveHostIdentity,
  type HostIdentity,
} from '../../host/identity.ts';
import { startNodeService } from '../../node/service.ts';
import { expiredMessage, tlsIdentityOf } from '../../host/renewal.ts';
import type { WardProcess } from './wardprocess.ts';
import { proxyAddresses, startProxyService } from './proxy.ts';
import { certValidity } from '../../api/certinfo.ts';

export async function startHostProcess(
  cfg: WardConfig,
  dataDir: string,
  log: Logger,
  metrics?: Registry,
): Promise<WardProcess> {
  if (!cfg.ssh_service.enabled && !cfg.proxy_service.enabled)
    throw new BadParameter('nothing to run: enable auth_service, proxy_service or ssh_service');
  const authServer = cfg.ward.auth_server;
  if (!authServer)
    throw new BadParameter(
      'a process without an auth server needs ward.auth_server (or --auth-server HOST:PORT[,HOST:PORT...])',
    );
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse())
      await c().catch((err) => log.warn({ err: (err as Error).message }, 'error while stopping'));
  };
  try {
    let clusterName = '';
    let proxyAddr: string | undefined;
    let nodeAddr: string | undefined;
    if (cfg.proxy_service.enabled) {
      // A standalone proxy: joined once with a proxy token, then the identity in DATA_DIR/proxy is reused.
      // It reaches auth servers directly (a proxy never goes through another proxy).
      const identity = await loadOrJoin(cfg, dataDir, 'proxy', proxyAddresses(cfg), log);
      const proxy = await startProxyService(cfg, identity, authServer, log.child({ component: 'proxy' }), {
        saveIdentity: (renewed) => saveHostIdentity(dataDir, renewed),
        metrics,
      });
      closers.push(proxy.close);
      clusterName = identity.cluster;
      proxyAddr = proxy.addr;
      writeFileSync(join(dataDir, 'proxy_addr'), proxyAddr + '\n');
    }
    if (cfg.ssh_service.enabled) {
      const listenHost = parseHostPort(cfg.ssh_service.listen_addr).host;
      const identity = await loadOrJoin(
        cfg,
        dataDir,
        'node',
        cfg.ssh_service.tunnel ? [] : nodeAddresses(listenHost),
        log,
      );
      // Next to a proxy, the node's tunnel starts from it; otherwise from the addresses it was given.
      const node = await startConfiguredNode(cfg, dataDir, identity, authServer, proxyAddr ?? authServer, log, metrics);
      closers.push(node.close);
      clusterName = identity.cluster;
      nodeAddr = node.addr;
    }
    if (metrics) {
      const diag = await startDiagServer(cfg.ward.diag_addr!, metrics, log.child({ component: 'diag' }));
      closers.push(diag.close);
    }
    return { clusterName, proxyAddr, nodeAddr, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The identity for `role` kept in the data dir, or a new one from joining with the token. */
async function loadOrJoin(
  cfg: WardConfig,
  dataDir: string,
  role: 'node' | 'proxy',
  addresses: string[],
  log: Logger,
): Promise<HostIdentity> {
  const kept = loadHostIdentity(dataDir, role);
  if (kept) {
    // Renewal needs a valid certificate to authenticate with; an expired one leaves only a new join.
    const { notAfter } = certValidity(kept.tlsCert);
    if (Date.now() >= notAfter) throw new BadParameter(expiredMessage(kept, notAfter));
    return kept;
  }
  if (!cfg.ward.join_token)
    throw new BadParameter(
      `first start of this ${role}: give a join token (--token, from wctl tokens add --type ${role})`,
    );
  const identity = await joinCluster({
    authServer: cfg.ward.auth_server!,
    token: cfg.ward.join_token,
    caPin: cfg.ward.ca_pin,
    systemRole: role,
    hostname: (role === 'node' ? cfg.ssh_service.hostname : undefined) ?? defaultHostname(),
    addresses,
    log,
  });
  saveHostIdentity(dataDir, identity);
  log.info({ host_id: identity.hostId, role }, 'joined the cluster');
  return identity;
}

/**
 * The Node Service as ssh_service configures it, talking to auth at `authAddr` (an auth server or a
 * proxy); in tunnel mode it starts from the proxy at `proxyAddr`.
 */
export function startConfiguredNode(
  cfg: WardConfig,
  dataDir: string,
  identity: HostIdentity,
  authAddr: string,
  proxyAddr: string | undefined,
  log: Logger,
  metrics?: Registry,
) {
  // The Auth API client presents whichever TLS certificate the node holds now (renewed ones included).
  let tls = tlsIdentityOf(identity);
  return startNodeService({
    identity,
    auth: createAuthClient({ addr: authAddr, identity: () => tls }),
    listen: cfg.ssh_service.tunnel ? undefined : cfg.ssh_service.listen_addr,
    bootstrapProxy: cfg.ssh_service.tunnel ? proxyAddr : undefined,
    labels: cfg.ssh_service.labels,
    commands: cfg.ssh_service.commands,
    clock: systemClock,
    log: log.child({ component: 'node' }),
    dataDir: join(dataDir, 'node'),
    recording: cfg.ssh_service.recording,
    metrics,
    onRenewed: (renewed) => {
      if (renewed.tlsCert !== tls.certPem || renewed.tlsCAs !== tls.caPems) tls = tlsIdentityOf(renewed);
      saveHostIdentity(dataDir, renewed);
    },
  });
}
