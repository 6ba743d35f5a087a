// Password login, called by proxies on behalf of `wsh login` and the web UI. Failures are audited and
// counted per user AND source address (the address the proxy saw, see sourceaddr.ts): after
// `maxAttempts` in a row from one source, that user's sign-ins from that source are refused for
// `durationMs`. The account itself is never locked by failures, so nobody can lock a real user out
// by guessing from their own address. Every failed sign-in gets the same answer and costs the same
// password hash, whatever failed: the name, the password, the second factor or the source's lock.
import { AccessDenied, isWardError } from '../api/errors.ts';
import { sourceKey } from '../ratelimit/sourceaddr.ts';
import type { User } from '../api/types.ts';
import type { AuthServer, CertKeys, Certs } from './server.ts';
import { DUMMY_HASH, verifyPassword } from './passwords.ts';
import { checkSecondFactor } from './mfa.ts';
import { requiresSecondFactor } from './mfadevices.ts';
import { signInChallenge } from './signindecoy.ts';

/**
 * The one answer to every failed sign-in. It never says which part was wrong (a different answer for
 * a right password with a wrong code told an attacker the password), nor whether the user exists.
 */
export const SIGN_IN_DENIED =
  'access denied: invalid user name, password or second-factor code, or too many failed sign-ins from this address';
/** Added when the cluster needs a second factor (public, from ping): it depends on no user. */
const NO_DEVICE_HINT = ' (a user with no second factor registered finishes sign-up from the invite link)';

export function signInDenied(auth: AuthServer): AccessDenied {
  return new AccessDenied(SIGN_IN_DENIED + (requiresSecondFactor(auth.secondFactor) ? NO_DEVICE_HINT : ''));
}

interface SignInRequest {
  user: string;
  password: string;
  clientAddr: string;
}

export async function authenticateUser(
  auth: AuthServer,
  req: SignInRequest & { secondFactor?: string; ttlMs: number } & CertKeys,
): Promise<Certs> {
  const { user, refuse, source } = await checkPassword(auth, req);
  let used: Awaited<ReturnType<typeof checkSecondFactor>>;
  try {
    used = await checkSecondFactor(auth, req.user, req.secondFactor);
  } catch (err) {
    // Any verdict on the second factor (wrong, malformed, replayed, stale, of a kind the cluster does not
    // take) keeps the slot this attempt took and is audited: codes are not guessed faster than passwords.
    // An internal error (backend down) is no verdict: it is passed on, and the slot stays taken.
    if (!isWardError(err)) throw err;
    throw await refuse(`bad second factor: ${err.message}`);
  }
  // Only a sign-in that passed every factor forgets the failures of its source.
  await auth.stores.loginFailures.forget(req.user, source);
  const certs = await auth.issueUserCerts(user, req, req.ttlMs, req.user);
  const method = used ? `password+${used}` : 'password';
  await auth.audit.emit('user.login', { user: req.user, success: true, method, remote_addr: req.clientAddr });
  return certs;
}

/**
 * Step one of a sign-in with a security key: the password is checked (and counted, and a failure audited)
 * as in a login, but the answer is the same whatever the verdict (signindecoy.ts): a wrong password, a
 * made-up name or a locked source learn nothing here, and fail at the finish with the one answer. A right
 * password gives back the failure slot it took, never more: this step cannot reset the count that wrong
 * second factors build up.
 */
export async function beginLoginChallenge(
  auth: AuthServer,
  req: SignInRequest,
): Promise<{ webauthnOptions: string; totp: boolean }> {
  let passwordChecked = false;
  try {
    const { source } = await checkPassword(auth, req);
    await auth.stores.loginFailures.release(req.user, source);
    passwordChecked = true;
  } catch (err) {
    // A verdict (the one answer, already counted and audited) is not sent; an internal error (backend down) is.
    if (!(err instanceof AccessDenied)) throw err;
  }
  return signInChallenge(auth, req.user, passwordChecked);
}

/**
 * The password phase of a sign-in: a counted attempt, the source's lock and the password. Throws the one
 * answer on any failure; else returns the user, the source its failures are counted for, and `refuse`
 * for a later factor's failure.
 */
async function checkPassword(
  auth: AuthServer,
  req: SignInRequest,
): Promise<{ user: User; source: string; refuse: (reason: string) => Promise<AccessDenied> }> {
  const { maxAttempts } = auth.config.lockout;
  const user = await auth.users.tryGet(req.user);
  const source = sourceKey(req.clientAddr);
  // Every attempt by a real user takes a slot of its source's count BEFORE its password is checked (a
  // success gives it back). Counting after the check let concurrent guesses all pass the lock check while
  // the first ones were still hashing: now at most maxAttempts passwords per source and lock period are
  // checked, however many arrive together. A made-up name leaves no row behind (the read keeps its cost
  // close to a real user's; the answer and the password hash are the same).
  const counted = user ? await countFailure(auth, req.user, source) : await peekFailures(auth, req.user, source);
  const refuse = async (reason: string): Promise<AccessDenied> => {
    const { user: name, clientAddr: remote_addr } = req;
    await auth.audit.emit('user.login', { user: name, success: false, method: 'password', error: reason, remote_addr });
    if (counted?.count === maxAttempts) {
      const why = `${maxAttempts} failed sign-ins`;
      const { until } = counted;
      await auth.audit.emit('user.login_locked', { user: name, source, remote_addr, until, reason: why });
    }
    return signInDenied(auth);
  };
  const blocked =
    user && auth.isLocked(user)
      ? 'user is locked'
      : counted && counted.count > maxAttempts
        ? 'too many failed sign-ins from this address'
        : '';
  if (blocked) {
    // The same hash as any other attempt: a blocked source must not answer faster than a made-up name.
    await verifyPassword(req.password, DUMMY_HASH);
    throw await refuse(blocked);
  }
  const stored = user ? ((await auth.stores.passwords.get(req.user).catch(() => undefined)) ?? DUMMY_HASH) : DUMMY_HASH;
  const ok = (await verifyPassword(req.password, stored)) && !!user;
  if (!ok || !user) throw await refuse(user ? 'bad password' : 'unknown user');
  return { user, source, refuse };
}

/** A made-up name's attempt reads the count as a real one's does, and counts nothing. */
async function peekFailures(auth: AuthServer, user: string, source: string): Promise<undefined> {
  await auth.stores.loginFailures.peek(user, source);
  return undefined;
}

/**
 * Counts an attempt. The count forgets itself `durationMs` after the first failure, or after the one that
 * reached the limit; `until` is then the end of the source's lock.
 */
async function countFailure(auth: AuthServer, user: string, source: string): Promise<{ count: number; until: string }> {
  const { maxAttempts, durationMs } = auth.config.lockout;
  const counted = await auth.stores.loginFailures.add(user, source, (count, current) => {
    const fresh = new Date(auth.now().getTime() + durationMs);
    return count === maxAttempts || !current ? fresh : current;
  });
  if (counted) return { count: counted.count, until: counted.expires.toISOString() };
  // Ten lost races in a row: many attempts at once from this source. Treat it as over the limit.
  return { count: maxAttempts + 1, until: new Date(auth.now().getTime() + durationMs).toISOString() };
}
