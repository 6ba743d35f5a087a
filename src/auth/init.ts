// First start of an auth server: create the cluster's CAs and built-in roles if the backend has none.
// Several auth servers may start at once on one PostgreSQL: create() makes exactly one of them win,
// and the others read what it wrote.
import type { Logger } from 'pino';
import { AlreadyExists } from '../api/errors.ts';
import type { CAType, CertAuthority } from '../api/types.ts';
import { BUILTIN_ROLES } from '../rbac/builtin.ts';
import type { ResourceService } from '../services/resources.ts';
import type { SoftwareKeyStore } from './keystore.ts';

async function newCA(type: CAType, cluster: string, keystore: SoftwareKeyStore, now: Date): Promise<CertAuthority> {
  const key =
    type === 'user' || type === 'host'
      ? keystore.newSSHKey(`ward-${type}-ca@${cluster}`)
      : // The CA's subject must differ from every certificate it issues (CN = user or host, O = cluster):
        // a leaf whose subject equals its issuer's looks self-signed to OpenSSL. Names cannot hold spaces.
        await keystore.newTLSKey(cluster, `${cluster} Ward ${type.toUpperCase()} CA`, now);
  return {
    kind: 'cert_authority',
    version: 'v1',
    metadata: { name: type },
    spec: { type, cluster, active_keys: [key], additional_keys: [], rotation: { phase: 'standby' } },
  };
}

export async function ensureCAs(
  cas: ResourceService<'cert_authority'>,
  cluster: string,
  keystore: SoftwareKeyStore,
  now: Date,
  log: Logger,
): Promise<void> {
  for (const type of ['user', 'host', 'tls', 'db', 'jwt'] as const) {
    const existing = await cas.tryGet(type);
    if (existing) {
      if (existing.spec.cluster !== cluster) {
        throw new AlreadyExists(
          `the backend holds CAs of cluster "${existing.spec.cluster}", not "${cluster}": use that cluster name ` +
            `or another data dir/database`,
        );
      }
      continue;
    }
    try {
      await cas.create(await newCA(type, cluster, keystore, now));
      log.info({ type }, 'created certificate authority');
    } catch (err) {
      if (!(err instanceof AlreadyExists)) throw err; // another auth server created it first
    }
  }
}

export async function ensureBuiltinRoles(roles: ResourceService<'role'>): Promise<void> {
  for (const role of BUILTIN_ROLES) {
    await roles.create(role).catch((err) => {
      if (!(err instanceof AlreadyExists)) throw err;
    });
  }
}
