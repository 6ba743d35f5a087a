// `wctl`: the administrator's tool. Talks to the auth API only (never to the backend), as the local
// admin on the auth host or with an identity file from anywhere.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { parseDuration, formatDuration } from '../../time/duration.ts';
import { BadParameter } from '../../api/errors.ts';
import { parseResource } from '../../api/types.ts';
import { runCLI } from '../run.ts';
import { VERSION } from '../../api/version.ts';
import { table } from '../table.ts';
import { connectAuth, type GlobalOptions } from './connect.ts';
import { caFingerprint, checkFormat, getResources, readResourceFile } from './resources.ts';
import { exportCAs, rotateCA, signUser } from './authcmd.ts';

const program = new Command('wctl')
  .description('Ward cluster administration')
  .option('--auth-server <host:port>', 'auth server or proxy to talk to')
  .option('-i, --identity <file>', 'identity file (from wctl auth sign --format file)')
  .option('-d, --data-dir <dir>', 'data dir of the local auth server (default ~/.ward)')
  .version(VERSION)
  .showHelpAfterError();

const auth = () => connectAuth(program.opts<GlobalOptions>());

/** On the auth host, the address of the proxy `ward start` runs next to it, for printed instructions. */
function localProxyAddr(file = 'proxy_addr'): string | undefined {
  const dir = program.opts<GlobalOptions>().dataDir ?? process.env.WARD_DATA_DIR ?? join(homedir(), '.ward');
  try {
    return readFileSync(join(dir, file), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
const out = (s: string): void => {
  process.stdout.write(s);
};
const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function readSecretFromStdin(what: string): string {
  const text = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (!text) throw new BadParameter(`no ${what} on standard input`);
  return text;
}

program
  .command('status')
  .description('cluster name, CA fingerprints and rotation phases, backend and version')
  .action(async () => {
    const client = auth();
    const ping = await client.ping({});
    const cas = await client.listResources({ kind: 'cert_authority' });
    const rows = cas.resources
      .map((r) => parseResource(JSON.parse(r.json)))
      .flatMap((ca) =>
        ca.kind === 'cert_authority' ? [[`${ca.spec.type} CA`, caFingerprint(ca), ca.spec.rotation.phase]] : [],
      );
    out(
      `Cluster:  ${ping.clusterName}\nVersion:  ${ping.serverVersion}\nBackend:  ${ping.backend}\nCA pin:   ` +
        `${ping.caPins.join(', ')}\n\n`,
    );
    out(table(['Authority', 'Signing key', 'Rotation'], rows));
  });

const users = program.command('users').description('manage users');
users
  .command('add <name>')
  .description(
    'create a user; prints an invite link (the user sets their password in the browser) unless --password-stdin',
  )
  .requiredOption('--roles <r1,r2>', 'roles of the user')
  .option('--logins <l1,l2>', 'OS logins the user may use ({{internal.logins}})', '')
  .option('--password-stdin', 'read the password from standard input')
  .action(async (name: string, opts: { roles: string; logins: string; passwordStdin?: boolean }) => {
    const password = opts.passwordStdin ? readSecretFromStdin('password') : '';
    const res = await auth().createUser({
      name,
      roles: list(opts.roles),
      logins: list(opts.logins),
      password,
      invite: !password,
    });
    out(`User "${name}" has been created.\n`);
    if (res.inviteToken) {
      const proxy = localProxyAddr() ?? program.opts<GlobalOptions>().authServer ?? 'PROXY:3080';
      out(
        `Invite link (valid until ${res.inviteExpires}; share it with ${name} ` +
          `only):\nhttps://${proxy}/web/invite/${res.inviteToken}\n`,
      );
    }
  });
users
  .command('ls')
  .description('list users')
  .addOption(new Option('--format <f>', 'text, yaml or json').default('text'))
  .action(async (opts: { format: string }) =>
    out(await getResources(auth(), 'user', undefined, checkFormat(opts.format))),
  );
users
  .command('rm <name>')
  .description('delete a user')
  .action(async (name: string) => {
    await auth().deleteResource({ kind: 'user', name });
    out(`User "${name}" has been deleted.\n`);
  });
users
  .command('reset <name>')
  .description('set a new password (and unlock the user); prints a one-time password unless --password-stdin')
  .option('--password-stdin', 'read the password from standard input')
  .action(async (name: string, opts: { passwordStdin?: boolean }) => {
    const password = opts.passwordStdin ? readSecretFromStdin('password') : '';
    const res = await auth().resetPassword({ name, password });
    out(`Password of "${name}" has been reset.\n`);
    if (res.generatedPassword) out(`One-time password: ${res.generatedPassword}\n`);
  });

const tokens = program.command('tokens').description('manage join tokens');
tokens
  .command('add')
  .description('create a join token for agents')
  .requiredOption('--type <types>', 'node, proxy, db, app, kube (comma-separated)')
  .option('--ttl <duration>', 'how long the token is valid', '30m')
  .option('--labels <k=v,...>', 'labels given to agents that join with it', '')
  .action(async (opts: { type: string; ttl: string; labels: string }) => {
    const labels = Object.fromEntries(
      list(opts.labels).map((kv) => {
        const [k, v] = kv.split('=');
        if (!k || v === undefined) throw new BadParameter(`invalid label "${kv}" (expected key=value)`);
        return [k, v];
      }),
    );
    const ttlMs = parseDuration(opts.ttl);
    const client = auth();
    const res = await client.createToken({ roles: list(opts.type), ttlSeconds: Math.round(ttlMs / 1000), labels });
    const pin = (await client.ping({})).caPins[0];
    const token = parseResource(JSON.parse(res.json));
    // A proxy reaches auth servers directly (list them all for failover); everything else joins through a proxy.
    const authServer = list(opts.type).includes('proxy')
      ? (localProxyAddr('admin/auth_addr') ?? 'AUTH_HOST:3025')
      : (program.opts<GlobalOptions>().authServer ?? localProxyAddr() ?? 'PROXY_HOST:3080');
    out(
      `The join token ${token.metadata.name} (${list(opts.type).join(',')}) expires in ${formatDuration(ttlMs)}.\n\n` +
        `Run this on the new host to join it:\n\n` +
        `  ward start --roles ${list(opts.type).join(',')} --token ${token.metadata.name} --auth-server ` +
        `${authServer} --ca-pin ${pin}\n\n` +
        `(add --tunnel for a node with no inbound port: it is then reached through a reverse tunnel)\n`,
    );
  });
tokens
  .command('ls')
  .description('list join tokens')
  .addOption(new Option('--format <f>', 'text, yaml or json').default('text'))
  .action(async (opts: { format: string }) =>
    out(await getResources(auth(), 'token', undefined, checkFormat(opts.format))),
  );
tokens
  .command('rm <token>')
  .description('delete a join token')
  .action(async (name: string) => {
    await auth().deleteResource({ kind: 'token', name });
    out(`Token ${name} has been deleted.\n`);
  });

program
  .command('get <kind> [name]')
  .description('show resources: roles, users, tokens, nodes, cas')
  .addOption(new Option('--format <f>', 'text, yaml or json').default('yaml'))
  .action(async (kind: string, name: string | undefined, opts: { format: string }) =>
    out(await getResources(auth(), kind, name, checkFormat(opts.format))),
  );

program
  .command('create')
  .description('create resources from a YAML file (roles, users, tokens)')
  .requiredOption('-f, --file <path>', 'YAML file, "-" for standard input')
  .option('--force', 'overwrite resources that exist')
  .action(async (opts: { file: string; force?: boolean }) => {
    const client = auth();
    for (const resource of readResourceFile(opts.file)) {
      await client.upsertResource({ resource: { json: JSON.stringify(resource) }, overwrite: !!opts.force });
      out(`${resource.kind} "${resource.metadata.name}" has been ${opts.force ? 'created or updated' : 'created'}.\n`);
    }
  });

program
  .command('rm <kind/name>')
  .description('delete a resource, e.g. wctl rm role/dev')
  .action(async (ref: string) => {
    const [kind, name] = ref.split('/');
    if (!kind || !name) throw new BadParameter(`expected KIND/NAME, e.g. role/dev (got "${ref}")`);
    await auth().deleteResource({ kind, name });
    out(`${kind} "${name}" has been deleted.\n`);
    // What the auth server did besides (api.ts deleteResource, auth/hostlocks.ts): say so, and how to undo it.
    if (kind === 'node' || kind === 'nodes' || kind === 'proxy' || kind === 'proxies') {
      out(`Its host identity is revoked by lock revoked-${name} (wctl unlock revoked-${name} lets it back).\n`);
    }
  });

program
  .command('events')
  .description('search the audit log (newest first); --format json prints JSON lines for a log pipeline')
  .option('--from <time>', 'ISO time or a duration ago, e.g. 2h')
  .option('--to <time>', 'ISO time or a duration ago')
  .option('--type <types>', 'event names, comma-separated, e.g. user.login,exec')
  .option('--user <name>', 'only events of this user')
  .option('--limit <n>', 'at most this many (max 10000)', '100')
  .addOption(new Option('--format <f>', 'text or json').default('text').choices(['text', 'json']))
  .action(async (opts: { from?: string; to?: string; type?: string; user?: string; limit: string; format: string }) => {
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw new BadParameter('--limit must be a whole number from 1 to 10000');
    const res = await auth().searchEvents({
      from: opts.from ? eventTime(opts.from) : '',
      to: opts.to ? eventTime(opts.to) : '',
      types: opts.type ? list(opts.type) : [],
      user: opts.user ?? '',
      limit,
    });
    if (opts.format === 'json') return out(res.events.map((e) => e + '\n').join(''));
    const rows = res.events.map((text) => {
      const { time, event, code, user, uid: _u, cluster: _c, ...rest } = JSON.parse(text) as Record<string, unknown>;
      const details = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      return [
        String(time),
        String(event),
        String(code),
        String(user ?? ''),
        details.length > 120 ? details.slice(0, 117) + '...' : details,
      ];
    });
    out(rows.length ? table(['Time', 'Event', 'Code', 'User', 'Details'], rows) : 'no events\n');
  });

program
  .command('lock')
  .description('stop a user, a role or a node now: no new certificates or connections, live sessions ended')
  .option('--user <name>', 'lock this user')
  .option('--role <name>', 'lock everyone holding this role')
  .option('--node <name-or-id>', 'lock this host: a node by name, or any host (node, proxy, agent) by its host id')
  .option('--ttl <duration>', 'lift the lock by itself after this long, e.g. 1h (default: until wctl unlock)')
  .option('--message <text>', 'what the locked users are told')
  .action(async (opts: { user?: string; role?: string; node?: string; ttl?: string; message?: string }) => {
    const targets = (['user', 'role', 'node'] as const).filter((k) => opts[k] !== undefined);
    if (targets.length !== 1) throw new BadParameter('name exactly one of --user, --role, --node');
    const key = targets[0]!;
    const ttlMs = opts.ttl ? parseDuration(opts.ttl) : undefined;
    const name = randomUUID();
    const lock = {
      kind: 'lock',
      version: 'v1',
      metadata: { name, ...(ttlMs ? { expires: new Date(Date.now() + ttlMs).toISOString() } : {}) },
      spec: { target: { [key]: opts[key] }, ...(opts.message ? { message: opts.message } : {}) },
    };
    const res = await auth().upsertResource({ resource: { json: JSON.stringify(lock) }, overwrite: false });
    const saved = parseResource(JSON.parse(res.json));
    // The auth server locks a host by the id its certificates bind, whatever name it was given.
    const hostId = saved.kind === 'lock' ? saved.spec.target.node : undefined;
    const what =
      hostId !== undefined && hostId !== opts.node
        ? `node "${opts.node}" (host id ${hostId})`
        : `${key} "${opts[key]}"`;
    out(`Locked ${what}${ttlMs ? ` for ${formatDuration(ttlMs)}` : ''}. Lock id: ${name} (wctl unlock ${name})\n`);
  });

program
  .command('unlock <lock-id>')
  .description('lift a lock (wctl locks ls lists them)')
  .action(async (id: string) => {
    await auth().deleteResource({ kind: 'lock', name: id });
    out(`Lock ${id} lifted.\n`);
  });

program
  .command('locks')
  .description('locks')
  .command('ls')
  .description('list the locks in force')
  .addOption(new Option('--format <f>', 'text or json').default('text').choices(['text', 'json']))
  .action(async (opts: { format: string }) => {
    const locks = (await auth().listResources({ kind: 'lock', limit: 10_000 })).resources.map((r) =>
      parseResource(JSON.parse(r.json)),
    );
    if (opts.format === 'json') return out(JSON.stringify(locks, null, 2) + '\n');
    const rows = locks.flatMap((l) => {
      if (l.kind !== 'lock') return [];
      const [kind, value] = Object.entries(l.spec.target)[0] ?? ['', ''];
      const target = `${kind}=${value}${l.spec.node_name ? ` (${l.spec.node_name})` : ''}`;
      return [[l.metadata.name, target, l.spec.message ?? '', l.metadata.expires ?? 'never', l.spec.created_by ?? '']];
    });
    out(rows.length ? table(['Lock ID', 'Target', 'Message', 'Expires', 'Created by'], rows) : 'no locks\n');
  });

const recordingsCmd = program.command('recordings').description('session recordings');
recordingsCmd
  .command('ls')
  .description('list recorded sessions, newest first')
  .addOption(new Option('--format <f>', 'text or json').default('text').choices(['text', 'json']))
  .action(async (opts: { format: string }) => {
    const { listRecordings } = await import('../recordings.ts');
    out(await listRecordings(auth(), opts.format));
  });
recordingsCmd
  .command('export')
  .description('write a recording as asciicast v2 (asciinema play reads it), or as json / text')
  .argument('<session-id>')
  .option('-o, --out <file>', 'write to this file instead of standard output')
  .addOption(
    new Option('--format <f>', 'asciicast, json or text').default('asciicast').choices(['asciicast', 'json', 'text']),
  )
  .action(async (sid: string, opts: { out?: string; format: string }) => {
    const rec = await import('../recordings.ts');
    const data = rec.dumpRecording(await rec.fetchRecording(auth(), sid), opts.format);
    if (opts.out) {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(opts.out, data, { mode: 0o600 });
      process.stderr.write(`Wrote ${opts.out}\n`);
    } else process.stdout.write(data);
  });

/** "2h" → two hours ago; anything else must be an ISO time. */
function eventTime(text: string): string {
  if (/^\d+(ms|s|m|h|d)/.test(text)) return new Date(Date.now() - parseDuration(text)).toISOString();
  const t = new Date(text);
  if (Number.isNaN(t.getTime()))
    throw new BadParameter(`invalid time "${text}" (use an ISO time or a duration such as 2h)`);
  return t.toISOString();
}

const authCmd = program.command('auth').description('certificates and certificate authorities');
authCmd
  .command('sign')
  .description('mint user credentials (as tctl auth sign)')
  .requiredOption('--user <name>', 'user to sign for')
  .requiredOption('--out <path>', 'where to write')
  .option('--ttl <duration>', 'certificate lifetime (capped by the roles)', '1h')
  .addOption(new Option('--format <f>', 'openssh, tls or file').default('file').choices(['openssh', 'tls', 'file']))
  .action(async (opts: { user: string; out: string; ttl: string; format: 'openssh' | 'tls' | 'file' }) => {
    out(await signUser(auth(), { ...opts, ttlMs: parseDuration(opts.ttl) }));
  });
authCmd
  .command('export')
  .description('print CA public keys for OpenSSH (user, host) and openssl (tls, db)')
  .addOption(
    new Option('--type <type>', 'user, host, tls or db').makeOptionMandatory().choices(['user', 'host', 'tls', 'db']),
  )
  .action(async (opts: { type: string }) => out(await exportCAs(auth(), opts.type)));
authCmd
  .command('rotate')
  .description(
    'rotate a CA one phase at a time: standby -> init -> update_clients -> update_servers -> standby ' +
      '(docs/rotation.md)',
  )
  .addOption(
    new Option('--type <type>', 'the CA to rotate (user, host or tls; db does not rotate yet)')
      .makeOptionMandatory()
      .choices(['user', 'host', 'tls', 'db']),
  )
  .addOption(
    new Option('--phase <phase>', 'the phase to move to (default: the next one)').choices([
      'init',
      'update_clients',
      'update_servers',
      'standby',
    ]),
  )
  .option('--rollback', 'back to the old key, from any phase before standby (tls: through phase rollback)')
  .action(async (opts: { type: string; phase?: string; rollback?: boolean }) => {
    if (opts.rollback && opts.phase) throw new BadParameter('--rollback and --phase do not go together');
    out(await rotateCA(auth(), opts));
  });

await runCLI(program);
// A failed command exits now, whatever it had begun: a connection to a server that never answered would
// otherwise hold the process open after its error was printed.
if (process.exitCode) process.exit();
