// Host certificates for the tunnel benches, minted with a throwaway cluster CA as the auth server would issue
// them at join (kind host, a host id, system roles).
import { generateTLSKey, issueTLSCert } from '../src/crypto/x509.ts';

export async function hostCert(
  ca: { certPem: string; keyPem: string },
  hostId: string,
  systemRoles: string[],
): Promise<{ keyPem: string; certPem: string }> {
  const now = new Date();
  const key = await generateTLSKey();
  const certPem = await issueTLSCert({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    publicKeyPem: key.publicKeyPem,
    identity: {
      username: hostId,
      roles: [],
      logins: [],
      cluster: 'bench',
      expires: '',
      kind: 'host',
      hostId,
      systemRoles,
    },
    notAfter: new Date(now.getTime() + 3_600_000),
    now,
    usage: 'both',
  });
  return { keyPem: key.privateKeyPem, certPem };
}
