// The Node Service: the SSH server (server.ts) with the host certificate, the cluster's users, roles
// and user CA from a watch-fed cache, reached by TCP on its listen address or through reverse tunnels
// to every proxy, and a heartbeat that keeps it listed.
import type { Logger } from 'pino';
import type { AuthClient } from '../api/client.ts';
import type { Clock } from '../time/clock.ts';
import type { Node } from '../api/types.ts';
import { VERSION } from '../api/version.ts';
import type { HostIdentity } from '../host/identity.ts';
import { ResourceCache } from '../cache/resources.ts';
import { startTunnelClient, type TunnelClient } from '../tunnel/client.ts';
import { splitAddrList } from '../api/failover.ts';
import { AuditForwarder } from '../host/audit.ts';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import type { Role, SessionTracker } from '../api/types.ts';
import { AccessChecker } from '../rbac/checker.ts';
import { identityRefusal } from '../rbac/identity.ts';
import { checkUserCert, sshCertGrants } from '../rbac/sshaccess.ts';
import type { SessionHooks } from './connection.ts';
import { createNodeSSHServer } from './server.ts';
import { SessionRegistry, type LiveSession } from './live.ts';
import { SessionReporter } from './reporter.ts';
import { HEARTBEAT_INTERVAL_MS, startHeartbeats, type Heartbeats } from '../host/heartbeats.ts';
import { hostKeysOf, startHostCertRenewal, tlsIdentityOf } from '../host/renewal.ts';
import { RecordingUploader, type RecordingMode } from './uploader.ts';
import { advertisedHost } from '../config/listen.ts';
import { startDynamicLabels, type LabelCommand } from './labels.ts';
import { createProxyDoor } from './listener.ts';
import { tlsTrustBundle } from '../api/nodessh.ts';

export interface NodeServiceConfig {
  identity: HostIdentity;
  auth: AuthClient;
  /** Listen mode: host:port. */
  listen?: string;
  /**
   * Tunnel mode: the proxy address(es, comma-separated) to start from. Once the cluster's proxies are known (their
   * presence comes through the watch), the node keeps a tunnel to each of them instead.
   */
  bootstrapProxy?: string;
  /** The address others reach a listening node by (for the node resource); default: the listen address. */
  advertiseAddr?: string;
  labels: Record<string, string>;
  /** Dynamic labels from commands. */
  commands?: LabelCommand[];
  clock: Clock;
  log: Logger;
  /** The node's own directory in the data dir: audit and recording spools live under it. */
  dataDir: string;
  /** node: recordings are uploaded when the session ends; node-sync: streamed while it runs. */
  recording?: RecordingMode;
  metrics?: Registry;
  /**
   * Takes the identity when its certificates are renewed (before they expire, or a host CA rotation): keep it, and
   * have `auth` present its TLS certificate from now on. Default: neither.
   */
  onRenewed?: (identity: HostIdentity) => void;
}

export interface NodeService {
  addr?: string;
  close(): Promise<void>;
}

export async function startNodeService(cfg: NodeServiceConfig): Promise<NodeService> {
  const { identity, log } = cfg;
  const staticLabels = { ...identity.labels, ...cfg.labels };
  let heartbeats: Heartbeats | undefined;
  const dynamic = startDynamicLabels(cfg.commands ?? [], () => void heartbeats?.beat());
  const labels = () => ({ ...staticLabels, ...dynamic.values });
  const cache = new ResourceCache(cfg.auth, {
    kinds: ['role', 'user', 'cert_authority', 'proxy', 'lock'],
    log,
  }).start();
  const audit = new AuditForwarder(cfg.auth, join(cfg.dataDir, 'audit-spool'), cfg.clock, log, cfg.metrics);
  await cache.ready();
  const target = {
    cluster: identity.cluster,
    node: () => ({ name: identity.hostname, id: identity.hostId, labels: labels() }),
  };
  const registry = new SessionRegistry();
  const spoolDir = join(cfg.dataDir, 'recordings');
  const uploader = new RecordingUploader(spoolDir, cfg.auth, (sid) => registry.has(sid), cfg.recording ?? 'node', log);
  if (cfg.metrics) {
    new Gauge({
      name: 'ward_sessions_live',
      help: 'Interactive sessions running on this node',
      registers: [cfg.metrics],
      collect() {
        this.set(registry.list().length);
      },
    });
    new Gauge({
      name: 'ward_recordings_spooled',
      help: "Recordings on this node's disk: running, or waiting to be uploaded",
      registers: [cfg.metrics],
      collect() {
        this.set(uploader.spooled());
      },
    });
  }
  const tracker = (s: LiveSession): SessionTracker => {
    const info = s.info();
    return {
      kind: 'session_tracker',
      version: 'v1',
      metadata: { name: s.sid },
      spec: {
        server_id: identity.hostId,
        hostname: identity.hostname,
        user: info.user,
        login: info.login,
        started: info.started.toISOString(),
        participants: info.participants.map((p) => ({ user: p.user, mode: p.mode, joined: p.joined.toISOString() })),
      },
    };
  };
  const reporter = new SessionReporter(
    (s, ended) =>
      cfg.auth.heartbeat({ resource: { json: JSON.stringify(tracker(s)) }, remove: ended }).then(
        () => {},
        (err: unknown) => log.warn({ sid: s.sid, err: (err as Error).message }, 'cannot report the live session'),
      ),
    (sid) => registry.has(sid),
  );
  const sessions: SessionHooks = {
    registry,
    spoolDir,
    serverId: identity.hostId,
    hostname: identity.hostname,
    onChange(s, ended) {
      void reporter.report(s, ended);
      if (ended) void uploader.kick();
    },
    canJoin(who, session, mode) {
      // Joining is acting as the session's login here: the joiner's certificate must name it, as for a login, and
      // the roles must allow it on this node (and, for others' sessions, the session_tracker rule).
      if (!who.cert.principals.includes(session.login)) return false;
      const { roles, traits } = sshCertGrants(who.cert);
      let found;
      try {
        found = roles.map((n) => cache.get('role', n));
      } catch {
        return false; // the cache is past its staleness bound: nobody joins until it is current again
      }
      if (found.some((r) => !r)) return false;
      const checker = new AccessChecker(found as Role[], traits);
      return checker.checkSessionJoin(target.node(), session, who.user, mode).allowed;
    },
  };
  const ssh = createNodeSSHServer({
    hostKeys: hostKeysOf(identity),
    authorize: async (req) => {
      const decision = checkUserCert(cache, cfg.clock, target, req);
      if (!decision.allowed)
        log.info({ login: req.login, remote: req.remoteAddr, reason: decision.reason }, 'ssh access denied');
      return decision;
    },
    log,
    onEvent: (event, fields) => audit.emit(event, fields),
    sessions,
  });

  // The node renews its certificates before they expire, and its SSH one when a host CA rotation reaches it through
  // the cache (host/renewal.ts); it presents them to new connections and keeps them. Connections open now keep theirs.
  let current = identity;
  let tunnel: TunnelClient | undefined;
  const renewal = startHostCertRenewal({
    cache,
    auth: cfg.auth,
    identity,
    onRenewed: (renewed) => {
      const newTLS = renewed.tlsCert !== current.tlsCert;
      current = renewed;
      ssh.setHostKeys(hostKeysOf(renewed));
      cfg.onRenewed?.(renewed);
      if (newTLS) {
        tunnel?.renew();
        heartbeats?.reconnect();
      }
    },
    log,
    clock: cfg.clock,
    metrics: cfg.metrics,
  });

  // A new lock (or a re-sync after the watch broke) ends the sessions it covers at once: the same check
  // a new connection gets, applied to every live one.
  cache.onChange((kind) => {
    if (kind !== 'lock' && kind !== 'user' && kind !== 'role') return;
    ssh.terminate((who) => {
      const { roles } = sshCertGrants(who.cert);
      const identity = { user: who.user, roles, node: target.node() };
      return identityRefusal(cache.get('user', who.user), cache.list('lock'), identity, cfg.clock.now());
    });
  });

  let addr = '';
  let door: ReturnType<typeof createProxyDoor> | undefined;
  if (cfg.bootstrapProxy) {
    const bootstrap = splitAddrList(cfg.bootstrapProxy);
    tunnel = startTunnelClient({
      // One tunnel per proxy. The bootstrap address is used only while no proxy is known: it may be a
      // load balancer in front of them, and two tunnels to one proxy would replace each other.
      proxyAddrs: () => {
        // Any age will do: a tunnel grants nothing, and a node cut off from auth should still be reachable
        // once it is back (the node itself refuses logins while its cache is too stale).
        const known = [...new Set(cache.listAnyAge('proxy').map((p) => p.spec.addr))];
        return known.length ? known : bootstrap;
      },
      // Read at every dial: a renewed certificate is used from the next one on.
      tls: () => tlsIdentityOf(current),
      onConnection: (stream, meta) => ssh.injectSocket(stream, meta.clientAddr),
      log,
    });
  } else {
    // Proxies reach a listening node over mutual TLS on this same port (listener.ts); OpenSSH still gets plain SSH.
    const proxies = createProxyDoor({
      identity: () => tlsIdentityOf(current),
      trustedCAs: () => tlsTrustBundle(cache.get('cert_authority', 'tls')),
      cluster: identity.cluster,
      onProxied: (socket) => ssh.injectSocket(socket),
      log,
    });
    door = proxies;
    const bound = await ssh.listen(cfg.listen ?? '0.0.0.0:3022', { tls: (socket) => proxies.handle(socket) });
    const host = advertisedHost(bound.host);
    addr = cfg.advertiseAddr ?? `${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
  }

  const node = (): Node => ({
    kind: 'node',
    version: 'v1',
    metadata: { name: identity.hostId, labels: labels() },
    spec: { hostname: identity.hostname, addr, tunnel: !!tunnel, version: VERSION },
  });
  heartbeats = await startHeartbeats({ auth: cfg.auth, presence: node, log });
  const timer = setInterval(() => reporter.refresh(registry.list(), HEARTBEAT_INTERVAL_MS / 2), HEARTBEAT_INTERVAL_MS);
  timer.unref();
  log.info({ host_id: identity.hostId, hostname: identity.hostname, addr: addr || 'tunnel' }, 'node service started');
  return {
    addr: addr || undefined,
    close: async () => {
      clearInterval(timer);
      heartbeats?.close();
      renewal.stop();
      reporter.close();
      dynamic.stop();
      cache.close();
      await tunnel?.close();
      await ssh.close();
      door?.close();
      await uploader.close();
      await audit.close();
    },
  };
}
