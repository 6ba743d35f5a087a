// Password login, called by proxies on behalf of `wsh login` and the web UI. Failures are audited and
// counted: after `maxAttempts` in a row the user is locked for `durationMs`. The answer to a bad user
// name and to a bad password is the same, and takes the same time.
import { AccessDenied } from '../api/errors.ts';
import type { AuthServer, CertKeys, Certs } from './server.ts';
import { failuresKey, passwordKey } from './server.ts';
import { DUMMY_HASH, verifyPassword } from './passwords.ts';

export async function authenticateUser(
  auth: AuthServer,
  req: { user: string; password: string; ttlMs: number; clientAddr: string } & CertKeys,
): Promise<Certs> {
  const { lockout } = auth.config;
  const user = await auth.users.tryGet(req.user);
  const fail = async (reason: string, message = 'access denied: invalid user name or password') => {
    await auth.audit.emit('user.login', { user: req.user, success: false, method: 'password', error: reason, remote_addr: req.clientAddr });
    return new AccessDenied(message);
  };
  if (user && auth.isLocked(user)) {
    throw await fail('user is locked', `access denied: user is locked until ${user.spec.locked_until} after too many failed logins`);
  }
  const stored = user ? await auth.backend.get(passwordKey(req.user)).then((i) => i.value, () => DUMMY_HASH) : DUMMY_HASH;
  const ok = (await verifyPassword(req.password, stored)) && !!user;
  if (!ok || !user) {
    if (user) {
      const failures = await countFailure(auth, req.user);
      if (failures >= lockout.maxAttempts) {
        const until = new Date(auth.now().getTime() + lockout.durationMs).toISOString();
        await auth.users.modify(req.user, (u) => ({ ...u, spec: { ...u.spec, locked_until: until } }));
        await auth.backend.delete(failuresKey(req.user)).catch(() => undefined);
        await auth.audit.emit('user.locked', { user: req.user, until, reason: `${failures} failed logins` });
        throw await fail('bad password', `access denied: too many failed logins, user is locked until ${until}`);
      }
    }
    throw await fail(user ? 'bad password' : 'unknown user');
  }
  await auth.backend.delete(failuresKey(req.user)).catch(() => undefined);
  const certs = await auth.issueUserCerts(user, req, req.ttlMs, req.user);
  await auth.audit.emit('user.login', { user: req.user, success: true, method: 'password', remote_addr: req.clientAddr });
  return certs;
}

/** Counts a failed login; the count forgets itself after the lockout duration. */
async function countFailure(auth: AuthServer, name: string): Promise<number> {
  const key = failuresKey(name);
  const expires = new Date(auth.now().getTime() + auth.config.lockout.durationMs);
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await auth.backend.get(key).catch(() => undefined);
    const next = String(Number(current?.value ?? 0) + 1);
    try {
      if (current) await auth.backend.compareAndSwap(current, { key, value: next, expires });
      else await auth.backend.create({ key, value: next, expires });
      return Number(next);
    } catch {
      // lost a race with a concurrent login attempt: read again
    }
  }
  return auth.config.lockout.maxAttempts;
}
