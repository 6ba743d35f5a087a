// A client's fresh key pair for a login: Ed25519 for SSH, ECDSA P-256 for TLS (DESIGN.md: every TLS
// stack and browser accepts P-256). The private halves never leave the client.
import { generateKeyPairSync } from 'node:crypto';
import { formatAuthorizedKey, formatOpenSSHPrivateKey, sshPublicKeyBlob } from './sshkeys.ts';

export interface ClientKeys {
  sshPrivateKey: string;
  sshPublicKey: string;
  tlsKey: string;
  tlsPublicKey: string;
}

export function generateClientKeys(comment: string): ClientKeys {
  const ssh = generateKeyPairSync('ed25519');
  const tls = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    sshPrivateKey: formatOpenSSHPrivateKey(ssh.privateKey, comment),
    sshPublicKey: formatAuthorizedKey(sshPublicKeyBlob(ssh.publicKey), comment),
    tlsKey: tls.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
