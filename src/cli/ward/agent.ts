// A process without an auth server: today, a Node Service that joins the cluster through a proxy
// (or an auth server) with a token on first start, then reuses the identity kept in the data dir.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { startDiagServer } from '../../diag/server.ts';
import { systemClock } from '../../api/clock.ts';
import { createAuthClient } from '../../api/client.ts';
import { BadParameter } from '../../api/errors.ts';
import type { WardConfig } from '../../config/schema.ts';
import { nodeAddresses, parseHostPort } from '../../config/listen.ts';
import { defaultHostname, joinCluster, loadHostIdentity, saveHostIdentity, type HostIdentity } from '../../agent/identity.ts';
import { startNodeService } from '../../node/service.ts';
import type { RunningProcess } from './start.ts';

export async function startAgentProcess(cfg: WardConfig, dataDir: string, log: Logger, metrics?: Registry): Promise<RunningProcess> {
  if (cfg.proxy_service.enabled) throw new BadParameter('a proxy needs an auth server in the same process in this version (set proxy_service.enabled: false)');
  if (!cfg.ssh_service.enabled) throw new BadParameter('nothing to run: enable auth_service or ssh_service');
  const authServer = cfg.ward.auth_server;
  if (!authServer) throw new BadParameter('a node without an auth server needs ward.auth_server (or --auth-server PROXY:3080)');
  let identity = loadHostIdentity(dataDir, 'node');
  if (!identity) {
    if (!cfg.ward.join_token) throw new BadParameter('first start of this node: give a join token (--token, from wctl tokens add --type node)');
    const listenHost = parseHostPort(cfg.ssh_service.listen_addr).host;
    identity = await joinCluster({
      authServer,
      token: cfg.ward.join_token,
      caPin: cfg.ward.ca_pin,
      systemRole: 'node',
      hostname: cfg.ssh_service.hostname ?? defaultHostname(),
      addresses: cfg.ssh_service.tunnel ? [] : nodeAddresses(listenHost),
      log,
    });
    saveHostIdentity(dataDir, identity);
    log.info({ host_id: identity.hostId }, 'joined the cluster');
  }
  const node = await startConfiguredNode(cfg, dataDir, identity, authServer, authServer, log, metrics);
  if (!metrics) return { clusterName: identity.cluster, nodeAddr: node.addr, close: node.close };
  const diag = await startDiagServer(cfg.ward.diag_addr!, metrics, log.child({ component: 'diag' })).catch(async (err: unknown) => {
    await node.close();
    throw err;
  });
  return {
    clusterName: identity.cluster,
    nodeAddr: node.addr,
    close: async () => {
      await diag.close();
      await node.close();
    },
  };
}

/**
 * The Node Service as ssh_service configures it, talking to auth at `authAddr` (an auth server or a
 * proxy); in tunnel mode it starts from the proxy at `proxyAddr`.
 */
export function startConfiguredNode(cfg: WardConfig, dataDir: string, identity: HostIdentity, authAddr: string, proxyAddr: string | undefined, log: Logger, metrics?: Registry) {
  return startNodeService({
    identity,
    auth: createAuthClient({ addr: authAddr, identity: { keyPem: identity.tlsKey, certPem: identity.tlsCert, caPems: identity.tlsCAs } }),
    listen: cfg.ssh_service.tunnel ? undefined : cfg.ssh_service.listen_addr,
    bootstrapProxy: cfg.ssh_service.tunnel ? proxyAddr : undefined,
    labels: cfg.ssh_service.labels,
    commands: cfg.ssh_service.commands,
    clock: systemClock,
    log: log.child({ component: 'node' }),
    dataDir: join(dataDir, 'node'),
    recording: cfg.ssh_service.recording,
    metrics,
  });
}
