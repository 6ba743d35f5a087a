// How Ward's own SSH clients (the web terminal at the proxy, wsh bench) trust a node: by its host
// certificate, signed by one of the cluster's host CAs (the `@cert-authority` lines wsh login writes
// to known_hosts) and naming the host they dialled, as OpenSSH does with StrictHostKeyChecking.
import { parseCertificate, verifyCertificate } from './sshcert.ts';
import { parseAuthorizedKey } from './sshkeys.ts';

/** The CA key blobs of the `@cert-authority` lines among known_hosts lines. */
export function hostCAKeys(knownHostsLines: readonly string[]): Buffer[] {
  return knownHostsLines
    .map((l) => /^@cert-authority\s+\S+\s+(.+)$/.exec(l.trim())?.[1])
    .filter((l): l is string => !!l)
    .map((l) => parseAuthorizedKey(l).blob);
}

export function hostCertVerifier(knownHostsLines: readonly string[], host: string): (key: Buffer) => boolean {
  const trustedCAs = hostCAKeys(knownHostsLines);
  return (key) => {
    try {
      verifyCertificate(parseCertificate(key), { trustedCAs, now: new Date(), certType: 'host', principal: host });
      return true;
    } catch {
      return false;
    }
  };
}
