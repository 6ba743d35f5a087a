// Certificate issuance: one OpenSSH certificate and one X.509 certificate per login, both for the
// same identity and expiring together. Hosts get the same pair with host principals and SANs.
import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { BadParameter } from '../api/errors.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';
import { signCertificate, type SSHSigner } from '../crypto/sshcert.ts';
import { formatAuthorizedKey } from '../crypto/sshkeys.ts';
import { issueTLSCert, type Identity, type TLSIssuer } from '../crypto/x509.ts';

import { EXT_CLUSTER, EXT_ROLES, EXT_TRAITS } from '../api/certext.ts';
import { CLOCK_SKEW_MS } from '../time/clock.ts';

export interface UserCertRequest {
  username: string;
  roles: string[];
  logins: string[];
  traits: Record<string, string[]>;
  cluster: string;
  sshPublicKey: string;
  tlsPublicKey: string;
  permitPortForwarding: boolean;
  permitAgentForwarding: boolean;
  now: Date;
  expires: Date;
}

/**
 * Parses a client-supplied SSH public key (authorized_keys form) into its blob. The key itself (Ed25519 or
 * ECDSA P-256, a valid point) is checked once, by signCertificate, before anything is signed: checking it here
 * too imported it twice per issuance (~5 us each).
 */
export function checkSSHPublicKey(line: string): Buffer {
  if (line.length > 8192) throw new BadParameter('SSH public key is too long');
  return parseAuthorizedKey(line).blob;
}

/**
 * Bounds a client-supplied TLS public key (SPKI PEM). The key itself (ECDSA P-256, a point on the curve) is
 * checked once, where the certificate is built (x509.p256SPKI): checking it here too cost ~60 us a login.
 */
export function checkTLSPublicKey(pem: string): string {
  if (pem.length > 8192) throw new BadParameter('TLS public key is too long');
  return pem;
}

function serial(): bigint {
  return randomBytes(8).readBigUInt64BE() & 0x7fffffffffffffffn;
}

export async function issueUserSSHCert(req: UserCertRequest, ca: SSHSigner): Promise<string> {
  const extensions: Record<string, string> = {
    'permit-pty': '',
    'permit-user-rc': '',
    [EXT_ROLES]: JSON.stringify(req.roles),
    [EXT_CLUSTER]: req.cluster,
    [EXT_TRAITS]: JSON.stringify(req.traits),
  };
  if (req.permitPortForwarding) extensions['permit-port-forwarding'] = '';
  if (req.permitAgentForwarding) extensions['permit-agent-forwarding'] = '';
  // PROTOCOL.certkeys: an empty principal list means "any principal". A user with no logins must get
  // a certificate valid for none, so it carries one name no OS account can have.
  const principals = req.logins.length ? req.logins : [`-ward-nologin-${randomUUID()}`];
  const blob = await signCertificate(
    {
      publicKey: checkSSHPublicKey(req.sshPublicKey),
      serial: serial(),
      certType: 'user',
      keyId: req.username,
      principals,
      validAfter: new Date(req.now.getTime() - CLOCK_SKEW_MS),
      validBefore: req.expires,
      extensions,
    },
    ca,
  );
  return formatAuthorizedKey(blob, req.username);
}

export async function issueUserTLSCert(req: UserCertRequest, ca: TLSCASigner): Promise<string> {
  const identity: Identity = {
    username: req.username,
    roles: req.roles,
    logins: req.logins,
    traits: req.traits,
    cluster: req.cluster,
    expires: req.expires.toISOString(),
    kind: 'user',
  };
  return issueTLSCert({
    ...ca,
    publicKeyPem: checkTLSPublicKey(req.tlsPublicKey),
    identity,
    notAfter: req.expires,
    now: req.now,
    usage: 'client',
  });
}

/** The TLS CA as the KeyStore hands it out; `caKey` and `issuer` are parsed once per CA (importCAKey, prepareIssuer).
 */
export interface TLSCASigner {
  caCertPem: string;
  caKeyPem: string;
  caKey?: KeyObject;
  issuer?: TLSIssuer;
}

export interface HostCertRequest {
  hostId: string;
  systemRoles: string[];
  cluster: string;
  tlsPublicKey: string;
  dnsNames: string[];
  ipAddresses: string[];
  now: Date;
  expires: Date;
}

/** A service's X.509 certificate: server and client auth, SANs for its names and addresses. */
export async function issueHostTLSCert(req: HostCertRequest, ca: TLSCASigner): Promise<string> {
  return issueTLSCert({
    ...ca,
    publicKeyPem: checkTLSPublicKey(req.tlsPublicKey),
    identity: {
      username: req.hostId,
      roles: [],
      logins: [],
      cluster: req.cluster,
      expires: req.expires.toISOString(),
      kind: 'host',
      hostId: req.hostId,
      systemRoles: req.systemRoles,
    },
    notAfter: req.expires,
    now: req.now,
    dnsNames: req.dnsNames,
    ipAddresses: req.ipAddresses,
    usage: 'both',
  });
}

/**
 * A host's OpenSSH certificate. Principals are every name a client may dial it by (PROTOCOL.certkeys:
 * for host certs, principals are host names), so `@cert-authority` known_hosts entries match.
 */
export async function issueHostSSHCert(
  req: { hostId: string; principals: string[]; sshPublicKey: string; now: Date; expires: Date },
  ca: SSHSigner,
): Promise<string> {
  const blob = await signCertificate(
    {
      publicKey: checkSSHPublicKey(req.sshPublicKey),
      serial: serial(),
      certType: 'host',
      keyId: req.hostId,
      principals: [...new Set(req.principals)],
      validAfter: new Date(req.now.getTime() - CLOCK_SKEW_MS),
      validBefore: req.expires,
    },
    ca,
  );
  return formatAuthorizedKey(blob, req.hostId);
}
