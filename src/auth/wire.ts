// Domain values as the Auth API's protobuf messages, for the handlers that return them (api*.ts), and the
// request fields every handler reads the same way (TTLs).
import { BadParameter } from '../api/errors.ts';
import type { Resource } from '../api/types.ts';
import { withoutSecrets } from './keystore.ts';
import type { Certs } from './server.ts';

const MAX_TTL_SECONDS = 30 * 86_400;

export function ttlMs(seconds: number, fallbackMs: number): number {
  if (seconds > MAX_TTL_SECONDS) throw new BadParameter('TTL is too long (at most 30 days)');
  return seconds > 0 ? seconds * 1000 : fallbackMs;
}

/** What a resource looks like to a caller: CA private keys never leave the auth server. */
export function present(resource: Resource): string {
  return JSON.stringify(resource.kind === 'cert_authority' ? withoutSecrets(resource) : resource);
}

/** A login's certificates and trust bundle as the Certs message. */
export function certsMessage(c: Certs) {
  return {
    sshCert: c.sshCert,
    tlsCert: c.tlsCert,
    tlsCas: c.tlsCAs,
    sshHostCas: c.sshHostCAs,
    clusterName: c.clusterName,
    ttlSeconds: Math.round(c.ttlMs / 1000),
  };
}
