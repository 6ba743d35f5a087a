// The node's view of OS accounts: look up the login a session runs as (getpwnam: /etc/passwd when NSS reads
// it first, else `getent`, so NSS sources such as LDAP/SSSD count) and build the command line that drops to
// that account before the user's program runs. Every child a session starts goes through `commandAs`.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
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
const NSSWITCH = '/etc/nsswitch.conf';
const PASSWD = '/etc/passwd';

export function isValidLogin(login: string): boolean {
  return LOGIN_RE.test(login);
}

/**
 * getpwnam(login); AccessDenied (never saying whether the account exists) for an unknown or odd name.
 *
 * When NSS reads /etc/passwd first (nsswitch.conf's passwd line starts with `files`), an account listed there
 * is read from the file, and only other logins go to `getent`. Why: starting `getent` forks the node process,
 * which held its event loop 20-50 ms per session start (a CPU profile of 200 sessions opening), and every
 * keystroke of every other session on the node waited for it.
 */
export async function lookupUser(login: string): Promise<OSUser> {
  if (!isValidLogin(login)) throw new AccessDenied();
  const local = (await filesFirst()) ? await fromPasswdFile(login) : undefined;
  return local ?? parsePasswdLine(login, await getent(login));
}

function getent(login: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile('getent', ['passwd', login], { timeout: 5000, maxBuffer: 64 * 1024 }, (err, stdout) => {
      if (err) reject(new AccessDenied());
      else resolve(stdout.split('\n')[0] ?? '');
    });
  });
}

/** One passwd(5) line as an account, or AccessDenied if it is not `login`'s or is malformed. */
export function parsePasswdLine(login: string, line: string): OSUser {
  const f = line.split(':');
  if (f.length !== 7 || f[0] !== login) throw new AccessDenied();
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!) || !Number.isSafeInteger(uid) || !Number.isSafeInteger(gid))
    throw new AccessDenied();
  return { name: login, uid, gid, home: f[5] || '/', shell: f[6] || DEFAULT_SHELL };
}

/** Whether `passwd:` in nsswitch.conf names `files` as its first source; anything else (or no file) asks getent. */
export function nsswitchFilesFirst(conf: string): boolean {
  for (const raw of conf.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^passwd:\s*(.*)$/.exec(line);
    if (m) return m[1]!.split(/\s+/)[0] === 'files';
  }
  return false;
}

/**
 * The account's line in a passwd(5) file's text, if it is there (the first one, as glibc reads it). NIS compat
 * lines (+, -) are not accounts. A native substring search, not a split: a host with many local accounts has a
 * passwd file of megabytes, and this runs on every session start.
 */
export function findInPasswd(text: string, login: string): OSUser | undefined {
  let at = 0;
  if (!text.startsWith(`${login}:`)) {
    const newline = text.indexOf(`\n${login}:`);
    if (newline === -1) return undefined;
    at = newline + 1;
  }
  const end = text.indexOf('\n', at);
  return parsePasswdLine(login, text.slice(at, end === -1 ? undefined : end));
}

async function filesFirst(): Promise<boolean> {
  return readFile(NSSWITCH, 'utf8').then(nsswitchFilesFirst, () => false);
}

async function fromPasswdFile(login: string): Promise<OSUser | undefined> {
  const text = await readFile(PASSWD, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : findInPasswd(text, login);
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
