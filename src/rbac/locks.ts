// Locks (`wctl lock`): a lock names one user, one role or one host, and while it is in force nothing
// new happens for its target: no certificates, no API calls, no new connections, and the target's
// live sessions are ended. Pure matching here; the auth server, proxies and nodes each apply it to
// what they hold (the backend, or their watch-fed cache, so a new lock reaches them in a second).
// A host is locked by the host id its certificates bind: the auth server turns the name an admin gives
// into the host id when the lock is made (auth/hostlocks.ts). Locks stored before that named the host;
// they still match the host's name where the caller knows the name its certificate was issued for.
import type { Lock } from '../api/types.ts';

export interface LockTarget {
  user?: string;
  roles?: readonly string[];
  /**
   * A host: matched by `id`, its certificates' host id. `name` is matched only by a lock stored before locks named
   * host ids, and must be the name the host's certificate was issued for (a heartbeat can claim no other), never a
   * name a host merely reports.
   */
  node?: { id?: string; name?: string };
}

/** Host ids Ward issues at join: a UUID, or `proxy-` and a UUID for a proxy that `ward start` runs next to auth. */
export const HOST_ID = /^(proxy-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function matchesHost(lockTarget: string, host: LockTarget['node']): boolean {
  if (host?.id !== undefined && lockTarget === host.id) return true;
  return !HOST_ID.test(lockTarget) && host?.name !== undefined && lockTarget === host.name;
}

/** The first lock in force on any part of `target`, or undefined. */
export function lockFor(locks: readonly Lock[], target: LockTarget, now: Date): Lock | undefined {
  return locks.find((lock) => {
    if (lock.metadata.expires && new Date(lock.metadata.expires) <= now) return false; // the sweep may lag
    const t = lock.spec.target;
    if (t.user !== undefined) return t.user === target.user;
    if (t.role !== undefined) return !!target.roles?.includes(t.role);
    if (t.node !== undefined) return matchesHost(t.node, target.node);
    return false;
  });
}

/** What the user is told: which target is locked, and the admin's message. */
export function describeLock(lock: Lock): string {
  const t = lock.spec.target;
  const what =
    t.user !== undefined
      ? `user "${t.user}"`
      : t.role !== undefined
        ? `role "${t.role}"`
        : `node "${lock.spec.node_name ?? t.node}"`;
  return `${what} is locked${lock.spec.message ? `: ${lock.spec.message}` : ''}`;
}
