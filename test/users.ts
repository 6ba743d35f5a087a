// Test users on a cluster: added with wctl, logged in with wsh (each with their own WSH_HOME, as on
// their own laptop), and given an ssh_config that makes plain OpenSSH use the keys wsh wrote and reach
// nodes through the proxy with `wsh proxy ssh` as the ProxyCommand.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, run, type Cluster, type RunResult } from './harness.ts';

export interface TestUser {
  name: string;
  password: string;
  wshHome: string;
  /** The key directory `wsh login` wrote. */
  keys: string;
  /** An ssh_config for `ssh -F`. */
  cfg: string;
}

export function ok(r: RunResult): string {
  assert.equal(
    r.code,
    0,
    `expected success, got exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
  );
  return r.stdout;
}

/**
 * An ssh_config for `identity` (its certificate next to it as IDENTITY-cert.pub) trusting only the host CA lines
 * in `knownHosts`; with `wsh`, that wsh (bin/wsh, or a bundle the benches built) is the ProxyCommand, without it
 * ssh connects directly (a node's port, or `-J` through the proxy's SSH server).
 */
export function writeDirectSSHConfig(path: string, identity: string, knownHosts: string, wsh?: string): string {
  writeFileSync(
    path,
    [
      'Host *',
      `  IdentityFile ${identity}`,
      `  CertificateFile ${identity}-cert.pub`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  ConnectTimeout 10',
      '  LogLevel ERROR',
      ...(wsh ? [`  ProxyCommand ${proxyCommandFor(wsh)}`] : []),
      '',
    ].join('\n'),
  );
  return path;
}

/** An ssh_config using the keys wsh wrote in `keys`, reaching nodes through Ward with `wsh` as the ProxyCommand. */
export function writeSSHConfig(path: string, keys: string, wsh = join(BIN, 'wsh')): string {
  return writeDirectSSHConfig(path, join(keys, 'id'), join(keys, 'known_hosts'), wsh);
}

/** OpenSSH's ProxyCommand that carries a connection through Ward with this wsh. */
export function proxyCommandFor(wsh: string): string {
  return `"${process.execPath}" "${wsh}" proxy ssh %r@%h:%p`;
}

export function wshLogin(cluster: Cluster, u: Pick<TestUser, 'name' | 'password' | 'wshHome'>): Promise<RunResult> {
  return cluster.wsh(
    u.wshHome,
    ['login', '--proxy', cluster.proxyAddr, '--user', u.name, '--password-stdin', '--ca-pin', cluster.caPin],
    {
      stdin: `${u.password}\n`,
    },
  );
}

/** `wctl users add` with these roles and the root login, then `wsh login` as them. */
export async function addUser(cluster: Cluster, workDir: string, name: string, roles: string): Promise<TestUser> {
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  ok(
    await cluster.wctl(['users', 'add', name, '--roles', roles, '--logins', 'root', '--password-stdin'], {
      stdin: `${password}\n`,
    }),
  );
  const wshHome = cluster.newWshHome();
  const keys = /Keys: (\S+)/.exec(ok(await wshLogin(cluster, { name, password, wshHome })))?.[1];
  assert.ok(keys, `wsh login printed no key directory for ${name}`);
  return { name, password, wshHome, keys, cfg: writeSSHConfig(join(workDir, `${name}.ssh_config`), keys) };
}

/** Plain OpenSSH `ssh -F` as the user (WSH_HOME set for the ProxyCommand). */
export function sshAs(
  u: TestUser,
  args: string[],
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return run('ssh', ['-F', u.cfg, ...args], { ...opts, env: { WSH_HOME: u.wshHome } });
}
