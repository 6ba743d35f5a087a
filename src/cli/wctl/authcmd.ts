// wctl auth sign / export: credentials for users and services, and CA keys for outside tools.
import type { AuthClient } from '../../api/client.ts';
import { writeFileAtomic } from '../../api/atomic-write.ts';
import { formatIdentityFile } from '../../api/identity-file.ts';
import { generateClientKeys } from '../../api/keys.ts';
import { formatDuration } from '../../api/duration.ts';

export async function signUser(
  auth: AuthClient,
  opts: { user: string; out: string; ttlMs: number; format: 'openssh' | 'tls' | 'file' },
): Promise<string> {
  const keys = generateClientKeys(opts.user);
  const certs = await auth.generateUserCerts({
    user: opts.user,
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
    ttlSeconds: Math.round(opts.ttlMs / 1000),
  });
  const written: string[] = [];
  const write = (path: string, data: string, mode = 0o600) => {
    writeFileAtomic(path, data, mode);
    written.push(path);
  };
  if (opts.format === 'openssh') {
    write(opts.out, keys.sshPrivateKey);
    write(`${opts.out}-cert.pub`, certs.sshCert, 0o644);
  } else if (opts.format === 'tls') {
    write(`${opts.out}.key`, keys.tlsKey);
    write(`${opts.out}.crt`, certs.tlsCert, 0o644);
    write(`${opts.out}.cas`, certs.tlsCas.join(''), 0o644);
  } else {
    write(
      opts.out,
      formatIdentityFile({
        sshPrivateKey: keys.sshPrivateKey,
        sshCert: certs.sshCert,
        tlsKey: keys.tlsKey,
        tlsCert: certs.tlsCert,
        tlsCAs: certs.tlsCas,
        sshHostCAs: certs.sshHostCas,
      }),
    );
  }
  return `Credentials for "${opts.user}" valid for ${formatDuration(certs.ttlSeconds * 1000)} written to:\n${written.map((w) => `  ${w}\n`).join('')}`;
}

export async function exportCAs(auth: AuthClient, type: string): Promise<string> {
  const res = await auth.exportCAs({ type });
  return res.entries.map((e) => (e.endsWith('\n') ? e : `${e}\n`)).join('');
}
