// The auth server's process follows its own TLS CA through a rotation (auth/rotation.ts): it watches the CA in the
// backend, so every auth server on a shared database sees each step within moments, and hands the CA to whoever
// reloads trust from it (the auth API listener, the local admin's bundle, the auth server's own certificate).
import type { Logger } from 'pino';
import type { CertAuthority } from '../api/types.ts';
import { ResourceService } from '../services/resources.ts';
import type { AuthServer } from './server.ts';

/** After a broken watch, look again after this long (the backend may be restarting). */
const REWATCH_MS = 1_000;

/**
 * Calls `onChange` with the TLS CA once it is read and again after every change to it, one call at a time (a step that
 * comes while one runs is taken after it, with the CA as it is then). A failing `onChange` is logged and retried at the
 * next change or re-watch.
 */
export function followTLSCA(
  auth: AuthServer,
  log: Logger,
  onChange: (ca: CertAuthority) => Promise<void>,
): { stop(): void } {
  const key = `${ResourceService.prefix('cert_authority')}tls`;
  let stopped = false;
  let watcher: ReturnType<AuthServer['stores']['watch']> | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let lastRevision: string | undefined;
  const apply = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        try {
          const ca = await auth.cas.getShared('tls');
          if (stopped || ca.metadata.revision === lastRevision) continue;
          await onChange(ca);
          lastRevision = ca.metadata.revision;
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'cannot take up the TLS CA as it is now');
        }
      } while (again && !stopped);
    })().finally(() => {
      running = undefined;
    });
  };
  const watch = async (): Promise<void> => {
    while (!stopped) {
      watcher = auth.stores.watch(['cert_authority']);
      try {
        for await (const event of watcher) {
          // 'init': subscribed, so reading now misses nothing; then every write of the CA.
          if (event.type === 'init' || (event.type === 'put' && event.item.key === key)) apply();
        }
      } catch (err) {
        if (!stopped) log.warn({ err: (err as Error).message }, 'TLS CA watch broken; watching again');
      }
      if (!stopped) await new Promise((r) => setTimeout(r, REWATCH_MS).unref());
    }
  };
  void watch();
  return {
    stop() {
      stopped = true;
      watcher?.close();
    },
  };
}
