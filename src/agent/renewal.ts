// A node's or proxy's SSH host certificate follows the host CA through a rotation (auth/rotation.ts): once the
// CA reaches update_servers, or is back in standby after a rollback, a host whose certificate was signed by
// another key than the CA's signing key asks for a new one (RenewHostCerts) and presents it to the connections
// that follow. Not before update_servers: until then clients may not have learned the new key.
//
// The CA comes from the host's watch-fed cache, so a step reaches every host within seconds. A failed renewal is
// retried, with the cache still saying what to aim for.
import type { Logger } from 'pino';
import type { AuthClient } from '../api/client.ts';
import type { CertAuthority } from '../api/types.ts';
import type { ResourceCache } from '../cache/resources.ts';
import type { HostIdentity } from './identity.ts';
import { parseCertificate } from '../crypto/sshcert.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';

const RETRY_MS = 5_000;

/** Whether a host holding a certificate signed by `signer` should renew it now, given the host CA. */
export function needsRenewal(ca: CertAuthority | undefined, signer: Buffer): boolean {
  if (!ca) return false;
  const { phase } = ca.spec.rotation;
  if (phase !== 'update_servers' && phase !== 'standby') return false;
  const active = ca.spec.active_keys[0];
  return !!active && !parseAuthorizedKey(active.public).blob.equals(signer);
}

/** The host keys an SSH server presents for this identity: its key with its host certificate (Ward's ssh2 patch). */
export function hostKeysOf(identity: HostIdentity): Array<{ key: string; certificate: Buffer }> {
  return [{ key: identity.sshKey, certificate: parseAuthorizedKey(identity.sshCert).blob }];
}

export function startHostCertRenewal(opts: {
  cache: ResourceCache;
  auth: AuthClient;
  identity: HostIdentity;
  /** Takes the identity with a renewed certificate: present it (hostKeysOf), keep it. */
  onRenewed: (identity: HostIdentity) => void;
  log: Logger;
}): { stop(): void } {
  let current = opts.identity;
  let running = false;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const later = (ms: number) => {
    clearTimeout(retry);
    retry = setTimeout(() => void check(), ms);
    retry.unref();
  };
  // Never rejects: it runs from cache callbacks and timers, where a rejection would end the process.
  const check = async (): Promise<void> => {
    if (running || stopped) return;
    running = true;
    try {
      const ca = opts.cache.get('cert_authority', 'host') as CertAuthority | undefined;
      if (!needsRenewal(ca, parseCertificate(parseAuthorizedKey(current.sshCert).blob).signatureKey)) return;
      const { sshCert } = await opts.auth.renewHostCerts({ sshCert: current.sshCert });
      if (stopped) return;
      current = { ...current, sshCert };
      opts.onRenewed(current);
      opts.log.info({ phase: ca!.spec.rotation.phase }, 'host certificate renewed from the host CA');
      // The CA may have moved on (a rollback) while this was in flight: look again, once the cache has caught up.
      later(1_000);
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, `cannot renew the host certificate; retrying in ${RETRY_MS / 1000}s`);
      later(RETRY_MS);
    } finally {
      running = false;
    }
  };
  opts.cache.onChange((kind) => {
    if (kind === 'cert_authority') void check();
  });
  void check();
  return {
    stop() {
      stopped = true;
      clearTimeout(retry);
    },
  };
}
