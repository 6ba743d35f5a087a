// `ward start`: the one place that wires a process together from ward.yaml. Tests start the real
// process; nothing here is needed to use the parts on their own.
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { systemClock } from '../../time/clock.ts';
import { BadParameter, StorageUnavailable, isWardError } from '../../api/errors.ts';
import { parseDuration } from '../../time/duration.ts';
import { writeFileAtomic } from '../../files/atomic-write.ts';
import { holdExclusiveLock } from '../../files/filelock.ts';
import { formatHostPort, loopbackDialable, nodeAddresses, parseHostPort } from '../../config/listen.ts';
import { defaultClusterName, defaultDataDir, type WardConfig } from '../../config/schema.ts';
import type { Backend, EventStore } from '../../backend/backend.ts';
import { SqliteBackend } from '../../backend/sqlite.ts';
import { PostgresBackend } from '../../backend/postgres.ts';
import { AuthServer } from '../../auth/server.ts';
import { SoftwareKeyStore } from '../../auth/keystore.ts';
import { AuditLog } from '../../events/audit.ts';
import { startAuthListener } from '../../auth/listener.ts';
import { followTLSCA } from '../../auth/tlstrust.ts';
import { issuerOf, tlsCertOutdated, trustedTLSCAs } from '../../api/rotation.ts';
import { fingerprintSPKI } from '../../crypto/x509.ts';
import { ResourceService } from '../../services/resources.ts';
import { randomUUID } from 'node:crypto';
import { issueHostIdentity } from '../../auth/join.ts';
import { defaultHostname, hostIdentity, loadHostIdentity, newHostKeys, saveHostIdentity } from '../../host/identity.ts';
import { startLocalProxy, serviceIdentity } from './proxy.ts';
import { keepServiceCertFresh } from './servicecerts.ts';
import { newRegistry, startDiagServer } from '../../diag/server.ts';
import { watchDescriptors } from '../../diag/descriptors.ts';
import { startHostProcess, startConfiguredNode } from './hostprocess.ts';
import type { WardProcess } from './wardprocess.ts';
import { certValidity } from '../../api/certinfo.ts';

/** The CA certificate a server sends after its own: the one that signed it (during a rotation there are two). */
function chainCA(id: { certPem: string; caPems: string[] }): string {
  return issuerOf(id.certPem, id.caPems) ?? id.caPems[0]!;
}

async function openBackend(cfg: WardConfig, dataDir: string): Promise<Backend & EventStore> {
  const storage = cfg.auth_service.storage;
  if (storage.type === 'postgres') return PostgresBackend.open({ connString: storage.conn_string });
  return SqliteBackend.open({ path: storage.path ?? join(dataDir, 'ward.db') });
}

function prepareDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'it is not a directory' : (code ?? (err as Error).message);
    throw new BadParameter(`data dir ${dir} is not usable: ${why}`);
  }
}

export async function startProcess(cfg: WardConfig, opts: { dataDir?: string; log?: Logger }): Promise<WardProcess> {
  const log = opts.log ?? pino({ level: cfg.ward.log.severity, base: { pid: process.pid } }, pino.destination(2));
  const dataDir = opts.dataDir ?? cfg.ward.data_dir ?? defaultDataDir();
  prepareDataDir(dataDir);
  // One process per data dir: two agents on one host identity replaced each other's tunnels several times a
  // second, and two auth servers would each serve caches blind to the other's writes.
  const dirLock = holdExclusiveLock(
    join(dataDir, 'ward.lock'),
    `data dir ${dataDir} is in use by another ward process`,
  );
  // One check per process, whatever it runs: auth servers, proxies and agents each hold connections per agent.
  const stopWatching = watchDescriptors(log);
  const released = () => {
    stopWatching();
    dirLock.release();
  };
  try {
    const running = await startServices(cfg, dataDir, log);
    return { ...running, close: () => running.close().finally(released) };
  } catch (err) {
    released();
    throw err;
  }
}

async function startServices(cfg: WardConfig, dataDir: string, log: Logger): Promise<WardProcess> {
  const metrics = cfg.ward.diag_addr ? newRegistry() : undefined;
  if (!cfg.auth_service.enabled) return startHostProcess(cfg, dataDir, log, metrics);
  const closers: Array<() => Promise<void>> = [];
  let nodeAddr: string | undefined;
  const close = async () => {
    for (const c of closers.reverse())
      await c().catch((err) => log.warn({ err: (err as Error).message }, 'error while stopping'));
  };
  try {
    const backend = await openBackend(cfg, dataDir);
    closers.push(() => backend.close());
    const existing = await new ResourceService(backend, 'cert_authority').tryGet('tls');
    const clusterName = cfg.auth_service.cluster_name ?? existing?.spec.cluster ?? defaultClusterName();
    const authConfig = {
      clusterName,
      log: log.child({ component: 'auth' }),
      lockout: {
        maxAttempts: cfg.auth_service.lockout.max_attempts,
        durationMs: parseDuration(cfg.auth_service.lockout.duration),
      },
      recordingsDir: join(dataDir, 'recordings'),
      metrics,
      secondFactor: cfg.auth_service.second_factor,
      // Security keys are bound to the host name browsers use for the proxies.
      webauthnRPID:
        cfg.auth_service.webauthn?.rp_id ??
        (cfg.proxy_service.public_addr[0] ? parseHostPort(cfg.proxy_service.public_addr[0]).host : 'localhost'),
      hostCertTTLMs: parseDuration(cfg.auth_service.host_cert_ttl),
    };
    // The auth server's collaborators (STYLE.md 6); tests build the same parts (test/fixtures/authapi.ts).
    const auth = await AuthServer.create({
      backend,
      keystore: new SoftwareKeyStore(),
      clock: systemClock,
      audit: new AuditLog(backend, clusterName, systemClock, authConfig.log, metrics),
      config: authConfig,
    });
    const host = hostname();
    const issueAuthTLS = () =>
      serviceIdentity(auth, `auth.${clusterName}`, ['auth'], ['localhost', host], ['127.0.0.1', '::1']);
    // The chain (leaf, then CA) lets a joining agent compare the CA with its --ca-pin before it sends a token.
    const withChain = (id: Awaited<ReturnType<typeof issueAuthTLS>>) => ({ ...id, certPem: id.certPem + chainCA(id) });
    let authTLS = await issueAuthTLS();
    const authLog = log.child({ component: 'auth' });
    const joins = cfg.auth_service.rate_limits.join;
    const joinRule = { burst: joins.burst, perMinute: joins.per_minute };
    const listener = await startAuthListener(auth, withChain(authTLS), cfg.auth_service.listen_addr, authLog, {
      joinRule,
      metrics,
    });
    closers.push(() => listener.close());
    const authAddr = loopbackDialable(listener.address);
    // Re-issued in process before it expires: a process may run for longer than the host certificate TTL.
    const authRenewal = keepServiceCertFresh({
      name: 'auth API',
      role: 'auth',
      metrics,
      certPem: () => authTLS.certPem,
      reissue: async () => {
        authTLS = await issueAuthTLS();
        listener.setTLS(withChain(authTLS));
      },
      log: authLog,
    });
    closers.push(async () => authRenewal.stop());

    // The local administrator's identity: wctl on this host uses it to reach the auth API (re-read at every run).
    const writeAdmin = async () => {
      const admin = await serviceIdentity(auth, 'admin', ['admin'], [], []);
      writeFileAtomic(join(dataDir, 'admin', 'tls.key'), admin.keyPem);
      writeFileAtomic(join(dataDir, 'admin', 'tls.crt'), admin.certPem);
      writeFileAtomic(join(dataDir, 'admin', 'cas.pem'), admin.caPems.join(''));
      return admin;
    };
    let admin = await writeAdmin();
    writeFileAtomic(join(dataDir, 'admin', 'auth_addr'), formatHostPort(authAddr) + '\n', 0o644);
    const adminRenewal = keepServiceCertFresh({
      name: 'local admin',
      role: 'admin',
      metrics,
      certPem: () => admin.certPem,
      reissue: async () => {
        admin = await writeAdmin();
      },
      log: authLog,
    });
    closers.push(async () => adminRenewal.stop());
    // A TLS CA rotation (auth/tlstrust.ts): trust what the CA trusts now, and move the auth API's own certificate and
    // the local admin's to the signing key when their phase comes (the admin's is only ever presented as a client).
    const tlsCA = followTLSCA(auth, authLog, async (ca) => {
      const caPems = trustedTLSCAs(ca);
      if (tlsCertOutdated(ca, authTLS.certPem, 'server')) authTLS = await issueAuthTLS();
      authTLS = { ...authTLS, caPems };
      listener.setTLS(withChain(authTLS));
      if (tlsCertOutdated(ca, admin.certPem, 'client')) admin = await writeAdmin();
      else writeFileAtomic(join(dataDir, 'admin', 'cas.pem'), caPems.join(''));
    });
    closers.push(async () => tlsCA.stop());

    const caPin = fingerprintSPKI(chainCA(authTLS));
    let proxyAddr: string | undefined;
    if (cfg.proxy_service.enabled) {
      const proxy = await startLocalProxy(
        auth,
        cfg,
        formatHostPort(authAddr),
        log.child({ component: 'proxy' }),
        metrics,
      );
      closers.push(proxy.close);
      proxyAddr = proxy.addr;
      writeFileSync(join(dataDir, 'proxy_addr'), proxyAddr + '\n');
    }
    if (cfg.ssh_service.enabled) {
      // The home lab's node: its identity comes straight from the auth server in this process, and is
      // kept in the data dir so the node keeps its id across restarts.
      const hostname = cfg.ssh_service.hostname ?? defaultHostname();
      let identity = loadHostIdentity(dataDir, 'node');
      const sameCluster = identity?.cluster === clusterName;
      // A node renews its own certificates while it runs (host/renewal.ts); one that expired while the process was
      // stopped cannot, so it gets new ones here, under the same host id.
      const expired = !!identity && Date.now() >= certValidity(identity.tlsCert).notAfter;
      if (!identity || !sameCluster || expired) {
        if (expired && sameCluster)
          log.info(
            { host_id: identity!.hostId },
            "the node's host certificates expired while it was stopped: issuing new ones",
          );
        const keys = newHostKeys();
        const listenHost = parseHostPort(cfg.ssh_service.listen_addr).host;
        const issued = await issueHostIdentity(auth, {
          hostId: sameCluster ? identity!.hostId : randomUUID(),
          hostname,
          systemRole: 'node',
          addresses: nodeAddresses(listenHost),
          sshPublicKey: keys.sshPublicKey,
          tlsPublicKey: keys.tlsPublicKey,
        });
        identity = hostIdentity(keys, issued, { hostname, systemRole: 'node' });
        saveHostIdentity(dataDir, identity);
      }
      const node = await startConfiguredNode(cfg, dataDir, identity, formatHostPort(authAddr), proxyAddr, log, metrics);
      closers.push(node.close);
      nodeAddr = node.addr;
    }
    if (metrics) {
      const diag = await startDiagServer(cfg.ward.diag_addr!, metrics, log.child({ component: 'diag' }));
      closers.push(diag.close);
    }
    return { clusterName, authAddr: formatHostPort(authAddr), proxyAddr, nodeAddr, caPin, close };
  } catch (err) {
    await close();
    // The backend's own message names the database; say which part of Ward it is.
    if (isWardError(err) && err.code === 'ERR_STORAGE_UNAVAILABLE') {
      throw new StorageUnavailable(`cannot reach the backend: ${err.message}`);
    }
    throw err;
  }
}
