// Locks (`wctl lock`): a lock names one user, one role or one host, and while it is in force nothing
// new happens for its target: no certificates, no API calls, no new connections, and the target's
// live sessions are ended. Pure matching here; the auth server, proxies and nodes each apply it to
// what they hold (the backend, or their watch-fed cache, so a new lock reaches them in a second).
// A host is locked by the host id its certificates bind, never by a name: a host names itself in its
// heartbeats, so a lock on a name was evaded by heartbeating under another (the auth server turns the
// name an admin gives into host ids when the lock is made, auth/hostlocks.ts).
import type { Lock } from '../api/types.ts';

export interface LockTarget {
  user?: string;
  roles?: readonly string[];
  /** A host: matched by `id` (its certificates' host id) only; `name` is what it calls itself and is not matched. */
  node?: { id?: string; name?: string };
}

/** The first lock in force on any part of `target`, or undefined. */
export function lockFor(locks: readonly Lock[], target: LockTarget, now: Date): Lock | undefined {
  return locks.find((lock) => {
    if (lock.metadata.expires && new Date(lock.metadata.expires) <= now) return false; // the sweep may lag
    const t = lock.spec.target;
    if (t.user !== undefined) return t.user === target.user;
    if (t.role !== undefined) return !!target.roles?.includes(t.role);
    if (t.node !== undefined) return target.node?.id !== undefined && t.node === target.node.id;
    return false;
  });
}

/** What the user is told: which target is locked, and the admin's message. */
export function describeLock(lock: Lock): string {
  const t = lock.spec.target;
  const what =
    t.user !== undefined ? `user "${t.user}"` : t.role !== undefined ? `role "${t.role}"` : `node "${lock.spec.node_name ?? t.node}"`;
  return `${what} is locked${lock.spec.message ? `: ${lock.spec.message}` : ''}`;
}
