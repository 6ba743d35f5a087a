// wsh ls / ssh / scp / config / proxy ssh. The data path is OpenSSH's own client (ssh, scp), given the
// login's certificate and the cluster's host CA; the only Ward part in it is `wsh proxy ssh`, the
// ProxyCommand that carries the SSH bytes to the node inside mutual TLS through the proxy.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { AuthClient } from '../../api/client.ts';
import { BadParameter } from '../../api/errors.ts';
import type { Node } from '../../api/types.ts';
import { table } from '../table.ts';
import { IDENTITY_ENV, loadCurrentLogin, loadProfile } from './profile.ts';

/**
 * The Auth API through the proxy, with the current login. Loaded on first use: the API client brings Connect and
 * protobuf (~30 ms of start-up), which `wsh ssh HOST` and `wsh scp` never need, as OpenSSH does the work.
 */
export async function authClient(): Promise<AuthClient> {
  const { createAuthClient } = await import('../../api/client.ts');
  const { profile, creds } = loadCurrentLogin();
  return createAuthClient({
    addr: profile.proxy,
    identity: { keyPem: creds.tlsKey, certPem: creds.tlsCert, caPems: creds.tlsCAs },
    describedAs: `the proxy at ${profile.proxy}`,
  });
}

function parseLabels(args: string[]): Record<string, string> {
  return Object.fromEntries(
    args.map((a) => {
      const [k, v] = a.split('=');
      if (!k || v === undefined) throw new BadParameter(`invalid label filter "${a}" (expected key=value)`);
      return [k, v];
    }),
  );
}

/** Hostnames in code-unit order, as Teleport's `tsh ls` sorts them: a locale-aware compare was 10-25 ms of 10,000
 * nodes. */
const byHostname = (a: Node, b: Node) =>
  a.spec.hostname < b.spec.hostname ? -1 : a.spec.hostname > b.spec.hostname ? 1 : 0;

async function listNodes(filter: Record<string, string>): Promise<Node[]> {
  const { listAllResources } = await import('../../api/list.ts');
  const nodes = await listAllResources(await authClient(), 'node');
  const wanted = Object.entries(filter);
  return (wanted.length ? nodes.filter((n) => wanted.every(([k, v]) => n.metadata.labels?.[k] === v)) : nodes).sort(
    byHostname,
  );
}

export async function ls(format: string, filters: string[]): Promise<string> {
  const nodes = await listNodes(parseLabels(filters));
  if (format === 'json') return JSON.stringify(nodes, null, 2) + '\n';
  if (format !== 'text') throw new BadParameter(`unknown format "${format}" (expected text or json)`);
  const labels = (n: Node) => {
    let text = '';
    for (const k in n.metadata.labels) text += `${text ? ',' : ''}${k}=${n.metadata.labels[k]}`;
    return text;
  };
  return table(
    ['Node Name', 'Address', 'Labels', 'Node ID'],
    nodes.map((n) => [n.spec.hostname, n.spec.tunnel ? '⟵ Tunnel' : n.spec.addr, labels(n), n.metadata.name]),
  );
}

/** OpenSSH options that make `ssh`/`scp` use this login and trust only the cluster's host CA. */
function sshOptions(): string[] {
  const { dir } = loadCurrentLogin();
  const wsh = process.argv[1] ?? 'wsh';
  return [
    '-i',
    join(dir, 'id'),
    '-o',
    `CertificateFile=${join(dir, 'id-cert.pub')}`,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `ProxyCommand="${process.execPath}" "${wsh}" proxy ssh %r@%h:%p`,
  ];
}

function runOpenSSH(cmd: 'ssh' | 'scp', args: string[]): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new BadParameter(`${cmd} not found: install the OpenSSH client (apt-get install openssh-client)`)
          : err,
      ),
    );
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
  }).then(async (code) => {
    // ssh's own failures exit 255 (scp's, 1); the remote command's status passes through otherwise.
    if ((cmd === 'ssh' ? code === 255 : code !== 0) && (await hostCAChanged())) {
      process.stderr.write(
        "wsh: the cluster's host CA has a key this login does not know (a host CA rotation): run `wsh login` again.\n",
      );
    }
    return code;
  });
}

/**
 * Whether the cluster's host CA holds a key this login's known_hosts lacks: hosts may then present certificates
 * OpenSSH cannot check. Asked only after a failure; if the question fails too, it says nothing.
 */
async function hostCAChanged(): Promise<boolean> {
  try {
    const { hostCAKeys } = await import('../../crypto/hosttrust.ts');
    const known = hostCAKeys(loadProfile().creds.sshHostCAs);
    const { entries } = await (await authClient()).exportCAs({ type: 'host' });
    return hostCAKeys(entries).some((key) => !known.some((k) => k.equals(key)));
  } catch {
    return false;
  }
}

/** `login@host` or `login@label=value`; the latter runs on every matching node in turn. */
export async function ssh(
  target: string,
  command: string[],
  flags: { forward: string[]; agent: boolean; tty: boolean },
): Promise<number> {
  const at = target.lastIndexOf('@');
  const { user } = loadProfile().profile;
  if (at === 0 || at === target.length - 1)
    throw new BadParameter(`"${target}" is not login@node (or a node alone, to log in as ${user})`);
  const login = at > 0 ? target.slice(0, at) : user;
  const host = at > 0 ? target.slice(at + 1) : target;
  // `wsh ssh node -- cmd` as with ssh: the separator is ours to add, once.
  if (command[0] === '--') command = command.slice(1);
  // -tt: a single -t gives no PTY when our stdin is not a terminal (a pipe, a script), and --tty forces one.
  const extra = [
    ...flags.forward.flatMap((f) => ['-L', f]),
    ...(flags.agent ? ['-A'] : []),
    ...(flags.tty ? ['-tt'] : []),
  ];
  const hosts = host.includes('=') ? (await listNodes(parseLabels([host]))).map((n) => n.metadata.name) : [host];
  if (hosts.length === 0) throw new BadParameter(`no node matches ${host}`);
  let worst = 0;
  for (const h of hosts) {
    if (hosts.length > 1) process.stderr.write(`[${h}]\n`);
    worst = Math.max(
      worst,
      await runOpenSSH('ssh', [
        ...sshOptions(),
        ...extra,
        `${login}@${h}`,
        ...(command.length ? ['--', ...command] : []),
      ]),
    );
  }
  return worst;
}

/**
 * Attaches to a live session: OpenSSH with a PTY, telling the node which session to join through the
 * WARD_JOIN_* environment (SetEnv sends it whatever the node's AcceptEnv-like filter is not told).
 */
export async function joinSession(sid: string, mode: 'observer' | 'peer', login?: string): Promise<number> {
  const { findLiveSession } = await import('../recordings.ts');
  const live = await findLiveSession(await authClient(), sid);
  return runOpenSSH('ssh', [
    ...sshOptions(),
    '-tt',
    '-o',
    `SetEnv=WARD_JOIN_SESSION=${live.metadata.name} WARD_JOIN_MODE=${mode}`,
    `${login ?? live.spec.login}@${live.spec.server_id}`,
  ]);
}

export function scp(args: string[], recursive: boolean): Promise<number> {
  if (args.length < 2) throw new BadParameter('usage: wsh scp [-r] SOURCE... DEST (remote paths as login@node:path)');
  return runOpenSSH('scp', [...sshOptions(), ...(recursive ? ['-r'] : []), ...args]);
}

export function config(): string {
  if (process.env[IDENTITY_ENV])
    throw new BadParameter(
      'wsh config needs a login (wsh login): with -i, the key files it would name last only as long as one command',
    );
  const { profile, dir } = loadProfile();
  const wsh = process.argv[1] ?? 'wsh';
  return [
    `# Ward cluster "${profile.cluster}" via ${profile.proxy} (printed by wsh config)`,
    `Host *.${profile.cluster}`,
    `    IdentityFile "${join(dir, 'id')}"`,
    `    CertificateFile "${join(dir, 'id-cert.pub')}"`,
    '    IdentitiesOnly yes',
    `    UserKnownHostsFile "${join(dir, 'known_hosts')}"`,
    '    StrictHostKeyChecking yes',
    `    ProxyCommand "${process.execPath}" "${wsh}" proxy ssh %r@%h:%p`,
    '',
  ].join('\n');
}
