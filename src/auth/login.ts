// Password login, called by proxies on behalf of `wsh login` and the web UI. Failures are audited and
// counted: after `maxAttempts` in a row the user is locked for `durationMs`. The answer to a bad user
// name and to a bad password is the same, and takes the same time.
import { AccessDenied } from '../api/errors.ts';
import type { AuthServer, CertKeys, Certs } from './server.ts';
import { failuresKey, passwordKey } from './server.ts';
import { DUMMY_HASH, verifyPassword } from './passwords.ts';
import { checkSecondFactor } from './mfa.ts';
import { createAuthenticateChallenge } from './webauthn.ts';

/** One answer for every second-factor failure: it never says whether the password was right. */
export const SECOND_FACTOR_DENIED =
  'access denied: invalid user name, password or second-factor code (a user with no second factor registered finishes sign-up from the invite link)';

export async function authenticateUser(
  auth: AuthServer,
  req: { user: string; password: string; secondFactor?: string; ttlMs: number; clientAddr: string } & CertKeys,
): Promise<Certs> {
  const { user, count, until, fail, locked } = await checkPassword(auth, req);
  const { lockout } = auth.config;
  let used: Awaited<ReturnType<typeof checkSecondFactor>>;
  try {
    used = await checkSecondFactor(auth, req.user, req.secondFactor);
  } catch (err) {
    if (!(err instanceof AccessDenied)) {
      await auth.backend.delete(failuresKey(req.user)).catch(() => undefined);
      throw err;
    }
    // A wrong code costs a slot of the failure count, as a wrong password does: codes cannot be
    // guessed faster than passwords. The answer does not say which of the two was wrong.
    if (count >= lockout.maxAttempts) {
      await auth.users.modify(req.user, (u) => ({ ...u, spec: { ...u.spec, locked_until: until } }));
      await auth.audit.emit('user.locked', { user: req.user, until, reason: `${count} failed logins` });
      throw await locked(until);
    }
    throw await fail(`bad second factor: ${err.message}`, SECOND_FACTOR_DENIED);
  }
  await auth.backend.delete(failuresKey(req.user)).catch(() => undefined);
  const certs = await auth.issueUserCerts(user, req, req.ttlMs, req.user);
  const method = used ? `password+${used}` : 'password';
  await auth.audit.emit('user.login', { user: req.user, success: true, method, remote_addr: req.clientAddr });
  return certs;
}

/**
 * Step one of a sign-in with a security key: the password is checked (and counted) as in a login, then
 * the user's WebAuthn challenge is made. Only someone with the password learns which kinds of device
 * the user has. A right password gives back the failure slot it took, never more: this step cannot
 * reset the count that wrong second factors build up.
 */
export async function beginLoginChallenge(
  auth: AuthServer,
  req: { user: string; password: string; clientAddr: string },
): Promise<{ webauthnOptions: string; totp: boolean }> {
  await checkPassword(auth, req);
  await releaseFailure(auth, req.user);
  return createAuthenticateChallenge(auth, req.user);
}

/** The password phase of a login: a counted attempt, a lock check and the password (or one answer for all failures). */
async function checkPassword(auth: AuthServer, req: { user: string; password: string; clientAddr: string }) {
  const { lockout } = auth.config;
  const user = await auth.users.tryGet(req.user);
  const fail = async (reason: string, message = 'access denied: invalid user name or password') => {
    await auth.audit.emit('user.login', { user: req.user, success: false, method: 'password', error: reason, remote_addr: req.clientAddr });
    return new AccessDenied(message);
  };
  const locked = (until: string) => fail('user is locked', `access denied: too many failed logins, user is locked until ${until}`);
  if (user && auth.isLocked(user)) throw await locked(user.spec.locked_until!);
  // Every attempt takes a slot in the failure count BEFORE its password is checked (a success gives it
  // back). Counting after the check let concurrent guesses all pass the lock check above while the
  // first ones were still hashing: 100 guesses at once had 12 passwords checked with max_attempts 5.
  // Now at most maxAttempts passwords are checked per lock period, however many arrive together.
  const { count, until } = await countFailure(auth, req.user);
  if (count > lockout.maxAttempts) throw await locked(until);
  const stored = user ? await auth.backend.get(passwordKey(req.user)).then((i) => i.value, () => DUMMY_HASH) : DUMMY_HASH;
  const ok = (await verifyPassword(req.password, stored)) && !!user;
  if (!ok || !user) {
    // Failures are counted for unknown names too, and answered the same way once over the limit:
    // the answers never tell an existing user from a made-up name.
    if (count >= lockout.maxAttempts) {
      if (user) {
        // The count is kept (it expires with the lock): attempts already past the lock check above
        // find it over the limit instead of starting a fresh budget of guesses.
        await auth.users.modify(req.user, (u) => ({ ...u, spec: { ...u.spec, locked_until: until } }));
        await auth.audit.emit('user.locked', { user: req.user, until, reason: `${count} failed logins` });
      }
      throw await locked(until);
    }
    throw await fail(user ? 'bad password' : 'unknown user');
  }
  return { user, count, until, fail, locked };
}

/** Gives back one slot of the failure count (best effort: a lost race keeps it, the safe side). */
async function releaseFailure(auth: AuthServer, name: string): Promise<void> {
  const key = failuresKey(name);
  const current = await auth.backend.get(key).catch(() => undefined);
  if (!current) return;
  const count = Math.max(0, Number(current.value) - 1);
  await auth.backend.compareAndSwap(current, { key, value: String(count), expires: current.expires }).catch(() => undefined);
}

/**
 * Counts a failed login. The count forgets itself `durationMs` after the first failure, or after the
 * failure that reached the limit; `until` is then the end of the lock.
 */
async function countFailure(auth: AuthServer, name: string): Promise<{ count: number; until: string }> {
  const key = failuresKey(name);
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await auth.backend.get(key).catch(() => undefined);
    const count = Number(current?.value ?? 0) + 1;
    // The failure that reaches the limit starts a full lock period, for a real user and a made-up name alike.
    const fresh = new Date(auth.now().getTime() + auth.config.lockout.durationMs);
    const expires = count === auth.config.lockout.maxAttempts || !current?.expires ? fresh : current.expires;
    try {
      if (current) await auth.backend.compareAndSwap(current, { key, value: String(count), expires });
      else await auth.backend.create({ key, value: String(count), expires });
      return { count, until: expires.toISOString() };
    } catch {
      // lost a race with a concurrent login attempt: read again
    }
  }
  return { count: auth.config.lockout.maxAttempts, until: new Date(auth.now().getTime() + auth.config.lockout.durationMs).toISOString() };
}
