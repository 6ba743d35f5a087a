// wctl auth sign / export: credentials for users and services, and CA keys for outside tools.
import type { AuthClient } from '../../api/client.ts';
import { nextPhase } from '../../api/rotation.ts';
import { parseResource, type CertAuthority } from '../../api/types.ts';
import { caFingerprint } from './resources.ts';
import { writeFileAtomic } from '../../files/atomic-write.ts';
import { formatIdentityFile } from '../identity-file.ts';
import { generateClientKeys } from '../../crypto/clientkeys.ts';
import { formatDuration } from '../../time/duration.ts';

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
  return (
    `Credentials for "${opts.user}" valid for ${formatDuration(certs.ttlSeconds * 1000)} written to:\n` +
    written.map((w) => `  ${w}\n`).join('')
  );
}

export async function exportCAs(auth: AuthClient, type: string): Promise<string> {
  const res = await auth.exportCAs({ type });
  return res.entries.map((e) => (e.endsWith('\n') ? e : `${e}\n`)).join('');
}

/** What each phase means for the people running the cluster, and what to do before the next step. */
const AFTER: Record<string, Record<string, string>> = {
  user: {
    init:
      'A new key is made and trusted next to the current one; certificates are still signed with the current key.\n' +
      'Nodes and proxies pick up the new key from their caches within seconds. An agentless sshd needs it in its\n' +
      'TrustedUserCAKeys: wctl auth export --type user > FILE there, then the next step.',
    update_clients:
      'New certificates (logins, renewals) are signed with the new key; those signed before keep working.',
    update_servers:
      'Nothing changes for the user CA; this is the last step that can still be rolled back with every\n' +
      'old certificate working. Users who log in again now get certificates that survive the next step.',
    standby: 'The rotation is complete: the old key is no longer trusted, and certificates it signed stop working.',
  },
  host: {
    init:
      'A new key is made; clients learn it when they log in (wsh login writes both to known_hosts). ' +
      'Hosts keep their\n' +
      'certificates. Before update_servers, users should log in again: clients that know only the old key will not\n' +
      'trust hosts once they switch. For plain OpenSSH clients: wctl auth export --type host into known_hosts.',
    update_clients: 'Newly joined hosts get certificates from the new key; hosts already joined keep theirs.',
    update_servers:
      'Nodes and proxies take host certificates from the new key within seconds and present them to new\n' +
      'connections; clients that know only the old key no longer trust them.',
    standby: 'The rotation is complete: the old key is no longer trusted.',
  },
  tls: {
    init:
      'A new key is made and trusted next to the current one by the auth servers, proxies and agents within\n' +
      'seconds, and by clients that log in now (wsh login writes both to its CA bundle). Certificates are still\n' +
      'signed with the current key. For outside TLS clients: wctl auth export --type tls.',
    update_clients:
      "New certificates (logins, the local admin's, newly joined hosts) are signed with the new key; those signed\n" +
      'before keep working. Users should log in again now: a login from before init will not trust the servers\n' +
      'once they switch, and its certificate stops working at standby.',
    update_servers:
      'Auth servers, proxies and agents take TLS certificates from the new key within seconds and present them to\n' +
      'new connections. This is the last step that can be rolled back.',
    rollback:
      'The old key signs again; hosts that took certificates from the new key take new ones from the old key within\n' +
      'seconds, while both stay trusted.',
    standby: 'The rotation is complete: the old key is no longer trusted, and certificates it signed stop working.',
  },
};

const HOSTS_MOVE_BACK = ' Hosts that took certificates from it take new ones from the old key.';

/** One step of a CA rotation (the next phase unless `phase` says which), or its rollback. */
export async function rotateCA(
  auth: AuthClient,
  opts: { type: string; phase?: string; rollback?: boolean },
): Promise<string> {
  let phase = opts.phase;
  if (!opts.rollback && !phase) {
    const current = parseResource(
      JSON.parse((await auth.getResource({ kind: 'cert_authority', name: opts.type })).json),
    ) as CertAuthority;
    phase = nextPhase(current.spec.rotation.phase);
  }
  const res = await auth.rotateCertAuthority({ type: opts.type, phase: phase ?? '', rollback: !!opts.rollback });
  const ca = parseResource(JSON.parse(res.json)) as CertAuthority;
  const now = ca.spec.rotation.phase;
  const signing = caFingerprint(ca);
  const trusted = [...ca.spec.active_keys, ...ca.spec.additional_keys].length;
  const keys = `${trusted} key${trusted > 1 ? 's' : ''}`;
  const lines = [
    opts.rollback
      ? `The ${opts.type} CA rotation was rolled back: phase ${now}, signing with ${signing} again.`
      : `The ${opts.type} CA is in phase ${now}; signing key ${signing}, ${keys} trusted.`,
    opts.rollback && now === 'standby'
      ? `The key the rotation made is no longer trusted.${opts.type === 'host' ? HOSTS_MOVE_BACK : ''}`
      : (AFTER[opts.type]?.[now] ?? ''),
  ];
  const next = `Next: wctl auth rotate --type ${opts.type}   `;
  if (now === 'rollback') lines.push(`${next}(to standby, once hosts have moved back)`);
  else if (now !== 'standby') lines.push(`${next}(to ${nextPhase(now)}), or --rollback`);
  return lines.join('\n') + '\n';
}
