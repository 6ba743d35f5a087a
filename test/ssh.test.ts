// End to end: SSH access through a real cluster. One `ward start` with its home-lab node, plus two
// joined node agents (one behind a reverse tunnel, one listening), reached only with real clients:
// wsh, and OpenSSH's ssh/scp/sftp with nothing but the files `wsh login` wrote and an ssh_config.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYAML } from 'yaml';
import {
  BIN,
  cleanup,
  makeTempDir,
  poll,
  run,
  startAgent,
  startCluster,
  type Cluster,
  type NodeAgent,
  type RunResult,
} from './harness.ts';
import { writeDirectSSHConfig } from './users.ts';
import { SSH_LOGIN_TIMEOUT_MS } from '../src/proxy/sshserver.ts';

// ---- command results ----

function ok(r: RunResult): string {
  assert.equal(
    r.code,
    0,
    `expected success, got exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
  );
  return r.stdout;
}

/** OpenSSH's answer to a refused login: exit 255 and its one-line reason, nothing run. */
function refused(r: RunResult, pattern: RegExp): void {
  assert.equal(r.timedOut, false, `ssh hung\nstderr: ${r.stderr}`);
  assert.equal(r.code, 255, `expected exit 255, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing ran');
  assert.match(r.stderr, pattern);
}

/** Waits for `source` to log `msg` with a `reason` (or `err`) matching: why a refusal happened. */
async function assertLogged(source: { log: string }, msg: string, reason: RegExp): Promise<void> {
  const hit = () =>
    source.log.split('\n').some((line) => {
      if (!line.startsWith('{')) return false;
      const entry = JSON.parse(line) as { msg?: string; reason?: string; err?: string };
      return entry.msg === msg && reason.test(entry.reason ?? entry.err ?? '');
    });
  await poll(`"${msg}" with ${reason} in the log`, async () => (hit() ? true : undefined), 5_000, 50);
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// ---- the cluster, its nodes and users ----

let main: Cluster;
let tun1: NodeAgent;
let node2: NodeAgent;
let work: string;
/** The home-lab node's name: the machine's host name, as `ward start` chose it. */
let home: string;
let proxyPort: string;
let nodePort: string;

/** A logged-in user: their WSH_HOME, key directory and an ssh_config for plain OpenSSH. */
interface Login {
  wshHome: string;
  keys: string;
  cfg: string;
}
const users: Record<string, Login & { password: string }> = {};

/** Shell code that prints the command line of the ward process running it: tells which node it ran on. */
const WHERE = 'tr "\\0" " " </proc/$PPID/cmdline';

/** Which of our three nodes printed `WHERE` output (its data dir is on the ward command line). */
function ranOn(out: string): string {
  const hits = [
    [home, main.dataDir],
    ['tun1', tun1.root],
    ['node2', node2.root],
  ].filter(([, dir]) => out.includes(`-d ${dir}`));
  assert.equal(hits.length, 1, `cannot tell which node ran this:\n${out}`);
  return hits[0]![0]!;
}

/** An ssh_config that makes plain ssh/scp/sftp use these keys and trust only `knownHosts`. */
async function createRole(yaml: string, overwrite = false): Promise<void> {
  await main.adminClient().upsertResource({ resource: { json: JSON.stringify(parseYAML(yaml)) }, overwrite });
}

async function login(user: string, password: string): Promise<RunResult> {
  return main.wsh(
    users[user]?.wshHome ?? main.newWshHome(),
    ['login', '--proxy', main.proxyAddr, '--user', user, '--password-stdin', '--ca-pin', main.caPin],
    {
      stdin: `${password}\n`,
    },
  );
}

async function addUser(name: string, roles: string, logins: string): Promise<Login> {
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  ok(
    await main.wctl(['users', 'add', name, '--roles', roles, '--logins', logins, '--password-stdin'], {
      stdin: `${password}\n`,
    }),
  );
  const wshHome = main.newWshHome();
  users[name] = { wshHome, keys: '', cfg: '', password };
  const out = ok(await login(name, password));
  const keys = /Keys: (\S+)/.exec(out)?.[1];
  assert.ok(keys, out);
  assert.equal(keys, join(wshHome, 'keys', main.proxyAddr.replace(':', '_'), name));
  users[name]!.keys = keys;
  users[name]!.cfg = writeDirectSSHConfig(
    join(work, `${name}.ssh_config`),
    join(keys, 'id'),
    join(keys, 'known_hosts'),
  );
  return users[name]!;
}

/** Plain OpenSSH `ssh` with a config file (and WSH_HOME for a `wsh proxy ssh` ProxyCommand). */
function ssh(u: Login, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run('ssh', ['-F', u.cfg, ...args], { ...opts, env: { WSH_HOME: u.wshHome } });
}

/** `-J user@proxy`: the jump host is the proxy's SSH server (the hop reads the same -F file). */
const jump = (user: string) => ['-J', `${user}@127.0.0.1:${proxyPort}`];

function wsh(u: Login, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return main.wsh(u.wshHome, args, opts);
}

/** Runs until the test ends it: `ssh -N -L ...`. */
function spawnBackground(cmd: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  background.add(child);
  child.once('close', () => background.delete(child));
  return child;
}
const background = new Set<ChildProcess>();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

let alice: Login;
let big: string;
let bigHash: string;
let expired: { key: string; until: Date };

before(async () => {
  work = makeTempDir('ward-e2e-ssh-');
  main = await startCluster({ node: true, lockout: { max_attempts: 3 } });
  proxyPort = main.proxyAddr.split(':')[1]!;
  nodePort = main.nodeAddr.split(':')[1]!;
  [tun1, node2] = await Promise.all([
    startAgent(main, 'tun1', ['--tunnel', '--labels', 'env=prod']),
    startAgent(main, 'node2', ['--labels', 'env=staging,team=db']),
  ]);
  await createRole(
    'kind: role\nversion: v1\nmetadata: {name: staging}\nspec:\n  allow:\n    logins: [root]\n    node_labels: ' +
      '{env: staging}\n    rules: [{resources: [node], verbs: [list, read]}]\n',
  );
  await createRole('kind: role\nversion: v1\nmetadata: {name: no-root}\nspec:\n  allow: {}\n');
  [alice] = await Promise.all([
    addUser('alice', 'access', 'root'),
    addUser('carol', 'staging', 'root'),
    addUser('dave', 'access,no-root', 'root'),
    addUser('lou', 'access', 'root'),
  ]);
  // The proxy routes from its watch-fed node cache: wait until it can reach every node.
  await Promise.all(
    [hostname().split('.')[0]!, 'tun1', 'node2'].map((name) =>
      poll(`the proxy to route to ${name}`, async () =>
        (await ssh(alice, [...jump('alice'), `root@${name}`, 'true'])).code === 0 ? true : undefined,
      ),
    ),
  );
  // A certificate that lives one second; the tests that need it run long after it expired.
  const prefix = join(work, 'expired');
  ok(await main.wctl(['auth', 'sign', '--format', 'openssh', '--ttl', '1s', '--user', 'alice', '--out', prefix]));
  const validTo = /Valid: from \S+ to (\S+)/.exec(ok(await run('ssh-keygen', ['-L', '-f', `${prefix}-cert.pub`])))?.[1];
  assert.ok(validTo);
  expired = { key: prefix, until: new Date(`${validTo}Z`) };

  big = join(work, 'big.bin');
  writeFileSync(big, randomBytes(100 * 1024 * 1024));
  bigHash = await sha256File(big);
  home = hostname().split('.')[0]!;
});

after(async () => {
  for (const child of background) child.kill('SIGKILL');
  await cleanup();
});

describe('SSH access through Ward', { concurrency: 4 }, () => {
  describe('listing nodes', { concurrency: 1 }, () => {
    it('wsh ls lists the home node and both joined nodes with their labels', async () => {
      const out = ok(await wsh(alice, ['ls']));
      const rows = out.trim().split('\n').slice(2);
      assert.equal(rows.length, 3, out);
      assert.match(out, new RegExp(`^${home} +${main.nodeAddr.replace(/\./g, '\\.')} +[0-9a-f-]{36}$`, 'm'));
      assert.match(out, /^tun1 +⟵ Tunnel +env=prod +[0-9a-f-]{36}$/m);
      assert.match(
        out,
        new RegExp(`^node2 +${node2.addr!.replace(/\./g, '\\.')} +env=staging,team=db +[0-9a-f-]{36}$`, 'm'),
      );
    });

    it('filters by label, and prints JSON that parses', async () => {
      const names = (out: string) =>
        out
          .trim()
          .split('\n')
          .slice(2)
          .map((l) => l.split(/ +/)[0]);
      assert.deepEqual(names(ok(await wsh(alice, ['ls', 'env=prod']))), ['tun1']);
      assert.deepEqual(names(ok(await wsh(alice, ['ls', 'team=db', 'env=staging']))), ['node2']);
      assert.deepEqual(names(ok(await wsh(alice, ['ls', 'env=nowhere']))), []);
      const nodes = JSON.parse(ok(await wsh(alice, ['ls', '--format', 'json']))) as Array<{
        kind: string;
        metadata: { name: string; labels?: Record<string, string> };
        spec: { hostname: string; tunnel: boolean; addr: string };
      }>;
      assert.deepEqual(
        nodes.map((n) => [n.kind, n.spec.hostname, n.spec.tunnel, n.metadata.labels ?? {}]),
        [
          ['node', 'node2', false, { env: 'staging', team: 'db' }],
          ['node', 'tun1', true, { env: 'prod' }],
          ['node', home, false, {}],
        ].sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
      );
      assert.ok(nodes.every((n) => /^[0-9a-f-]{36}$/.test(n.metadata.name)));
    });

    it("shows a user only the nodes their roles' node_labels match", async () => {
      const out = ok(await wsh(users.carol!, ['ls']));
      assert.deepEqual(
        out
          .trim()
          .split('\n')
          .slice(2)
          .map((l) => l.split(/ +/)[0]),
        ['node2'],
      );
    });

    // Not tested here: a stopped agent's node leaving the list. Nodes live 90 s after their last
    // heartbeat (node/service.ts), longer than this whole file may take.
    it('wctl get nodes shows all three', async () => {
      const docs = ok(await main.wctl(['get', 'nodes']))
        .split(/^---$/m)
        .map((d) => parseYAML(d) as { kind: string; spec: { hostname: string; tunnel: boolean } });
      assert.deepEqual(
        docs.map((d) => [d.kind, d.spec.hostname, d.spec.tunnel]).sort(),
        [
          ['node', 'node2', false],
          ['node', 'tun1', true],
          ['node', home, false],
        ].sort(),
      );
    });

    it('wctl get nodes NAME takes a host name as well as a node id', async () => {
      // One resource prints as one JSON object, as for any NAME.
      type NodeDoc = { metadata: { name: string }; spec: { hostname: string } };
      const byName = JSON.parse(ok(await main.wctl(['get', 'nodes', 'tun1', '--format', 'json']))) as NodeDoc;
      assert.equal(byName.spec.hostname, 'tun1');
      const byId = JSON.parse(
        ok(await main.wctl(['get', 'nodes', byName.metadata.name, '--format', 'json'])),
      ) as NodeDoc;
      assert.equal(byId.spec.hostname, 'tun1');
      const r = await main.wctl(['get', 'nodes', 'no-such-node']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^ERROR: node "no-such-node" not found \(neither a node id nor a host name/);
    });
  });

  describe('running commands', { concurrency: 3 }, () => {
    it('wsh ssh reaches the home, tunnel and listening nodes by name, with exit codes', async () => {
      for (const name of [home, 'tun1', 'node2']) {
        const r = await wsh(alice, ['ssh', `root@${name}`, `${WHERE}; echo; whoami; echo err >&2; exit 7`]);
        assert.deepEqual([r.code, r.stderr], [7, 'err\n'], name);
        assert.equal(ranOn(r.stdout), name);
        assert.match(r.stdout, /\nroot\n$/);
      }
    });

    it('wsh ssh pipes stdin through, and root@env=prod runs on the labelled node only', async () => {
      assert.equal(
        ok(await wsh(alice, ['ssh', 'root@tun1', 'tr a-z A-Z'], { stdin: 'hello\nworld\n' })),
        'HELLO\nWORLD\n',
      );
      const r = await wsh(alice, ['ssh', 'root@env=prod', `${WHERE}; echo; hostname`]);
      assert.equal(ranOn(ok(r)), 'tun1');
    });

    it(
      'wsh ssh takes `--` before the command as ssh does, ' + 'and refuses a target with an empty login or node',
      async () => {
        assert.equal(ok(await wsh(alice, ['ssh', 'root@tun1', '--', 'echo', 'after'])), 'after\n');
        for (const target of ['root@', '@tun1']) {
          const r = await wsh(alice, ['ssh', target, 'true']);
          assert.equal(r.code, 1);
          assert.match(r.stderr, new RegExp(`^ERROR: "${target}" is not login@node`));
        }
      },
    );

    it(
      'wsh -i: an identity file in place of a login, for ls, ssh (its ProxyCommand too) and scp, with no ' +
        'login at all',
      async () => {
        const identity = join(work, 'alice.identity');
        ok(await main.wctl(['auth', 'sign', '--user', 'alice', '--format', 'file', '--out', identity, '--ttl', '10m']));
        const bot = main.newWshHome(); // never logged in
        const as = (args: string[]) => main.wsh(bot, ['-i', identity, '--proxy', main.proxyAddr, ...args]);
        assert.match(ok(await as(['ls'])), /^tun1 /m);
        assert.equal(ok(await as(['ssh', 'root@tun1', 'echo', 'by-identity'])), 'by-identity\n');
        const copied = join(work, 'by-identity.txt');
        ok(await as(['scp', `root@tun1:/etc/hostname`, copied]));
        assert.ok(readFileSync(copied, 'utf8').length > 0);
        assert.match(ok(await as(['status'])), new RegExp(`^> Identity file: ${identity} via ${main.proxyAddr}$`, 'm'));
        // Without --proxy it cannot know where to go, and says so; without -i, the bot is not logged in.
        assert.match(
          (await main.wsh(bot, ['-i', identity, 'ls'])).stderr,
          /^ERROR: --identity needs --proxy HOST:PORT/,
        );
        assert.match((await main.wsh(bot, ['ls'])).stderr, /^ERROR: not logged in/);
        // Certificates that have ended are refused before dialling, in one line (OpenSSH's own lines said nothing of
        // why).
        const ended = join(work, 'ended.identity');
        ok(await main.wctl(['auth', 'sign', '--user', 'alice', '--format', 'file', '--out', ended, '--ttl', '1s']));
        await sleep(2_500);
        for (const args of [['ssh', 'root@tun1', 'true'], ['ls']]) {
          const r = await main.wsh(bot, ['-i', ended, '--proxy', main.proxyAddr, ...args]);
          assert.equal(r.code, 1);
          assert.match(r.stderr, /^ERROR: your login expired at \S+: run wsh login\n$/);
        }
      },
    );

    it('plain ssh -J through the proxy: all three nodes, exit codes, stdin', async () => {
      for (const name of [home, 'tun1', 'node2']) {
        const r = await ssh(alice, [...jump('alice'), `root@${name}`, `${WHERE}; exit 7`]);
        assert.equal(r.code, 7, r.stderr);
        assert.equal(ranOn(r.stdout), name);
      }
      assert.equal(ranOn(ok(await ssh(alice, [...jump('alice'), `root@${home}`, WHERE]))), home);
      assert.equal(
        ok(await ssh(alice, [...jump('alice'), 'root@node2', 'sha256sum'], { stdin: 'piped' })).split(' ')[0],
        createHash('sha256').update('piped').digest('hex'),
      );
    });

    it(
      'keeps a logged-in ssh -J session past the proxy' + `'s ${SSH_LOGIN_TIMEOUT_MS / 1000} s login deadline`,
      async () => {
        // The deadline is for logging in: once the user is in, the proxy cancels it (found through the connection's
        // socket, src/ssh/ssh2hooks.ts).
        const seconds = SSH_LOGIN_TIMEOUT_MS / 1000 + 2;
        const r = await ssh(alice, [...jump('alice'), 'root@node2', `sleep ${seconds}; echo still here`], {
          timeoutMs: SSH_LOGIN_TIMEOUT_MS + 20_000,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'still here\n');
      },
    );

    it('plain ssh with the proxy:HOST:PORT subsystem as ProxyCommand', async () => {
      const proxyCommand = `ProxyCommand=ssh -F ${alice.cfg} -p ${proxyPort} alice@127.0.0.1 -s proxy:%h:%p`;
      for (const name of ['tun1', 'node2']) {
        assert.equal(ranOn(ok(await ssh(alice, ['-o', proxyCommand, `root@${name}`, WHERE]))), name);
      }
      const seven = await ssh(alice, ['-o', proxyCommand, 'root@tun1', 'cat; exit 7'], { stdin: 'through' });
      assert.deepEqual([seven.code, seven.stdout], [7, 'through']);
    });

    it('plain ssh with wsh proxy ssh as ProxyCommand, and with the wsh config block', async () => {
      const proxyCommand = `ProxyCommand=${process.execPath} ${join(BIN, 'wsh')} proxy ssh %r@%h:%p`;
      assert.equal(ranOn(ok(await ssh(alice, ['-o', proxyCommand, 'root@node2', WHERE]))), 'node2');
      const seven = await ssh(alice, ['-o', proxyCommand, 'root@tun1', 'cat; exit 7'], { stdin: 'tls' });
      assert.deepEqual([seven.code, seven.stdout], [7, 'tls']);

      const block = ok(await wsh(alice, ['config']));
      assert.match(block, new RegExp(`^Host \\*\\.${main.clusterName}$`, 'm'));
      const cfg = join(work, 'wsh-config');
      writeFileSync(cfg, block);
      for (const name of [home, 'tun1']) {
        const r = await run('ssh', ['-F', cfg, `root@${name}.${main.clusterName}`, `${WHERE}; exit 7`], {
          env: { WSH_HOME: alice.wshHome },
        });
        assert.equal(r.code, 7, r.stderr);
        assert.equal(ranOn(r.stdout), name);
      }
    });

    it("plain ssh straight to a listening node's port (break-glass)", async () => {
      assert.equal(ranOn(ok(await ssh(alice, ['-p', nodePort, 'root@127.0.0.1', WHERE]))), home);
      const r = await ssh(alice, ['-p', node2.addr!.split(':')[1]!, 'root@127.0.0.1', `${WHERE}; exit 7`]);
      assert.equal(r.code, 7);
      assert.equal(ranOn(r.stdout), 'node2');
    });
  });

  describe('terminals', { concurrency: 2 }, () => {
    const rootEnv = () => {
      const [, , , , , dir, shell] = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('root:'))!
        .split(':');
      return `${dir} root ${shell}`;
    };

    it("ssh -tt gets a PTY with root's environment", async () => {
      const out = ok(await ssh(alice, ['-tt', ...jump('alice'), 'root@tun1', 'tty; echo $HOME $USER $SHELL']));
      assert.match(out, /^\/dev\/pts\/\d+\r\n/);
      assert.ok(out.includes(`\r\n${rootEnv()}\r\n`), JSON.stringify(out));
    });

    it('wsh ssh -t gets a PTY', async () => {
      const out = ok(await wsh(alice, ['ssh', '-t', `root@${home}`, 'tty; echo $HOME $USER $SHELL']));
      assert.match(out, /^\/dev\/pts\/\d+\r\n/);
      assert.ok(out.includes(`${rootEnv()}\r\n`), JSON.stringify(out));
    });
  });

  describe('copying files', { concurrency: 1 }, () => {
    const remote = () => `/tmp/ward-e2e-ssh-${process.pid}`;
    before(() => mkdirSync(join(work, 'back'), { recursive: true }));
    after(async () => {
      await run('rm', ['-rf', remote()]);
    });

    it('wsh scp copies 100 MB to a node and back byte for byte', async () => {
      ok(await run('mkdir', ['-p', remote()]));
      ok(await wsh(alice, ['scp', big, `root@${home}:${remote()}/wsh.bin`], { timeoutMs: 60_000 }));
      const back = join(work, 'back', 'wsh.bin');
      ok(await wsh(alice, ['scp', `root@${home}:${remote()}/wsh.bin`, back], { timeoutMs: 60_000 }));
      assert.equal(await sha256File(`${remote()}/wsh.bin`), bigHash);
      assert.equal(await sha256File(back), bigHash);
    });

    it('plain scp -J copies 100 MB through a reverse tunnel and back byte for byte', async () => {
      ok(await run('mkdir', ['-p', remote()]));
      ok(
        await run('scp', ['-F', alice.cfg, ...jump('alice'), big, `root@tun1:${remote()}/scp.bin`], {
          timeoutMs: 60_000,
        }),
      );
      const back = join(work, 'back', 'scp.bin');
      ok(
        await run('scp', ['-F', alice.cfg, ...jump('alice'), `root@tun1:${remote()}/scp.bin`, back], {
          timeoutMs: 60_000,
        }),
      );
      assert.equal(await sha256File(`${remote()}/scp.bin`), bigHash);
      assert.equal(await sha256File(back), bigHash);
    });

    it('sftp -b puts and gets through the proxy', async () => {
      ok(await run('mkdir', ['-p', remote()]));
      const small = join(work, 'small.bin');
      writeFileSync(small, randomBytes(3 * 1024 * 1024 + 17));
      const back = join(work, 'back', 'sftp.bin');
      const batch = join(work, 'sftp.batch');
      writeFileSync(
        batch,
        `put ${small} ${remote()}/sftp.bin\nget ${remote()}/sftp.bin ${back}\nls -l ${remote()}/sftp.bin\n`,
      );
      const out = ok(
        await run('sftp', ['-F', alice.cfg, ...jump('alice'), '-b', batch, 'root@node2'], { timeoutMs: 30_000 }),
      );
      assert.match(out, new RegExp(`${3 * 1024 * 1024 + 17} .*sftp\\.bin`));
      assert.equal(await sha256File(back), await sha256File(small));
    });
  });

  describe('port forwarding', () => {
    it('ssh -L through the proxy reaches an HTTP server next to the node', async () => {
      const server = http.createServer((_req, res) => res.end('hello through the tunnel\n'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const httpPort = (server.address() as net.AddressInfo).port;
        const local = await freePort();
        const child = spawnBackground(
          'ssh',
          [
            '-F',
            alice.cfg,
            ...jump('alice'),
            '-o',
            'ExitOnForwardFailure=yes',
            '-N',
            '-L',
            `${local}:127.0.0.1:${httpPort}`,
            'root@tun1',
          ],
          { WSH_HOME: alice.wshHome },
        );
        let stderr = '';
        child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        const body = await poll(`the forward on port ${local} (${stderr})`, async () => {
          if (child.exitCode !== null) throw new Error(`ssh -L exited with ${child.exitCode}: ${stderr}`);
          return httpGet(local).catch(() => undefined);
        });
        assert.equal(body, 'hello through the tunnel\n');
        const exited = new Promise((resolve) => child.once('close', resolve));
        child.kill('SIGTERM');
        await exited;
      } finally {
        server.closeAllConnections();
        server.close();
      }
    });
  });

  describe('what is refused', { concurrency: 1 }, () => {
    it('refuses an expired certificate at the node and at the proxy', async () => {
      await poll('the 1s certificate to expire', async () =>
        Date.now() > expired.until.getTime() + 1_000 ? true : undefined,
      );
      const cfg = writeDirectSSHConfig(join(work, 'expired.ssh_config'), expired.key, join(alice.keys, 'known_hosts'));
      const u = { ...alice, cfg };
      refused(await ssh(u, ['-p', nodePort, 'root@127.0.0.1', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(main, 'ssh access denied', /^certificate refused: expired$/);
      refused(await ssh(u, [...jump('alice'), 'root@node2', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(main, 'proxy ssh: certificate refused', /^certificate refused: expired$/);
      refused(
        await ssh(u, ['-p', node2.addr!.split(':')[1]!, 'root@127.0.0.1', 'true']),
        /Permission denied \(publickey\)/,
      );
      await assertLogged(node2, 'ssh access denied', /^certificate refused: expired$/);
    });

    it('refuses a certificate from a foreign CA at the node and at the proxy', async () => {
      const dir = join(work, 'foreign');
      mkdirSync(dir);
      ok(await run('ssh-keygen', ['-q', '-t', 'ed25519', '-f', join(dir, 'ca'), '-N', '']));
      ok(await run('ssh-keygen', ['-q', '-t', 'ed25519', '-f', join(dir, 'key'), '-N', '']));
      ok(
        await run('ssh-keygen', [
          '-q',
          '-s',
          join(dir, 'ca'),
          '-I',
          'alice',
          '-n',
          'root,alice',
          '-V',
          '-5m:+1h',
          join(dir, 'key.pub'),
        ]),
      );
      const u = {
        ...alice,
        cfg: writeDirectSSHConfig(join(dir, 'ssh_config'), join(dir, 'key'), join(alice.keys, 'known_hosts')),
      };
      refused(await ssh(u, ['-p', nodePort, 'root@127.0.0.1', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(main, 'ssh access denied', /not signed by a trusted certificate authority/);
      refused(await ssh(u, [...jump('alice'), 'root@node2', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(main, 'proxy ssh: certificate refused', /not signed by a trusted certificate authority/);
    });

    it("refuses a login that is not among the certificate's principals", async () => {
      refused(await ssh(alice, [...jump('alice'), 'nobody@tun1', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(tun1, 'ssh access denied', /principal "nobody" is not listed/);
      refused(await ssh(alice, ['-p', nodePort, 'nobody@127.0.0.1', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(main, 'ssh access denied', /principal "nobody" is not listed/);
      // The refusal is in the cluster's audit log, reported by the node that refused it.
      const tun1Refusal = await poll("the node's refusal in the audit log", async () => {
        const res = await main.adminClient().searchEvents({ types: ['auth'], limit: 1000 });
        const events = res.events.map((e) => JSON.parse(e));
        // (OpenSSH also offers the plain key after the certificate: that is a second, separate refusal.)
        return events.find(
          (e) =>
            e.success === false &&
            e.login === 'nobody' &&
            e.server_id === tun1.hostId &&
            /principal "nobody" is not listed/.test(e.reason),
        );
      });
      assert.equal(tun1Refusal.code, 'WT1000W');
    });

    it('records commands run on a node in the cluster audit log', async () => {
      const marker = `audit-${randomBytes(4).toString('hex')}`;
      ok(await wsh(alice, ['ssh', 'root@node2', `echo ${marker}`]));
      const exec = await poll('the exec event', async () => {
        const res = await main.adminClient().searchEvents({ types: ['exec'], limit: 1000 });
        return res.events.map((e) => JSON.parse(e)).find((e) => String(e.command).includes(marker));
      });
      assert.equal(exec.code, 'WE3000I');
      assert.equal(exec.user, 'alice');
      assert.equal(exec.login, 'root');
      assert.equal(exec.server_id, node2.hostId);
    });

    it("refuses a node the user's roles' node_labels do not match, as if it did not exist", async () => {
      const carol = users.carol!;
      ok(await ssh(carol, [...jump('carol'), 'root@node2', 'true']));
      const viaJump = await ssh(carol, [...jump('carol'), `root@${home}`, 'true']);
      assert.equal(viaJump.code, 255, viaJump.stderr);
      assert.equal(viaJump.stdout, '');
      await assertLogged(main, 'proxy ssh: route refused', new RegExp(`^node "${home}" not found$`));
      // Straight to the node's port, the node itself applies the labels.
      refused(await ssh(carol, ['-p', nodePort, 'root@127.0.0.1', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(main, 'ssh access denied', new RegExp(`no role allows login "root" on node ${home}`));
      const r = await wsh(carol, ['ssh', 'root@tun1', 'true']);
      assert.equal(r.code, 255, r.stderr);
      assert.match(r.stderr, /node "tun1" not found/);
    });

    it('refuses a login a role denies, even when another role allows it, as soon as the deny is added', async () => {
      const dave = users.dave!;
      ok(await ssh(dave, [...jump('dave'), 'root@node2', 'true']));
      await createRole(
        'kind: role\nversion: v1\nmetadata: {name: no-root}\nspec:\n  allow: {}\n  deny: {logins: [root]}\n',
        true,
      );
      // The node's role cache is watch-fed: the existing certificate stops working within moments.
      await poll('the node to refuse root to dave', async () =>
        (await ssh(dave, ['-p', nodePort, 'root@127.0.0.1', 'true'])).code === 255 ? true : undefined,
      );
      await assertLogged(main, 'ssh access denied', /^role "no-root" denies login "root"$/);
      await poll('node2 to refuse root to dave', async () =>
        (await ssh(dave, [...jump('dave'), 'root@node2', 'true'])).code === 255 ? true : undefined,
      );
      refused(await ssh(dave, [...jump('dave'), 'root@node2', 'true']), /Permission denied \(publickey\)/);
      await assertLogged(node2, 'ssh access denied', /^role "no-root" denies login "root"$/);
      // A new login no longer carries root at all.
      ok(await login('dave', dave.password));
      assert.match(ok(await wsh(dave, ['status'])), /Logins: +\(none\)/);
    });

    it(
      "keeps a certificate working through strangers' failed sign-ins, " + 'and refuses it once the account is locked',
      async () => {
        const lou = users.lou!;
        ok(await ssh(lou, [...jump('lou'), 'root@tun1', 'true']));
        // Failed sign-ins lock the address they came from, never the account: a stranger cannot lock lou out.
        const stranger = main.newWshHome();
        for (let i = 0; i < 6; i++) {
          await main.wsh(
            stranger,
            ['login', '--proxy', main.proxyAddr, '--user', 'lou', '--password-stdin', '--ca-pin', main.caPin],
            { stdin: 'wrong password\n' },
          );
        }
        ok(await ssh(lou, [...jump('lou'), 'root@tun1', 'true']));
        ok(await ssh(lou, ['-p', nodePort, 'root@127.0.0.1', 'true']));
        // An account lock (locked_until, written by an admin) ends every certificate lou holds, at nodes and proxies.
        const doc = parseYAML(ok(await main.wctl(['get', 'users', 'lou']))) as { spec: Record<string, unknown> };
        doc.spec.locked_until = new Date(Date.now() + 3_600_000).toISOString();
        const file = join(work, 'lou-locked.yaml');
        writeFileSync(file, JSON.stringify(doc));
        ok(await main.wctl(['create', '--force', '-f', file]));
        await poll('the node to refuse locked lou', async () =>
          (await ssh(lou, ['-p', nodePort, 'root@127.0.0.1', 'true'])).code === 255 ? true : undefined,
        );
        await assertLogged(main, 'ssh access denied', /^user "lou" is locked$/);
        await poll('the proxy to refuse locked lou', async () =>
          (await ssh(lou, [...jump('lou'), 'root@tun1', 'true'])).code === 255 ? true : undefined,
        );
        refused(await ssh(lou, [...jump('lou'), 'root@tun1', 'true']), /Permission denied \(publickey\)/);
        await assertLogged(main, 'proxy ssh: certificate refused', /^user "lou" is locked$/);
        const viaTLS = await wsh(lou, ['ssh', 'root@node2', 'true']);
        assert.equal(viaTLS.code, 255, viaTLS.stderr);
        assert.match(viaTLS.stderr, /locked/);
      },
    );

    it('refuses a host whose certificate is from another host CA', async () => {
      const foreign = join(work, 'foreign-host-ca');
      ok(await run('ssh-keygen', ['-q', '-t', 'ed25519', '-f', foreign, '-N', '']));
      const knownHosts = join(work, 'foreign_known_hosts');
      writeFileSync(knownHosts, `@cert-authority * ${readFileSync(`${foreign}.pub`, 'utf8')}`);
      const u = {
        ...alice,
        cfg: writeDirectSSHConfig(join(work, 'foreign-host.ssh_config'), join(alice.keys, 'id'), knownHosts),
      };
      refused(await ssh(u, ['-p', nodePort, 'root@127.0.0.1', 'true']), /Host key verification failed/);
      refused(await ssh(u, [...jump('alice'), 'root@tun1', 'true']), /Host key verification failed/);
    });
  });
});
