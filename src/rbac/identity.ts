// Is this identity usable now? One answer, in one wording, for every place that lets a user act: the auth server at
// every API call and certificate issuance, the proxy at each SSH and SSH-over-TLS connection and route, the node at
// each login and for every live session when users or locks change. Pure: the caller brings the user resource and
// the locks it holds (backend or watch-fed cache) and the time from its clock.
import type { Lock, User } from '../api/types.ts';
import { describeLock, lockFor, type LockTarget } from './locks.ts';

/** The identity a certificate names: its user, the roles it carries, and the host it is used on, if any. */
export interface IdentityTarget {
  user: string;
  roles: readonly string[];
  node?: LockTarget['node'];
}

/** An account lock an admin wrote into the user (`spec.locked_until`), still in force at `now`. */
export function isUserLocked(user: User, now: Date): boolean {
  const until = user.spec.locked_until;
  return !!until && new Date(until) > now;
}

/**
 * Why the identity may not act now, or undefined if it may: the user must still exist (a deleted one is told only
 * "access denied", which says nothing about who exists), must not be locked, and no lock (`wctl lock`) may name the
 * user, one of the roles or the host.
 */
export function identityRefusal(
  user: User | undefined,
  locks: readonly Lock[],
  target: IdentityTarget,
  now: Date,
): string | undefined {
  if (!user) return 'access denied';
  if (isUserLocked(user, now)) return `user "${target.user}" is locked`;
  const lock = lockFor(locks, target, now);
  return lock && describeLock(lock);
}
