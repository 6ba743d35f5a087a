// `ward start`: the one place that wires a process together from ward.yaml. Tests start the real
// process; nothing here is needed to use the parts on their own.
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { systemClock } from '../../api/clock.ts';
import { createAuthClient } from '../../api/client.ts';
import { BadParameter, ConnectionProblem } from '../../api/errors.ts';
import { parseDuration } from '../../api/duration.ts';
import { writeFileAtomic } from '../../api/atomic-write.ts';
import { parseHostPort } from '../../config/listen.ts';
import { defaultClusterName, defaultDataDir, type WardConfig } from '../../config/schema.ts';
import type { Backend, EventStore } from '../../backend/backend.ts';
import { SqliteBackend } from '../../backend/sqlite.ts';
import { PostgresBackend } from '../../backend/postgres.ts';
import { AuthServer } from '../../auth/server.ts';
import { startAuthListener } from '../../auth/listener.ts';
import { startProxy } from '../../proxy/service.ts';
import { generateTLSKey, fingerprintSPKI } from '../../crypto/x509.ts';
import { ResourceService } from '../../services/resources.ts';

/** Certificates of in-process services; re-issued at every start. */
const SERVICE_CERT_TTL_MS = 365 * 86_400_000;

export interface RunningProcess {
  clusterName: string;
  authAddr?: string;
  proxyAddr?: string;
  caPin?: string;
  close(): Promise<void>;
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

/** The loopback address to dial for a listen address (0.0.0.0 → 127.0.0.1). */
function dialable(addr: { host: string; port: number }): { host: string; port: number } {
  const host = addr.host === '0.0.0.0' || addr.host === '' ? '127.0.0.1' : addr.host === '::' ? '::1' : addr.host;
  return { host, port: addr.port };
}
const fmt = (a: { host: string; port: number }) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

export async function startProcess(cfg: WardConfig, opts: { dataDir?: string; log?: Logger }): Promise<RunningProcess> {
  const dataDir = opts.dataDir ?? cfg.ward.data_dir ?? defaultDataDir();
  const log = opts.log ?? pino({ level: cfg.ward.log.severity, base: { pid: process.pid } }, pino.destination(2));
  if (!cfg.auth_service.enabled) {
    throw new BadParameter('this version runs the proxy only next to an auth server in the same process (set auth_service.enabled: true)');
  }
  prepareDataDir(dataDir);
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch((err) => log.warn({ err: (err as Error).message }, 'error while stopping'));
  };
  try {
    const backend = await openBackend(cfg, dataDir);
    closers.push(() => backend.close());
    const existing = await new ResourceService(backend, 'cert_authority').tryGet('tls');
    const clusterName = cfg.auth_service.cluster_name ?? existing?.spec.cluster ?? defaultClusterName();
    const auth = await AuthServer.create({
      clusterName,
      backend,
      clock: systemClock,
      log: log.child({ component: 'auth' }),
      lockout: { maxAttempts: cfg.auth_service.lockout.max_attempts, durationMs: parseDuration(cfg.auth_service.lockout.duration) },
    });
    const now = auth.now();
    const expires = new Date(now.getTime() + SERVICE_CERT_TTL_MS);
    const host = hostname();
    const serviceIdentity = async (hostId: string, systemRoles: string[], dnsNames: string[], ipAddresses: string[]) => {
      const key = await generateTLSKey();
      const { tlsCert, tlsCAs } = await auth.issueHostCerts({ hostId, systemRoles, tlsPublicKey: key.publicKeyPem, dnsNames, ipAddresses, expires });
      return { keyPem: key.privateKeyPem, certPem: tlsCert, caPems: tlsCAs };
    };

    const authTLS = await serviceIdentity(`auth.${clusterName}`, ['auth'], ['localhost', host], ['127.0.0.1', '::1']);
    const listener = await startAuthListener(auth, authTLS, cfg.auth_service.listen_addr, log.child({ component: 'auth' }));
    closers.push(() => listener.close());
    const authAddr = dialable(listener.address);

    // The local administrator's identity: wctl on this host uses it to reach the auth API.
    const admin = await serviceIdentity('admin', ['admin'], [], []);
    writeFileAtomic(join(dataDir, 'admin', 'tls.key'), admin.keyPem);
    writeFileAtomic(join(dataDir, 'admin', 'tls.crt'), admin.certPem);
    writeFileAtomic(join(dataDir, 'admin', 'cas.pem'), admin.caPems.join(''));
    writeFileAtomic(join(dataDir, 'admin', 'auth_addr'), fmt(authAddr) + '\n', 0o644);

    const caPin = fingerprintSPKI(authTLS.caPems[0]!);
    let proxyAddr: string | undefined;
    if (cfg.proxy_service.enabled) {
      const publicHosts = cfg.proxy_service.public_addr.map((a) => parseHostPort(a).host);
      const names = [...new Set(['localhost', host, ...publicHosts.filter((h) => !/^[\d.:]+$/.test(h))])];
      const ips = [...new Set(['127.0.0.1', '::1', ...publicHosts.filter((h) => /^[\d.:]+$/.test(h))])];
      const proxyTLS = await serviceIdentity(`proxy.${host}`, ['proxy'], names, ips);
      const proxyAuth = createAuthClient({ addr: fmt(authAddr), identity: proxyTLS });
      const proxy = await startProxy({
        listen: cfg.proxy_service.listen_addr,
        authAddr,
        tls: { keyPem: proxyTLS.keyPem, certChainPem: proxyTLS.certPem + proxyTLS.caPems[0] },
        auth: proxyAuth,
        log: log.child({ component: 'proxy' }),
      });
      closers.push(() => proxy.close());
      proxyAddr = fmt(dialable(proxy.address));
      writeFileSync(join(dataDir, 'proxy_addr'), proxyAddr + '\n');
    }
    return { clusterName, authAddr: fmt(authAddr), proxyAddr, caPin, close };
  } catch (err) {
    await close();
    if (err instanceof Error && /ECONNREFUSED|ENOTFOUND|password authentication/.test(err.message)) {
      throw new ConnectionProblem(`cannot reach the backend: ${err.message}`);
    }
    throw err;
  }
}
