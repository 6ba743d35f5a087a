// Agents joining the cluster: a join token (the only credential a new host has) is exchanged for a
// host identity: an OpenSSH host certificate and an X.509 certificate naming its system role. Then the
// host heartbeats its node resource with that identity; a node that stops heartbeating expires.
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { nameSchema, type Node, type Proxy, type Token } from '../api/types.ts';
import { issueHostSSHCert, issueHostTLSCert } from './certs.ts';
import { parseCertificate } from '../crypto/sshcert.ts';
import { formatAuthorizedKey, parseAuthorizedKey } from '../crypto/sshkeys.ts';
import type { AuthServer } from './server.ts';
import { describeLock, lockFor } from '../rbac/locks.ts';

/**
 * Host certificates from a join live this long. A host CA rotation renews the SSH one (RenewHostCerts below); nothing
 * renews the TLS one yet, so a host must join again within a year.
 */
export const HOST_CERT_TTL_MS = 365 * 86_400_000;
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
  if (principals.length > 64 || principals.some((p) => p.length > 255)) throw new BadParameter('too many or too long host names');
  const now = auth.now();
  const expires = new Date(now.getTime() + HOST_CERT_TTL_MS);
  const [hostCA, userCA] = [await auth.cas.get('host'), await auth.cas.get('user')];
  const sshCert = await issueHostSSHCert({ hostId: req.hostId, principals, sshPublicKey: req.sshPublicKey, now, expires }, auth.keystore.sshSigner(hostCA));
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

/** An IP address in one spelling (IPv6 compressed, lower case), so `::1` and Node's `0:0:0:0:0:0:0:1` compare equal. */
function canonicalName(name: string): string {
  if (isIP(name) !== 6) return name;
  return new URL(`http://[${name}]`).hostname.slice(1, -1);
}

/** The DNS names and IP addresses of a certificate's subjectAltName, as Node's PeerCertificate spells it. */
export function subjectAltNames(text: string | undefined): Set<string> {
  const names = new Set<string>();
  for (const entry of (text ?? '').split(', ')) {
    // Node quotes an entry that holds special characters; no name Ward issues does, so such an entry counts for nothing.
    const m = /^(DNS|IP Address):([^"]+)$/.exec(entry);
    if (m) names.add(canonicalName(m[2]!));
  }
  return names;
}

/**
 * A node's or proxy's SSH host certificate again, signed by the host CA's signing key: the same host id, key and
 * principals, a new validity. The principals must all be names in the caller's TLS certificate (`tlsNames`), which
 * the auth server issued at join with the same list, so a host can renew only what it was given. The certificate
 * it holds is not checked against the host CA: after a rotation its signer may be one the CA no longer trusts. So
 * the key it certifies is the caller's word; that gives a host nothing it lacks, a certificate for its own names.
 */
export async function renewHostSSHCert(auth: AuthServer, hostId: string, tlsNames: Set<string>, current: { sshCert: string }) {
  let cert;
  try {
    cert = parseCertificate(parseAuthorizedKey(current.sshCert).blob);
  } catch {
    throw new BadParameter('the host certificate to renew is not an OpenSSH certificate');
  }
  if (cert.certType !== 'host' || cert.keyId !== hostId) throw new AccessDenied('a host may only renew its own host certificate');
  if (cert.principals.length === 0 || cert.principals.some((p) => !tlsNames.has(canonicalName(p)))) {
    throw new AccessDenied('the host certificate names a host this identity was not issued for');
  }
  // A locked node (wctl lock --node, by host name or id) gets no new certificate.
  const locks = await auth.locks.list();
  for (const name of cert.principals) {
    const lock = lockFor(locks, { node: { name, id: hostId } }, auth.now());
    if (lock) throw new AccessDenied(describeLock(lock));
  }
  const now = auth.now();
  const hostCA = await auth.cas.get('host');
  const expires = new Date(now.getTime() + HOST_CERT_TTL_MS);
  const sshCert = await issueHostSSHCert(
    { hostId, principals: cert.principals, sshPublicKey: formatAuthorizedKey(cert.publicKey), now, expires },
    auth.keystore.sshSigner(hostCA),
  );
  await auth.audit.emit('cert.create', { host_id: hostId, issued_by: `service:${hostId}`, principals: cert.principals, expires: expires.toISOString() });
  return { sshCert, sshHostCas: (await auth.trustBundle()).sshHostCAs };
}

export async function registerUsingToken(
  auth: AuthServer,
  req: Omit<HostIdentityRequest, 'hostId'> & { token: string; remoteAddr: string },
) {
  // The same answer for a missing, expired or wrong-role token: a token is a secret.
  const token: Token | undefined = /^[0-9a-f]{32}$/.test(req.token) ? await auth.tokens.tryGet(req.token) : undefined;
  if (!token || !(token.spec.roles as string[]).includes(req.systemRole)) {
    await auth.audit.emit('node.join', { success: false, role: req.systemRole, hostname: req.hostname, ...(req.remoteAddr ? { remote_addr: req.remoteAddr } : {}), error: 'invalid token' });
    throw new AccessDenied('access denied: the join token is invalid or expired');
  }
  if (!nameSchema.safeParse(req.hostname).success) throw new BadParameter(`invalid host name "${req.hostname}"`);
  const hostId = randomUUID();
  const identity = await issueHostIdentity(auth, { ...req, hostId });
  await auth.audit.emit('node.join', { success: true, role: req.systemRole, host_id: hostId, hostname: req.hostname, ...(req.remoteAddr ? { remote_addr: req.remoteAddr } : {}) });
  return { ...identity, labels: token.spec.labels ?? {} };
}

/** A heartbeat: a host's own node (or proxy) resource, named by its host id, expiring soon. */
export async function heartbeat(auth: AuthServer, hostId: string, resource: Node | Proxy): Promise<Node | Proxy> {
  if (resource.metadata.name !== hostId) throw new AccessDenied('a host may only heartbeat itself');
  const expires = new Date(auth.now().getTime() + NODE_TTL_MS).toISOString();
  const withExpiry = { ...resource, metadata: { ...resource.metadata, expires } };
  return withExpiry.kind === 'node' ? auth.nodes.upsert(withExpiry) : auth.proxies.upsert(withExpiry);
}
