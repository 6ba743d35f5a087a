// Agents joining the cluster: a join token (the only credential a new host has) is exchanged for a
// host identity: an OpenSSH host certificate and an X.509 certificate naming its system role. Then the
// host heartbeats its node resource with that identity; a node that stops heartbeating expires.
import { randomUUID } from 'node:crypto';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { nameSchema, type Node, type Proxy, type Token } from '../api/types.ts';
import { issueHostSSHCert, issueHostTLSCert } from './certs.ts';
import { checkJoinNames } from './joinnames.ts';
import type { ResourceService } from '../services/resources.ts';
import type { AuthServer } from './server.ts';

/** A node is listed for this long after its last heartbeat. */
export const NODE_TTL_MS = 90_000;

const LOOPBACK = ['localhost', '127.0.0.1', '::1'];

export interface HostIdentityRequest {
  hostId: string;
  hostname: string;
  systemRole: string;
  addresses: string[];
  sshPublicKey: string;
  tlsPublicKey: string;
}

/** Issues both certificates of a host. Principals: id, name, name.cluster, addresses (+ loopback names). */
export async function issueHostIdentity(auth: AuthServer, req: HostIdentityRequest) {
  const names = [req.hostId, req.hostname, `${req.hostname}.${auth.clusterName}`, ...req.addresses];
  if (req.addresses.some((a) => LOOPBACK.includes(a))) names.push(...LOOPBACK);
  const principals = [...new Set(names.filter(Boolean))];
  if (principals.length > 64 || principals.some((p) => p.length > 255))
    throw new BadParameter('too many or too long host names');
  const now = auth.now();
  const expires = new Date(now.getTime() + auth.hostCertTTLMs);
  const [hostCA, userCA] = [await auth.cas.get('host'), await auth.cas.get('user')];
  const sshCert = await issueHostSSHCert(
    { hostId: req.hostId, principals, sshPublicKey: req.sshPublicKey, now, expires },
    auth.keystore.sshSigner(hostCA),
  );
  const isIP = (a: string) => /^[\d.]+$|:/.test(a);
  const tlsCert = await issueHostTLSCert(
    {
      hostId: req.hostId,
      systemRoles: [req.systemRole],
      cluster: auth.clusterName,
      tlsPublicKey: req.tlsPublicKey,
      dnsNames: principals.filter((p) => !isIP(p)),
      ipAddresses: principals.filter(isIP),
      now,
      expires,
    },
    auth.keystore.tlsSigner(await auth.cas.get('tls')),
  );
  const bundle = await auth.trustBundle();
  return {
    hostId: req.hostId,
    sshCert,
    tlsCert,
    tlsCas: bundle.tlsCAs,
    sshUserCas: [...userCA.spec.active_keys, ...userCA.spec.additional_keys].map((k) => k.public),
    sshHostCas: bundle.sshHostCAs,
    clusterName: auth.clusterName,
  };
}

/** Host names and ids (lower case) of the nodes listed now, that is heartbeating within NODE_TTL_MS. */
async function namesOfLiveNodes(nodes: ResourceService<'node'>): Promise<Set<string>> {
  const names = new Set<string>();
  const PAGE = 10_000;
  for (let startAfter: string | undefined; ; ) {
    const page = await nodes.list({ limit: PAGE, startAfter });
    for (const n of page) names.add(n.metadata.name.toLowerCase()).add(n.spec.hostname.toLowerCase());
    if (page.length < PAGE) return names;
    startAfter = page.at(-1)!.metadata.name;
  }
}

export async function registerUsingToken(
  auth: AuthServer,
  req: Omit<HostIdentityRequest, 'hostId'> & { token: string; remoteAddr: string },
) {
  // The same answer for a missing, expired or wrong-role token: a token is a secret.
  const token: Token | undefined = /^[0-9a-f]{32}$/.test(req.token) ? await auth.tokens.tryGet(req.token) : undefined;
  if (!token || !(token.spec.roles as string[]).includes(req.systemRole)) {
    await auth.audit.emit('node.join', {
      success: false,
      role: req.systemRole,
      hostname: req.hostname,
      ...(req.remoteAddr ? { remote_addr: req.remoteAddr } : {}),
      error: 'invalid token',
    });
    throw new AccessDenied('access denied: the join token is invalid or expired');
  }
  if (!nameSchema.safeParse(req.hostname).success) throw new BadParameter(`invalid host name "${req.hostname}"`);
  const liveNodeNames = req.systemRole === 'node' ? await namesOfLiveNodes(auth.nodes) : new Set<string>();
  const addresses = checkJoinNames(req, { cluster: auth.clusterName, remoteAddr: req.remoteAddr, liveNodeNames });
  const hostId = randomUUID();
  const identity = await issueHostIdentity(auth, { ...req, addresses, hostId });
  await auth.audit.emit('node.join', {
    success: true,
    role: req.systemRole,
    host_id: hostId,
    hostname: req.hostname,
    ...(req.remoteAddr ? { remote_addr: req.remoteAddr } : {}),
  });
  return { ...identity, labels: token.spec.labels ?? {} };
}

/**
 * The host names a certificate's names (`names`: its SANs) were issued for: each N with both N and N.<cluster> among
 * them. issueHostIdentity gives a host exactly that pair for its host name, and a join refuses any other name ending
 * in .<cluster> (joinnames.ts), so for a host that joined under these rules this is its one host name.
 */
export function issuedHostnames(names: ReadonlySet<string>, cluster: string): string[] {
  return [...names].filter((n) => names.has(`${n}.${cluster}`));
}

/**
 * A heartbeat: a host's own node (or proxy) resource, named by its host id, expiring soon. A node's host name must be
 * the one its certificate (`certNames`: the caller's SANs) was issued for: a node cannot rename itself into another's.
 */
export async function heartbeat(
  auth: AuthServer,
  hostId: string,
  resource: Node | Proxy,
  certNames?: ReadonlySet<string>,
): Promise<Node | Proxy> {
  if (resource.metadata.name !== hostId) throw new AccessDenied('a host may only heartbeat itself');
  if (
    resource.kind === 'node' &&
    certNames &&
    !issuedHostnames(certNames, auth.clusterName).includes(resource.spec.hostname)
  ) {
    throw new AccessDenied(`a node may only heartbeat the host name it joined with, not "${resource.spec.hostname}"`);
  }
  const expires = new Date(auth.now().getTime() + NODE_TTL_MS).toISOString();
  const withExpiry = { ...resource, metadata: { ...resource.metadata, expires } };
  return withExpiry.kind === 'node' ? auth.nodes.upsert(withExpiry) : auth.proxies.upsert(withExpiry);
}
