// Credentials on disk: the single identity file of `wctl auth sign --format file` (accepted by
// `wsh -i`, `wctl -i`, and by OpenSSH's `ssh -i` since it starts with the private key, as Teleport's
// does), and the parts wsh keeps under its profile directory.
import { readFileSync } from 'node:fs';
import { BadParameter } from '../api/errors.ts';

export interface Credentials {
  /** OpenSSH private key (openssh-key-v1 PEM). */
  sshPrivateKey: string;
  /** The user certificate, one authorized_keys-style line. */
  sshCert: string;
  /** PKCS#8 PEM of the TLS key. */
  tlsKey: string;
  tlsCert: string;
  tlsCAs: string[];
  /** known_hosts lines for the host CA. */
  sshHostCAs: string[];
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g;

export function formatIdentityFile(c: Credentials): string {
  const pem = (s: string) => (s.endsWith('\n') ? s : `${s}\n`);
  return [
    pem(c.sshPrivateKey),
    pem(c.sshCert),
    pem(c.tlsKey),
    pem(c.tlsCert),
    ...c.tlsCAs.map(pem),
    ...c.sshHostCAs.map(pem),
  ].join('');
}

export function parseIdentityFile(text: string, path = 'identity file'): Credentials {
  if (text.length > 1024 * 1024) throw new BadParameter(`${path} is too large to be an identity file`);
  const blocks = [...text.matchAll(PEM_BLOCK)].map((m) => ({ type: m[1]!, text: m[0].trimEnd() + '\n' }));
  const rest = text
    .replace(PEM_BLOCK, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const sshPrivateKey = blocks.find((b) => b.type === 'OPENSSH PRIVATE KEY')?.text;
  const tlsKey = blocks.find((b) => b.type === 'PRIVATE KEY' || b.type === 'EC PRIVATE KEY')?.text;
  const certs = blocks.filter((b) => b.type === 'CERTIFICATE').map((b) => b.text);
  const sshCert = rest.find((l) => /^[a-z0-9-]+-cert-v01@openssh\.com /.test(l));
  const sshHostCAs = rest.filter((l) => l.startsWith('@cert-authority '));
  if (!sshPrivateKey || !tlsKey || !sshCert || certs.length < 2) {
    throw new BadParameter(`${path} is not a Ward identity file (make one with: wctl auth sign --format file)`);
  }
  return { sshPrivateKey, sshCert: sshCert + '\n', tlsKey, tlsCert: certs[0]!, tlsCAs: certs.slice(1), sshHostCAs };
}

export function readIdentityFile(path: string): Credentials {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BadParameter(
      `cannot read identity file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseIdentityFile(text, path);
}
