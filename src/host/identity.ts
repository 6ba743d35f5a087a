// A joined host's identity: joined once with a token (the CA pin checked before the token leaves the
// host), then kept in the data dir so restarts reuse it. Holds the host key and certificate for SSH
// and the key and certificate for TLS, plus the CAs the host trusts.
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeFileAtomic } from '../files/atomic-write.ts';
import { createAuthClient } from '../api/client.ts';
import { AccessDenied, BadParameter, ConnectionProblem } from '../api/errors.ts';
import { splitAddrList } from '../api/failover.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { fetchProxyCA } from '../api/trust.ts';
import { ALPN_AUTH } from '../api/client.ts';

const identitySchema = z.object({
  hostId: z.string(),
  hostname: z.string(),
  cluster: z.string(),
  systemRole: z.string(),
  sshKey: z.string(),
  sshCert: z.string(),
  tlsKey: z.string(),
  tlsCert: z.string(),
  tlsCAs: z.array(z.string()),
  sshUserCAs: z.array(z.string()),
  sshHostCAs: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
});
export type HostIdentity = z.infer<typeof identitySchema>;

const identityPath = (dataDir: string, role: string) => join(dataDir, role, 'identity.json');

export function loadHostIdentity(dataDir: string, role: string): HostIdentity | undefined {
  let text: string;
  try {
    text = readFileSync(identityPath(dataDir, role), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = identitySchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new BadParameter(`${identityPath(dataDir, role)} is damaged: remove it and join again with a new token`);
  return parsed.data;
}

export function saveHostIdentity(dataDir: string, identity: HostIdentity): void {
  writeFileAtomic(identityPath(dataDir, identity.systemRole), JSON.stringify(identity, null, 2) + '\n');
}

/** Fresh host keys: Ed25519 for SSH (as OpenSSH's own host key), ECDSA P-256 for TLS. */
export function newHostKeys() {
  const { sshPrivateKey, ...keys } = generateClientKeys('');
  return { sshKey: sshPrivateKey, ...keys };
}

export function defaultHostname(): string {
  return (osHostname().split('.')[0] || 'node').replace(/[^A-Za-z0-9._-]/g, '-');
}

/** First start of an agent: exchange the join token for a host identity. `authServer` may list several
 * addresses (comma-separated): the first that answers is used. */
export async function joinCluster(opts: {
  authServer: string;
  token: string;
  caPin?: string;
  systemRole: string;
  hostname: string;
  addresses: string[];
  log: Logger;
}): Promise<HostIdentity> {
  const addrs = splitAddrList(opts.authServer);
  for (let i = 0; ; i++) {
    try {
      return await joinVia(addrs[i]!, opts);
    } catch (err) {
      // Only an unreachable server is worth another try; a refused token or a wrong CA is final.
      if (!(err instanceof ConnectionProblem) || i + 1 >= addrs.length) throw err;
      opts.log.warn({ addr: addrs[i], err: err.message }, 'cannot join through this address; trying the next');
    }
  }
}

async function joinVia(addr: string, opts: Parameters<typeof joinCluster>[0]): Promise<HostIdentity> {
  const seen = await fetchProxyCA(addr, 10_000, [ALPN_AUTH, 'h2']);
  if (opts.caPin && seen.pin !== opts.caPin) {
    throw new AccessDenied(
      `the cluster at ${addr} has CA ${seen.pin}, not the expected ${opts.caPin}: not sending the join token`,
    );
  }
  if (!opts.caPin)
    opts.log.warn({ ca_pin: seen.pin }, 'joining without --ca-pin: trusting the cluster CA seen on first contact');
  const keys = newHostKeys();
  const auth = createAuthClient({ addr, caPems: [seen.caPem] });
  const certs = await auth.registerUsingToken({
    token: opts.token,
    systemRole: opts.systemRole,
    hostname: opts.hostname,
    addresses: opts.addresses,
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
  });
  return hostIdentity(keys, certs, { hostname: opts.hostname, systemRole: opts.systemRole });
}

/** The certificates issued for a host (by a join, or by the auth server in the same process). */
export interface IssuedHostCerts {
  hostId: string;
  clusterName: string;
  sshCert: string;
  tlsCert: string;
  tlsCas: string[];
  sshUserCas: string[];
  sshHostCas: string[];
  labels?: Record<string, string>;
}

/** Puts a host's keys and the certificates issued for them together into the identity kept on disk. */
export function hostIdentity(
  keys: { sshKey: string; tlsKey: string },
  certs: IssuedHostCerts,
  host: { hostname: string; systemRole: string },
): HostIdentity {
  return {
    hostId: certs.hostId,
    hostname: host.hostname,
    cluster: certs.clusterName,
    systemRole: host.systemRole,
    sshKey: keys.sshKey,
    sshCert: certs.sshCert,
    tlsKey: keys.tlsKey,
    tlsCert: certs.tlsCert,
    tlsCAs: certs.tlsCas,
    sshUserCAs: certs.sshUserCas,
    sshHostCAs: certs.sshHostCas,
    labels: certs.labels ?? {},
  };
}
