// A host keeps its certificates current by itself (RenewHostCerts, authenticated by its TLS certificate):
// - before they expire: once a third of a certificate's lifetime is left (auth_service.host_cert_ttl, a year by
//   default), it asks for it again (TLS and SSH, issued together, are due together), for the same keys and names;
// - through a host CA rotation (auth/rotation.ts): once the CA reaches update_servers, or is back in standby after a
//   rollback, a host whose SSH certificate was signed by another key than the CA's signing key asks for a new one.
//   Not before update_servers: until then clients may not have learned the new key.
// - through a TLS CA rotation: from init on the host trusts every key the CA holds (its Auth API client, tunnels and
//   TLS servers take the new trust for the connections that follow), and once the CA reaches update_servers (or rolls
//   back) a host whose TLS certificate was signed by another key than the signing one asks for a new one.
// The caller presents what it gets to the connections that follow (onRenewed) and keeps it in its data dir. The CA
// comes from the host's watch-fed cache, so a rotation step reaches every host within seconds. A failed renewal is
// retried with backoff; a certificate that expired anyway (the host was down too long) needs a new join.
import { createPublicKey } from 'node:crypto';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { AuthClient } from '../api/client.ts';
import { CLOCK_SKEW_MS, systemClock, type Clock } from '../time/clock.ts';
import type { CertAuthority } from '../api/types.ts';
import { tlsCertOutdated, trustedTLSCAs } from '../api/rotation.ts';
import type { ResourceCache } from '../cache/resources.ts';
import type { HostIdentity } from './identity.ts';
import { certValidity } from '../api/certinfo.ts';
import { parseCertificate } from '../crypto/sshcert.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';

/** Renew once this much of a certificate's lifetime is left. */
const RENEW_WHEN_LEFT = 1 / 3;
/** Look again at least this often: a laptop that slept, a clock that jumped, and setTimeout's 24.8-day limit. */
const MAX_CHECK_MS = 3_600_000;
const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 5 * 60_000;

export interface Validity {
  notBefore: number;
  notAfter: number;
}

/** How long to wait before looking at a certificate due at `dueAt` again. */
export function nextCheckIn(dueAt: number, now: number): number {
  return Math.min(Math.max(0, dueAt - now), MAX_CHECK_MS);
}

/** When a certificate is due for renewal (ms since the epoch): with a third of its lifetime left. */
export function renewalDue(v: Validity): number {
  // Ward's certificates start CLOCK_SKEW_MS before they are issued; that minute is not lifetime.
  const issued = Math.min(v.notBefore + CLOCK_SKEW_MS, v.notAfter);
  return v.notAfter - (v.notAfter - issued) * RENEW_WHEN_LEFT;
}

/**
 * How long to wait before retry number `failures` (1, 2, ...): doubling from 5 s to 5 minutes, jittered so that
 * agents that lost the auth server together do not come back together, and never more than a quarter of the time
 * the certificate has left (`msLeft`), so a short-lived one still gets several tries.
 */
export function retryDelay(failures: number, msLeft: number, random = Math.random): number {
  const cap = Math.min(RETRY_MIN_MS * 2 ** Math.min(failures - 1, 16), RETRY_MAX_MS, Math.max(1_000, msLeft / 4));
  return Math.round(cap / 2 + (random() * cap) / 2);
}

function sshValidity(sshCert: string): Validity {
  const cert = parseCertificate(parseAuthorizedKey(sshCert).blob);
  return { notBefore: cert.validAfter.getTime(), notAfter: cert.validBefore.getTime() };
}

/** The public key (SPKI PEM) of a host's TLS private key: what RenewHostCerts is asked to certify again. */
function tlsPublicKeyOf(identity: HostIdentity): string {
  return createPublicKey(identity.tlsKey).export({ type: 'spki', format: 'pem' }).toString();
}

/** What a host whose TLS certificate has expired is told: it can no longer prove who it is, so only a join helps. */
export function expiredMessage(identity: HostIdentity, notAfter: number): string {
  const role = identity.systemRole;
  return (
    `the ${role}'s host certificate expired at ${new Date(notAfter).toISOString()} (it was not renewed in time, ` +
    `e.g. the ${role} was stopped or cut off from the cluster for too long): join it again with a new token ` +
    `(wctl tokens add --type ${role}; remove ${role}/identity.json from the data dir and start with --token)`
  );
}

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

/** The TLS identity a host presents, from its host identity. */
export function tlsIdentityOf(identity: HostIdentity): { keyPem: string; certPem: string; caPems: string[] } {
  return { keyPem: identity.tlsKey, certPem: identity.tlsCert, caPems: identity.tlsCAs };
}

const EXPIRY_METRIC = 'ward_host_cert_expiry_timestamp_seconds';

/**
 * Publishes when a certificate of this process ends (`role`: node, proxy, auth, admin; `cert`: tls or ssh), so an
 * alert can fire well before it does if renewals keep failing. Set at start and after each renewal.
 */
export function recordCertExpiry(
  metrics: Registry | undefined,
  role: string,
  cert: 'tls' | 'ssh',
  notAfterMs: number,
): void {
  if (!metrics) return;
  // One gauge per registry, whichever service of the process registers first (a home lab runs several).
  const gauge =
    (metrics.getSingleMetric(EXPIRY_METRIC) as Gauge<'role' | 'cert'> | undefined) ??
    new Gauge({
      name: EXPIRY_METRIC,
      help: 'When a certificate of this process expires (Unix time)',
      labelNames: ['role', 'cert'],
      registers: [metrics],
    });
  gauge.set({ role, cert }, Math.floor(notAfterMs / 1000));
}

function recordHostExpiry(metrics: Registry | undefined, identity: HostIdentity): void {
  recordCertExpiry(metrics, identity.systemRole, 'tls', certValidity(identity.tlsCert).notAfter);
  recordCertExpiry(metrics, identity.systemRole, 'ssh', sshValidity(identity.sshCert).notAfter);
}

export function startHostCertRenewal(opts: {
  cache: ResourceCache;
  /** Must present the current identity (createAuthClient with an identity function): a renewal uses the certificate it
   * renews. */
  auth: AuthClient;
  identity: HostIdentity;
  /**
   * Takes the identity with renewed certificates, or with the TLS CAs a rotation changed: present them to new
   * connections (hostKeysOf, tlsIdentityOf), keep it. Its TLS certificate, and its `tlsCAs`, are each either the
   * same object as before or a new one.
   */
  onRenewed: (identity: HostIdentity) => void;
  log: Logger;
  clock?: Clock;
  /** Where to publish the certificates' expiry (recordCertExpiry). */
  metrics?: Registry;
}): { stop(): void } {
  const clock = opts.clock ?? systemClock;
  const { log } = opts;
  let current = opts.identity;
  let running = false;
  let stopped = false;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  const later = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => void check(), Math.max(0, ms));
    timer.unref();
  };
  const putToUse = (identity: HostIdentity) => {
    try {
      opts.onRenewed(identity);
    } catch (err) {
      // Presented or not, the new certificates are this host's now; a failure to keep them is retried at the next
      // renewal.
      log.error({ err: (err as Error).message }, 'cannot put the renewed host certificates to use');
    }
  };
  // Never rejects: it runs from cache callbacks and timers, where a rejection would end the process.
  const check = async (): Promise<void> => {
    if (running || stopped) return;
    running = true;
    let next: number | undefined;
    let tlsExpires = 0;
    try {
      const now = clock.now().getTime();
      const tls = certValidity(current.tlsCert);
      tlsExpires = tls.notAfter;
      if (now >= tls.notAfter) {
        // mTLS refuses an expired certificate: trying again would only fill the log.
        log.error({ expired: new Date(tls.notAfter).toISOString() }, expiredMessage(current, tls.notAfter));
        return;
      }
      const ssh = sshValidity(current.sshCert);
      let ca: CertAuthority | undefined;
      try {
        ca = opts.cache.get('cert_authority', 'host') as CertAuthority | undefined;
      } catch {
        ca = undefined; // a stale cache says nothing about a rotation; expiry goes on regardless
      }
      const rotation = needsRenewal(ca, parseCertificate(parseAuthorizedKey(current.sshCert).blob).signatureKey);
      let tlsCA: CertAuthority | undefined;
      try {
        tlsCA = opts.cache.get('cert_authority', 'tls') as CertAuthority | undefined;
      } catch {
        tlsCA = undefined;
      }
      const trusted = tlsCA ? trustedTLSCAs(tlsCA) : [];
      if (trusted.length > 0 && trusted.join('\0') !== current.tlsCAs.join('\0')) {
        current = { ...current, tlsCAs: trusted };
        log.info({ phase: tlsCA!.spec.rotation.phase, cas: trusted.length }, 'trusting the TLS CA as it is now');
        putToUse(current);
      }
      const tlsRotation = !!tlsCA && tlsCertOutdated(tlsCA, current.tlsCert, 'server');
      // Each certificate when it is due (issued together, they are due together); the SSH one also at a rotation.
      // An SSH certificate renewed only because the TLS one is due would come from the signing key even in the
      // rotation's phases where clients may not trust it yet.
      const tlsDue = tlsRotation || now >= renewalDue(tls);
      const sshDue = rotation || now >= renewalDue(ssh);
      if (!tlsDue && !sshDue) {
        next = nextCheckIn(Math.min(renewalDue(tls), renewalDue(ssh)), now);
        return;
      }
      const res = await opts.auth.renewHostCerts({
        sshCert: sshDue ? current.sshCert : '',
        tlsPublicKey: tlsDue ? tlsPublicKeyOf(current) : '',
      });
      if (stopped) return;
      if ((sshDue && !res.sshCert) || (tlsDue && !res.tlsCert)) {
        throw new Error(
          'the auth server did not renew the certificates it was asked for (is it older than this host?)',
        );
      }
      current = {
        ...current,
        ...(res.sshCert ? { sshCert: res.sshCert } : {}),
        ...(res.sshHostCas.length ? { sshHostCAs: res.sshHostCas } : {}),
        ...(res.tlsCert ? { tlsCert: res.tlsCert, tlsCAs: res.tlsCas } : {}),
      };
      failures = 0;
      recordHostExpiry(opts.metrics, current);
      const expiring = now >= renewalDue(tls) || (!rotation && !tlsRotation);
      log.info(
        {
          reason: expiring
            ? 'expiring'
            : tlsRotation
              ? `TLS CA ${tlsCA!.spec.rotation.phase}`
              : `host CA ${ca!.spec.rotation.phase}`,
          renewed: [...(res.tlsCert ? ['tls'] : []), ...(res.sshCert ? ['ssh'] : [])],
          tls_expires: new Date(certValidity(current.tlsCert).notAfter).toISOString(),
          ssh_expires: new Date(sshValidity(current.sshCert).notAfter).toISOString(),
        },
        expiring ? 'host certificates renewed' : 'host certificate renewed from the rotated CA',
      );
      putToUse(current);
      // Look again once the cache has caught up: the CA may have moved on (a rollback) while this was in flight.
      next = 1_000;
    } catch (err) {
      failures++;
      const left = tlsExpires - clock.now().getTime();
      next = retryDelay(failures, left);
      log.warn(
        { err: (err as Error).message, ...(tlsExpires ? { expires: new Date(tlsExpires).toISOString() } : {}) },
        `cannot renew the host certificates; retrying in ${Math.ceil(next / 1000)}s`,
      );
    } finally {
      running = false;
      if (next !== undefined && !stopped) later(next);
    }
  };
  opts.cache.onChange((kind) => {
    if (kind === 'cert_authority') void check();
  });
  recordHostExpiry(opts.metrics, current);
  void check();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
