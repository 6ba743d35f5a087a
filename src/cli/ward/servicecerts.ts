// Certificates of the services `ward start` runs next to the auth server in one process (the auth API's own, the
// local administrator's): issued at every start for the cluster's host certificate TTL, and issued again in process
// when a third of it is left, as agents renew theirs (host/renewal.ts), so a process that runs longer keeps working.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { nextCheckIn, recordCertExpiry, renewalDue, retryDelay } from '../../host/renewal.ts';
import { certValidity } from '../../api/certinfo.ts';

export function keepServiceCertFresh(opts: {
  /** What the certificate is for, in the log. */
  name: string;
  /** The system role it carries (auth, admin): the `role` of its expiry metric. */
  role: string;
  metrics?: Registry;
  /** The certificate in use now. */
  certPem: () => string;
  /** Issues a new certificate and puts it to use (certPem then returns it). */
  reissue: () => Promise<void>;
  log: Logger;
}): { stop(): void } {
  let stopped = false;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  const later = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => void check(), ms);
    timer.unref();
  };
  // Never rejects: it runs from a timer, where a rejection would end the process.
  const check = async (): Promise<void> => {
    let notAfter = 0;
    try {
      const validity = certValidity(opts.certPem());
      notAfter = validity.notAfter;
      recordCertExpiry(opts.metrics, opts.role, 'tls', notAfter);
      const now = Date.now();
      const dueAt = renewalDue(validity);
      if (now < dueAt) return later(nextCheckIn(dueAt, now));
      await opts.reissue();
      failures = 0;
      opts.log.info(
        { service: opts.name, expires: new Date(certValidity(opts.certPem()).notAfter).toISOString() },
        'service certificate renewed',
      );
      later(1_000);
    } catch (err) {
      failures++;
      const delay = retryDelay(failures, notAfter - Date.now());
      opts.log.warn(
        { service: opts.name, err: (err as Error).message },
        `cannot renew the service certificate; retrying in ${Math.ceil(delay / 1000)}s`,
      );
      later(delay);
    }
  };
  void check();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
