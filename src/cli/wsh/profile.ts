// What wsh keeps between commands, under WSH_HOME (default ~/.wsh): the current profile, the key pair
// and certificates of each login, and the CA pin of every proxy seen (known_proxies.json).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../files/atomic-write.ts';
import { AccessDenied, BadParameter } from '../../api/errors.ts';
import { certExpiry, readIdentity } from '../../api/certinfo.ts';
import { readIdentityFile, type Credentials } from '../identity-file.ts';

export function wshHome(): string {
  return process.env.WSH_HOME || join(homedir(), '.wsh');
}

export interface Profile {
  proxy: string;
  user: string;
  cluster: string;
  insecure: boolean;
  /** The cluster CA (PEM) the proxy's certificate must chain to; absent when a public CA vouches for it. */
  proxy_ca?: string;
}

/**
 * profile.json as saveLogin writes it. Checked by hand, not with zod: every wsh command reads it, and loading zod
 * was ~15 ms of each start (`wsh proxy ssh` runs on every ssh connection).
 */
function parseProfile(text: string): Profile {
  const p: unknown = JSON.parse(text);
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new Error('not an object');
  const { proxy, user, cluster, insecure = false, proxy_ca } = p as Record<string, unknown>;
  if (typeof proxy !== 'string' || typeof user !== 'string' || typeof cluster !== 'string')
    throw new Error('missing field');
  if (typeof insecure !== 'boolean' || (proxy_ca !== undefined && typeof proxy_ca !== 'string'))
    throw new Error('bad field');
  return { proxy, user, cluster, insecure, ...(proxy_ca !== undefined ? { proxy_ca } : {}) };
}

const keyDir = (p: { proxy: string; user: string }) =>
  join(wshHome(), 'keys', p.proxy.replace(/[^A-Za-z0-9.-]/g, '_'), p.user);

export function saveLogin(profile: Profile, creds: Credentials): string {
  const dir = keyDir(profile);
  writeFileAtomic(join(dir, 'id'), creds.sshPrivateKey);
  writeFileAtomic(join(dir, 'id-cert.pub'), creds.sshCert, 0o644);
  writeFileAtomic(join(dir, 'tls.key'), creds.tlsKey);
  writeFileAtomic(join(dir, 'tls.crt'), creds.tlsCert, 0o644);
  writeFileAtomic(join(dir, 'cas.pem'), creds.tlsCAs.join(''), 0o644);
  writeFileAtomic(join(dir, 'known_hosts'), creds.sshHostCAs.join('\n') + '\n', 0o644);
  writeFileAtomic(join(wshHome(), 'profile.json'), JSON.stringify(profile, null, 2) + '\n');
  return dir;
}

/**
 * loadProfile() for commands that present the login's certificates: one ended is refused here, in one line,
 * rather than by a proxy that hangs up (what OpenSSH then prints says nothing of why).
 */
export function loadCurrentLogin(): ReturnType<typeof loadProfile> {
  const login = loadProfile();
  const ended = certExpiry(login.creds.tlsCert);
  if (ended.getTime() <= Date.now())
    throw new AccessDenied(`your login expired at ${ended.toISOString()}: run wsh login`);
  return login;
}

/**
 * An identity file (`wctl auth sign --format file`) in place of a login, for bots and CI: `wsh -i FILE --proxy
 * HOST:PORT …`. Kept in the environment, so the `wsh proxy ssh` that OpenSSH starts uses it too.
 */
export const IDENTITY_ENV = 'WSH_IDENTITY';
export const PROXY_ENV = 'WSH_PROXY';

/** The files OpenSSH reads for an identity file's keys, written once per process and removed when it exits. */
let identityKeyDir: string | undefined;

function loadIdentityFile(file: string): { profile: Profile; dir: string; creds: Credentials } {
  const creds = readIdentityFile(file);
  const id = readIdentity(creds.tlsCert);
  const profile: Profile = {
    user: id.username,
    cluster: id.cluster,
    insecure: false,
    // Asked for only by what dials (wsh status reads the file alone).
    get proxy(): string {
      const proxy = process.env[PROXY_ENV];
      if (!proxy)
        throw new BadParameter('--identity needs --proxy HOST:PORT: an identity file does not say where the proxy is');
      return proxy;
    },
  };
  return {
    profile,
    creds,
    get dir() {
      if (!identityKeyDir) {
        const dir = mkdtempSync(join(tmpdir(), 'wsh-identity-'));
        const remove = () => rmSync(dir, { recursive: true, force: true });
        process.once('exit', remove);
        // A signal ends the process without 'exit': remove the key first, then die of the signal as before.
        for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
          process.once(signal, () => {
            remove();
            process.kill(process.pid, signal);
          });
        }
        writeFileAtomic(join(dir, 'id'), creds.sshPrivateKey);
        writeFileAtomic(join(dir, 'id-cert.pub'), creds.sshCert, 0o644);
        writeFileAtomic(join(dir, 'known_hosts'), creds.sshHostCAs.join('\n') + '\n', 0o644);
        identityKeyDir = dir;
      }
      return identityKeyDir;
    },
  };
}

/** The current login (profile.json and its keys), or the identity file given with -i. */
export function loadProfile(): { profile: Profile; dir: string; creds: Credentials } {
  const identity = process.env[IDENTITY_ENV];
  if (identity) return loadIdentityFile(identity);
  const path = join(wshHome(), 'profile.json');
  if (!existsSync(path)) throw new BadParameter('not logged in: run wsh login --proxy HOST:PORT --user NAME');
  let profile: Profile;
  try {
    profile = parseProfile(readFileSync(path, 'utf8'));
  } catch {
    throw new BadParameter(`${path} is damaged: run wsh logout, then wsh login`);
  }
  const dir = keyDir(profile);
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      throw new BadParameter(`credentials in ${dir} are missing or unreadable: run wsh login again`);
    }
  };
  const creds: Credentials = {
    sshPrivateKey: read('id'),
    sshCert: read('id-cert.pub'),
    tlsKey: read('tls.key'),
    tlsCert: read('tls.crt'),
    tlsCAs: read('cas.pem').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [],
    sshHostCAs: read('known_hosts').split('\n').filter(Boolean),
  };
  return { profile, dir, creds };
}

/** Removes the current login's keys and the profile. Returns what was removed, if anything. */
export function removeLogin(): Profile | undefined {
  const path = join(wshHome(), 'profile.json');
  if (!existsSync(path)) return undefined;
  let profile: Profile | undefined;
  try {
    profile = parseProfile(readFileSync(path, 'utf8'));
    rmSync(keyDir(profile), { recursive: true, force: true });
  } catch {
    // a damaged profile is removed all the same
  }
  rmSync(path, { force: true });
  return profile;
}

const pinsPath = () => join(wshHome(), 'known_proxies.json');

/**
 * A proxy's pinned CA, and `cluster_pins`: every CA the cluster trusted at the last login through it (received over
 * a connection the pinned CA verified), so that after a TLS CA rotation the proxy's new CA is recognised.
 */
export interface PinnedCA {
  pin: string;
  caPem: string;
  cluster_pins?: string[];
}

export function pinnedCA(proxy: string): PinnedCA | undefined {
  try {
    const pins = JSON.parse(readFileSync(pinsPath(), 'utf8')) as Record<string, PinnedCA>;
    return pins[proxy];
  } catch {
    return undefined;
  }
}

export function pinCA(proxy: string, ca: PinnedCA): void {
  let pins: Record<string, unknown> = {};
  try {
    pins = JSON.parse(readFileSync(pinsPath(), 'utf8'));
  } catch {
    // first pin
  }
  pins[proxy] = ca;
  writeFileAtomic(pinsPath(), JSON.stringify(pins, null, 2) + '\n', 0o644);
}
