// The only code that touches CA private keys. Software keys are kept in the CA resource in the backend
// (as Teleport does by default); a PKCS#11 KeyStore would keep only a handle there. Callers get signers,
// never key material.
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { BadParameter } from '../api/errors.ts';
import type { CertAuthority } from '../api/types.ts';
import { formatAuthorizedKey, sshPublicKeyBlob } from '../crypto/sshkeys.ts';
import { softwareSigner, type SSHSigner } from '../crypto/sshcert.ts';
import { createTLSCA, importCAKey, prepareIssuer, type TLSIssuer } from '../crypto/x509.ts';
import type { TLSCASigner } from './certs.ts';

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

  // Parsed signing keys, one entry per CA type, reused while the CA's active private key is the same PEM
  // (a rotation or a re-created CA changes it, and the next call re-parses). Comparing the PEM rather than
  // trusting the resource revision alone means a stale entry can never sign. Why: parsing the PEM keys
  // (createPrivateKey through OpenSSL 3's decoders) was ~30% of the CPU of issueUserCerts (bench/profile-issuance.ts;
  // the figures are in bench/README.md). The TLS entry also holds what issuing needs from the CA certificate
  // (issuer name, key id, expiry), keyed by the certificate PEM.
  private readonly sshSigners = new Map<string, { pem: string; signer: SSHSigner }>();
  private readonly tlsKeys = new Map<string, { pem: string; certPem: string; key: KeyObject; issuer: TLSIssuer }>();

  sshSigner(ca: CertAuthority): SSHSigner {
    const pem = this.privateOf(ca);
    const cached = this.sshSigners.get(ca.spec.type);
    if (cached?.pem === pem) return cached.signer;
    const signer = softwareSigner(createPrivateKey(pem));
    this.sshSigners.set(ca.spec.type, { pem, signer });
    return signer;
  }

  /** The CA certificate and the key that signs with it, for issuing X.509 certificates. */
  tlsSigner(ca: CertAuthority): TLSCASigner {
    const caKeyPem = this.privateOf(ca);
    const caCertPem = ca.spec.active_keys[0]!.public;
    let cached = this.tlsKeys.get(ca.spec.type);
    if (cached?.pem !== caKeyPem || cached.certPem !== caCertPem) {
      cached = { pem: caKeyPem, certPem: caCertPem, key: importCAKey(caKeyPem), issuer: prepareIssuer(caCertPem) };
      this.tlsKeys.set(ca.spec.type, cached);
    }
    return { caCertPem, caKeyPem, caKey: cached.key, issuer: cached.issuer };
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
  return {
    ...ca,
    spec: { ...ca.spec, active_keys: strip(ca.spec.active_keys), additional_keys: strip(ca.spec.additional_keys) },
  };
}
