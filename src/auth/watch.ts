// Resource change stream for the Watch RPC: backend events under the watched kinds, decoded into
// resources. Starts with 'init'; a watcher that falls behind is closed and the client re-syncs.
// A guarded stream (every caller's, api.ts) sends only what the caller may see (authz.ts isVisible), as its
// listings do, and ends as soon as the caller may no longer call at all: it is checked again at every lock change.
import type { Kind, Resource } from '../api/types.ts';
import { ResourceService } from '../services/resources.ts';
import type { AuthServer } from './server.ts';

export interface ResourceEvent {
  type: 'init' | 'put' | 'delete';
  kind?: Kind;
  name?: string;
  resource?: Resource;
}

export interface WatchGuard {
  /**
   * Whether the caller may see a resource; absent: everything. A resource it may not see is never sent, nor is its
   * delete; one that stops being visible (its labels changed) is sent as deleted.
   */
  visible?(resource: Resource): boolean;
  /** Throws once the caller may no longer watch (a lock on it, a revoked host): the stream ends with that error. */
  recheck(): Promise<void>;
}

export async function* watchResources(
  auth: AuthServer,
  kinds: Kind[],
  signal: AbortSignal,
  guard?: WatchGuard,
): AsyncGenerator<ResourceEvent> {
  const services = new Map(kinds.map((k) => [ResourceService.prefix(k), auth.stores.resources(k)]));
  const lockPrefix = ResourceService.prefix('lock');
  // Lock changes are watched for the recheck even when the caller does not ask for locks (they are few).
  const watched = guard && !services.has(lockPrefix) ? [...kinds, 'lock' as const] : kinds;
  const watcher = auth.stores.watch(watched);
  const stop = () => watcher.close();
  signal.addEventListener('abort', stop, { once: true });
  /** Keys of what the client may hold (visible when it listed, or sent since): only their deletes are sent. */
  const held = new Set<string>();
  try {
    for await (const event of watcher) {
      if (event.type === 'init') {
        // The client lists each kind after 'init' and is given what it may see; that is what it holds.
        if (guard?.visible) {
          for (const store of services.values()) {
            const prefix = ResourceService.prefix(store.kind);
            for (const r of await store.listShared()) if (guard.visible(r)) held.add(prefix + r.metadata.name);
          }
        }
        yield { type: 'init' };
        continue;
      }
      const key = event.type === 'put' ? event.item.key : event.key;
      const prefix = [...services.keys()].find((p) => key.startsWith(p));
      if (prefix) {
        const store = services.get(prefix)!;
        const name = key.slice(prefix.length);
        if (!guard?.visible) {
          if (event.type === 'delete') yield { type: 'delete', kind: store.kind, name };
          else yield { type: 'put', kind: store.kind, name, resource: store.decodeForClient(event.item) };
        } else if (event.type === 'delete') {
          if (held.delete(key)) yield { type: 'delete', kind: store.kind, name };
        } else {
          const resource = store.decodeForClient(event.item);
          if (guard.visible(resource)) {
            held.add(key);
            yield { type: 'put', kind: store.kind, name, resource };
          } else if (held.delete(key)) yield { type: 'delete', kind: store.kind, name };
        }
      }
      // After the lock change is sent: an honest host that is locked still learns it and ends its own sessions.
      if (guard && key.startsWith(lockPrefix)) await guard.recheck();
    }
  } finally {
    signal.removeEventListener('abort', stop);
    watcher.close();
  }
}
