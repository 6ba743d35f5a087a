// The door a proxy uses into a node it reaches directly (docs/nodes.md): mutual TLS on the node's own SSH port,
// ALPN ward-node-ssh, with the user's end-to-end SSH connection inside. Both ends share what is here: the ALPN
// name, the cluster TLS CAs they verify each other against, and the host identity each requires of the other.
import type { PeerCertificate } from 'node:tls';
import { identityFromPeerCert } from './certinfo.ts';
import { trustedTLSCAs } from './rotation.ts';
import type { CertAuthority } from './types.ts';

export const ALPN_NODE_SSH = 'ward-node-ssh';

/** The cluster's TLS CAs now, or none while the CA is not known yet (see trustedTLSCAs). Read at each handshake. */
export function tlsTrustBundle(ca: CertAuthority | undefined): string[] {
  return ca && ca.spec.type === 'tls' ? trustedTLSCAs(ca) : [];
}

/**
 * Why the peer certificate (already verified against the cluster's TLS CAs by the handshake) is not the host `want`
 * names: a host certificate of this cluster, with this system role and, when given, this host id. Undefined if it is.
 */
export function hostIdentityMismatch(
  cert: PeerCertificate,
  want: { cluster: string; systemRole: string; hostId?: string },
): string | undefined {
  let id;
  try {
    id = identityFromPeerCert(cert);
  } catch (err) {
    return (err as Error).message; // no certificate, or no Ward identity in it
  }
  if (id.kind !== 'host') return 'its certificate is not a host certificate';
  if (id.cluster !== want.cluster) return `its certificate is for cluster "${id.cluster}"`;
  if (!(id.systemRoles ?? []).includes(want.systemRole)) return `its certificate is not a ${want.systemRole}'s`;
  if (want.hostId !== undefined && id.hostId !== want.hostId) return `its certificate is host ${id.hostId}'s`;
  return undefined;
}
