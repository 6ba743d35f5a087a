// The Auth API's resource handlers: get, list, create and delete any kind, with the visibility the caller's entry
// in rpcauthz.ts gives. Watch streams are served by the dispatcher (api.ts) with watch.ts.
import { BadParameter, NotFound } from '../api/errors.ts';
import type { Kind, Resource } from '../api/types.ts';
import { MAX_LIST_PAGE } from '../api/list.ts';
import type { ResourceService } from '../services/resources.ts';
import type { ListingCache } from '../services/listing.ts';
import { callerName } from './authz.ts';
import { resolveHostLock, revokeHost } from './hostlocks.ts';
import type { UnaryHandlers } from './rpcauthz.ts';
import type { AuthServer } from './server.ts';
import { present } from './wire.ts';

type ResourceRPC = 'getResource' | 'listResources' | 'upsertResource' | 'deleteResource';

export function resourceHandlers(auth: AuthServer, listings: ListingCache): Pick<UnaryHandlers, ResourceRPC> {
  const service = (kind: Kind) => auth.stores.resources(kind);
  return {
    getResource: async (req, { on: kind, visible }) => {
      const resource = await service(kind).get(req.name);
      // Hidden as a missing one is: the answer never tells that a resource the caller may not see exists.
      if (visible && !visible(resource)) throw new NotFound(`${kind} "${req.name}" not found`);
      return { json: present(resource) };
    },

    listResources: async (req, { on: { kind, ownSessionsOnly }, visible }) => {
      const limit = Math.min(req.limit || 1000, MAX_LIST_PAGE);
      // The page goes to a client that checks each resource; only a filter on the spec needs it checked here.
      // One more than asked for tells whether another page exists, so a full last page ends the listing
      // instead of sending the client back for an empty one.
      const page = { limit: limit + 1, startAfter: req.startAfter || undefined };
      let listed = ownSessionsOnly
        ? (await service(kind).list(page)).map((resource) => ({ resource, json: present(resource) }))
        : await service(kind).listForClient(page, listings);
      const more = listed.length > limit;
      if (more) listed = listed.slice(0, limit);
      const nextKey = more ? listed.at(-1)!.resource.metadata.name : '';
      if (visible) listed = listed.filter(({ resource }) => visible(resource));
      // Packed: the cached JSON of each resource joined into one array, for clients that list thousands.
      if (req.packed) return { packedJson: `[${listed.map(({ json }) => json).join(',')}]`, nextKey };
      return { resources: listed.map(({ json }) => ({ json })), nextKey };
    },

    upsertResource: async (req, { who, on: resource }) => {
      if (resource.kind === 'user') {
        await auth.loadRoles(resource.spec.roles).catch(() => {
          throw new BadParameter(
            `user "${resource.metadata.name}" names a role that does not exist: create the role first`,
          );
        });
      }
      let stored: Resource = resource;
      if (resource.kind === 'lock') {
        resource.spec.created_by = callerName(who);
        resource.spec.created = auth.now().toISOString();
        stored = await resolveHostLock(auth, resource);
      }
      const store = service(stored.kind) as ResourceService<typeof stored.kind>;
      const saved = req.overwrite ? await store.upsert(stored as never) : await store.create(stored as never);
      const by = callerName(who);
      if (saved.kind === 'lock') {
        const { target, message } = saved.spec;
        const { name, expires } = saved.metadata;
        await auth.audit.emit('lock.created', { user: by, name, target, message, expires });
      } else {
        const { name } = resource.metadata;
        if (resource.kind === 'role') await auth.audit.emit('role.created', { user: by, name });
        else if (resource.kind === 'user') {
          await auth.audit.emit(req.overwrite ? 'user.update' : 'user.create', { user: by, name });
        } else await auth.audit.emit('resource.created', { user: by, kind: resource.kind, name });
      }
      return { json: present(saved) };
    },

    deleteResource: async (req, { who, on: kind }) => {
      if (kind === 'role') {
        const holders = (await auth.users.list())
          .filter((u) => u.spec.roles.includes(req.name))
          .map((u) => u.metadata.name);
        if (holders.length) {
          const named = `${holders.slice(0, 5).join(', ')}${holders.length > 5 ? '…' : ''}`;
          throw new BadParameter(`role "${req.name}" is still assigned to ${named}: remove it from them first`);
        }
      }
      const by = callerName(who);
      if (kind === 'user') await auth.deleteUser(req.name, by);
      else if (kind === 'node' || kind === 'proxy') await revokeHost(auth, kind, req.name, by);
      else {
        await service(kind).delete(req.name);
        if (kind === 'lock') await auth.audit.emit('lock.deleted', { user: by, name: req.name });
        else if (kind === 'role') await auth.audit.emit('role.deleted', { user: by, name: req.name });
        else await auth.audit.emit('resource.deleted', { user: by, kind, name: req.name });
      }
      return {};
    },
  };
}
