// The only code that touches CA private keys. Software keys are kept in the CA resource in the backend
// (as Teleport does by default); a PKCS#11 KeyStore would keep only a handle there. Callers get signers,
// never key material.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { BadParameter } from '../api/errors.ts';
import type { CertAuthority } from '../api/types.ts';
import { formatAuthorizedKey, sshPublicKeyBlob } from '../crypto/sshkeys.ts';
import { softwareSigner, type SSHSigner } from '../crypto/sshcert.ts';
import { createTLSCA } from '../crypto/x509.ts';

type CAKey = CertAuthority['spec']['active_keys'][number];

export class SoftwareKeyStore {
  /** A new Ed25519 SSH CA key: public as an authorized_keys line, private as PKCS#8 PEM. */
  newSSHKey(comment: string): CAKey {
    const { privateKey } = generateKeyPairSync('ed25519');
    return {
      public: formatAuthorizedKey(sshPublicKeyBlob(privateKey), comment),
      private: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
  }

  /** A new self-signed ECDSA P-256 CA: public is the certificate PEM. */
  async newTLSKey(clusterName: string, commonName: string, now: Date): Promise<CAKey> {
    const { certPem, keyPem } = await createTLSCA({ clusterName, commonName, now });
    return { public: certPem, private: keyPem };
  }

  sshSigner(ca: CertAuthority): SSHSigner {
    return softwareSigner(createPrivateKey(this.privateOf(ca)));
  }

  /** The CA certificate and the key that signs with it, for issuing X.509 certificates. */
  tlsSigner(ca: CertAuthority): { caCertPem: string; caKeyPem: string } {
    return { caCertPem: ca.spec.active_keys[0]!.public, caKeyPem: this.privateOf(ca) };
  }

  private privateOf(ca: CertAuthority): string {
    const key = ca.spec.active_keys[0]?.private;
    if (!key) throw new BadParameter(`the ${ca.spec.type} CA has no private key on this auth server`);
    return key;
  }
}

/** A CA as it may leave the auth server: public halves only. */
export function withoutSecrets(ca: CertAuthority): CertAuthority {
  const strip = (keys: CAKey[]) => keys.map((k) => ({ public: k.public }));
  return { ...ca, spec: { ...ca.spec, active_keys: strip(ca.spec.active_keys), additional_keys: strip(ca.spec.additional_keys) } };
}
