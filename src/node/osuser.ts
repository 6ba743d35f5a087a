// The node's view of OS accounts: look up the login a session runs as (getpwnam through `getent`, so
// NSS sources such as LDAP/SSSD count) and build the command line that drops to that account before
// the user's program runs. Every child a session starts goes through `commandAs`.
import { execFile } from 'node:child_process';
import { AccessDenied } from '../api/errors.ts';

export interface OSUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

// POSIX portable user names plus the trailing `$` Samba machine accounts use; bounded like useradd's.
const LOGIN_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;
const SETPRIV = '/usr/bin/setpriv';
const DEFAULT_SHELL = '/bin/sh';

export function isValidLogin(login: string): boolean {
  return LOGIN_RE.test(login);
}

/** getpwnam(login); AccessDenied (never saying whether the account exists) for an unknown or odd name. */
export async function lookupUser(login: string): Promise<OSUser> {
  if (!isValidLogin(login)) throw new AccessDenied();
  const line = await new Promise<string>((resolve, reject) => {
    execFile('getent', ['passwd', login], { timeout: 5000, maxBuffer: 64 * 1024 }, (err, stdout) => {
      if (err) reject(new AccessDenied());
      else resolve(stdout.split('\n')[0] ?? '');
    });
  });
  const f = line.split(':');
  if (f.length !== 7 || f[0] !== login) throw new AccessDenied();
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || uid < 0 || gid < 0) throw new AccessDenied();
  return { name: login, uid, gid, home: f[5] || '/', shell: f[6] || DEFAULT_SHELL };
}

/**
 * [file, args] that run `file args` as `user`. When the node must switch accounts it execs through
 * util-linux `setpriv --init-groups`: node-pty's uid/gid options keep the parent's supplementary groups
 * (root's group 0) and libuv's drop them all, while a login must get exactly its own (initgroups, as sshd).
 * setpriv execs in place, so the child's pid and process group stay the ones we signal.
 */
export function commandAs(user: OSUser, file: string, args: string[]): [string, string[]] {
  const self = process.getuid?.() ?? -1;
  if (user.uid === self) return [file, args];
  if (self !== 0) throw new AccessDenied(`the node runs as uid ${self} and cannot start sessions as ${user.name}`);
  return [SETPRIV, ['--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', '--', file, ...args]];
}

/** PATH as sshd sets it (Debian's defaults): root gets the sbin directories. */
export function defaultPath(user: OSUser): string {
  return user.uid === 0
    ? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    : '/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games';
}
