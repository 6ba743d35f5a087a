// Resource change stream for the Watch RPC: backend events under the watched kinds, decoded into
// resources. Starts with 'init'; a watcher that falls behind is closed and the client re-syncs.
import type { Kind, Resource } from '../api/types.ts';
import { ResourceService } from '../services/resources.ts';
import type { AuthServer } from './server.ts';

export interface ResourceEvent {
  type: 'init' | 'put' | 'delete';
  kind?: Kind;
  name?: string;
  resource?: Resource;
}

export async function* watchResources(auth: AuthServer, kinds: Kind[], signal: AbortSignal): AsyncGenerator<ResourceEvent> {
  const services = new Map(kinds.map((k) => [ResourceService.prefix(k), new ResourceService(auth.backend, k)]));
  const watcher = auth.backend.watch([...services.keys()]);
  const stop = () => watcher.close();
  signal.addEventListener('abort', stop, { once: true });
  try {
    for await (const event of watcher) {
      if (event.type === 'init') {
        yield { type: 'init' };
        continue;
      }
      const key = event.type === 'put' ? event.item.key : event.key;
      const prefix = [...services.keys()].find((p) => key.startsWith(p));
      if (!prefix) continue;
      const store = services.get(prefix)!;
      const name = key.slice(prefix.length);
      if (event.type === 'delete') yield { type: 'delete', kind: store.kind, name };
      else yield { type: 'put', kind: store.kind, name, resource: store.decodeForClient(event.item) };
    }
  } finally {
    signal.removeEventListener('abort', stop);
    watcher.close();
  }
}
