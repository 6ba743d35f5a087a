// Locks on hosts and the revocation of a host identity. A host (node, proxy, db/app/kube agent) is known by
// the host id its certificates bind; the name in its heartbeats is its own claim. So a lock names a host id:
// a host name an admin gives is turned into the id here, when the lock is made. Removing a node or proxy
// (`wctl rm node/ID`) is a revocation: it writes a lock without expiry on the host id, which every path that
// admits a host checks (the Auth API, the proxies' tunnel servers and routers), and then deletes the listing.
// A listing that merely expired (the host stopped heartbeating) leaves no lock: the host comes back.
import { BadParameter, NotFound } from '../api/errors.ts';
import type { Lock } from '../api/types.ts';
import { HOST_ID } from '../rbac/locks.ts';
import type { AuthServer } from './server.ts';

/**
 * The lock as it is stored: a host lock's target is a host id. `target.node` may be the id of a listed node or
 * proxy, the host name of exactly one listed node, or a host id of a host not listed now (stopped, or its listing
 * expired). A name that matches no host, or several, is refused: a lock that matches nothing must not look made.
 */
export async function resolveHostLock(auth: AuthServer, lock: Lock): Promise<Lock> {
  const given = lock.spec.target.node;
  if (given === undefined) return lock;
  const nodes = await auth.nodes.listShared();
  const byId = nodes.find((n) => n.metadata.name === given);
  let id: string;
  let name: string | undefined;
  if (byId) [id, name] = [given, byId.spec.hostname];
  else if ((await auth.proxies.tryGetShared(given)) || HOST_ID.test(given)) id = given;
  else {
    const named = nodes.filter((n) => n.spec.hostname === given);
    if (named.length === 0) {
      const hint = 'lock a host by its id (wctl get nodes, wctl get proxies)';
      throw new BadParameter(`no node is named "${given}": ${hint}`);
    }
    if (named.length > 1) {
      const ids = named.map((n) => n.metadata.name).join(', ');
      throw new BadParameter(`${named.length} nodes are named "${given}" (host ids ${ids}): lock each by its id`);
    }
    [id, name] = [named[0]!.metadata.name, given];
  }
  const { node_name: _, ...spec } = lock.spec;
  const named = name !== undefined && name !== id ? { node_name: name } : {};
  return { ...lock, spec: { ...spec, target: { node: id }, ...named } };
}

/** The lock in force on this host id, if any: a host's calls and tunnels are refused while there is one. */
export function hostLock(auth: AuthServer, hostId: string): Promise<Lock | undefined> {
  return auth.lockOn({ node: { id: hostId } });
}

/**
 * Removes a node's or proxy's listing for good: first a lock without expiry on its host id (so there is no moment
 * in which the host could list itself again), then the listing. `wctl unlock` of that lock lets the host back.
 */
export async function revokeHost(auth: AuthServer, kind: 'node' | 'proxy', hostId: string, by: string): Promise<Lock> {
  const listed = kind === 'node' ? await auth.nodes.tryGet(hostId) : await auth.proxies.tryGet(hostId);
  if (!listed) throw new NotFound(`${kind} "${hostId}" not found`);
  const lock: Lock = {
    kind: 'lock',
    version: 'v1',
    metadata: { name: `revoked-${hostId}` },
    spec: {
      target: { node: hostId },
      ...(listed.kind === 'node' ? { node_name: listed.spec.hostname } : {}),
      message: `its ${kind} listing was removed by ${by}; its host identity is revoked`,
      created_by: by,
      created: auth.now().toISOString(),
    },
  };
  const saved = await auth.locks.upsert(lock);
  const { target, message } = saved.spec;
  await auth.audit.emit('lock.created', { user: by, name: saved.metadata.name, target, message });
  await (kind === 'node' ? auth.nodes.delete(hostId) : auth.proxies.delete(hostId)).catch((err: unknown) => {
    if (!(err instanceof NotFound)) throw err; // expired in between: the lock is what counts
  });
  await auth.audit.emit('resource.deleted', { user: by, kind, name: hostId });
  return saved;
}
