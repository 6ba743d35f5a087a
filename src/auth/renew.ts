// Hosts renewing their own certificates (RenewHostCerts): a host that joined with a token calls with its current
// TLS host certificate (mutual TLS is the authentication) and gets its SSH host certificate again from the host
// CA's signing key (a rotation), and/or its TLS certificate again with a fresh validity (before it expires). What
// a renewed certificate says comes from the certificate the host calls with, never from the request.
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { SYSTEM_ROLES } from '../api/types.ts';
import { checkTLSPublicKey, issueHostSSHCert, issueHostTLSCert } from './certs.ts';
import { parseCertificate } from '../crypto/sshcert.ts';
import { formatAuthorizedKey, parseAuthorizedKey } from '../crypto/sshkeys.ts';
import type { AuthServer } from './server.ts';
import { describeLock, lockFor } from '../rbac/locks.ts';

/**
 * Whether a caller's system roles are those of a host that joined with a token (node, proxy, db, app, kube): only
 * they renew over the API. The auth server's own certificate and the local admin's are issued in process.
 */
export function holdsHostIdentity(systemRoles: readonly string[]): boolean {
  return systemRoles.length > 0 && systemRoles.every((r) => (SYSTEM_ROLES as readonly string[]).includes(r));
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
    // Node quotes an entry that holds special characters; no name Ward issues does, so such an entry counts for
    // nothing.
    const m = /^(DNS|IP Address):([^"]+)$/.exec(entry);
    if (m) names.add(canonicalName(m[2]!));
  }
  return names;
}

/** A locked node (wctl lock --node, by host name or id) gets no new certificate. */
async function refuseLocked(auth: AuthServer, hostId: string, names: Iterable<string>): Promise<void> {
  const locks = await auth.locks.list();
  const now = auth.now();
  for (const name of [hostId, ...names]) {
    const lock = lockFor(locks, { node: { name, id: hostId } }, now);
    if (lock) throw new AccessDenied(describeLock(lock));
  }
}

/**
 * A host's SSH host certificate again, signed by the host CA's signing key: the same host id, key and
 * principals, a new validity. The principals must all be names in the caller's TLS certificate (`tlsNames`), which
 * the auth server issued at join with the same list, so a host can renew only what it was given. The certificate
 * it holds is not checked against the host CA: after a rotation its signer may be one the CA no longer trusts. So
 * the key it certifies is the caller's word; that gives a host nothing it lacks, a certificate for its own names.
 */
export async function renewHostSSHCert(
  auth: AuthServer,
  hostId: string,
  tlsNames: Set<string>,
  current: { sshCert: string },
) {
  let cert;
  try {
    cert = parseCertificate(parseAuthorizedKey(current.sshCert).blob);
  } catch {
    throw new BadParameter('the host certificate to renew is not an OpenSSH certificate');
  }
  if (cert.certType !== 'host' || cert.keyId !== hostId)
    throw new AccessDenied('a host may only renew its own host certificate');
  if (cert.principals.length === 0 || cert.principals.some((p) => !tlsNames.has(canonicalName(p)))) {
    throw new AccessDenied('the host certificate names a host this identity was not issued for');
  }
  await refuseLocked(auth, hostId, cert.principals);
  const now = auth.now();
  const hostCA = await auth.cas.get('host');
  const expires = new Date(now.getTime() + auth.hostCertTTLMs);
  const sshCert = await issueHostSSHCert(
    { hostId, principals: cert.principals, sshPublicKey: formatAuthorizedKey(cert.publicKey), now, expires },
    auth.keystore.sshSigner(hostCA),
  );
  await auth.audit.emit('cert.create', {
    host_id: hostId,
    issued_by: `service:${hostId}`,
    cert_type: 'ssh',
    principals: cert.principals,
    expires: expires.toISOString(),
  });
  return { sshCert, sshHostCas: (await auth.trustBundle()).sshHostCAs };
}

/** What a TLS renewal certifies, all read from the certificate the caller presented. */
export interface TLSRenewal {
  publicKeyPem: string;
  names: string[];
}

/**
 * Checks a request to renew the TLS certificate the caller authenticated with (`presented`: the TLS handshake
 * verified it, and authz.ts its dates and cluster) and reads what the new one certifies: that certificate's key and
 * names. The request only names the key the host means to keep, and must name that one: a host that has changed its
 * key must join again.
 */
export function tlsRenewalFor(presented: Buffer | undefined, req: { tlsPublicKey: string }): TLSRenewal {
  let cert: X509Certificate;
  try {
    if (!presented?.length) throw new Error('none');
    cert = new X509Certificate(presented);
  } catch {
    throw new AccessDenied('renewing a TLS certificate needs the current one on the connection');
  }
  let asked: KeyObject;
  try {
    asked = createPublicKey(checkTLSPublicKey(req.tlsPublicKey));
  } catch (err) {
    if (err instanceof BadParameter) throw err;
    throw new BadParameter('the TLS public key to renew is not a PEM public key');
  }
  if (!asked.equals(cert.publicKey))
    throw new AccessDenied('the TLS public key is not the key of the certificate this host calls with');
  return {
    publicKeyPem: cert.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    names: [...subjectAltNames(cert.subjectAltName)],
  };
}

/**
 * A host's TLS certificate again (`renewal` from tlsRenewalFor), from the TLS CA, valid for the cluster's host
 * certificate TTL from now, for the host id and system roles authz.ts read from the same certificate (`caller`).
 */
export async function renewHostTLSCert(
  auth: AuthServer,
  caller: { hostId: string; systemRoles: readonly string[] },
  renewal: TLSRenewal,
) {
  if (!holdsHostIdentity(caller.systemRoles))
    throw new AccessDenied('only hosts that joined the cluster renew their certificates');
  const { names } = renewal;
  await refuseLocked(auth, caller.hostId, names);
  const now = auth.now();
  // X.509 times have whole seconds (x509.issueTLSCert): the event says when the certificate really ends.
  const expires = new Date(Math.floor((now.getTime() + auth.hostCertTTLMs) / 1000) * 1000);
  const tlsCert = await issueHostTLSCert(
    {
      hostId: caller.hostId,
      systemRoles: [...caller.systemRoles],
      cluster: auth.clusterName,
      tlsPublicKey: renewal.publicKeyPem,
      dnsNames: names.filter((n) => isIP(n) === 0),
      ipAddresses: names.filter((n) => isIP(n) !== 0),
      now,
      expires,
    },
    auth.keystore.tlsSigner(await auth.cas.get('tls')),
  );
  await auth.audit.emit('cert.create', {
    host_id: caller.hostId,
    issued_by: `service:${caller.hostId}`,
    cert_type: 'tls',
    principals: names,
    expires: expires.toISOString(),
  });
  return { tlsCert, tlsCas: (await auth.trustBundle()).tlsCAs };
}
