// The node's SSH server against the real OpenSSH client (ssh, scp, sftp, ssh-agent): certificate
// auth, exec/pty/env, SFTP and scp, port and agent forwarding, refusals, and reverse-tunnel sockets.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import pino from 'pino';
import {
  parseCertificate,
  signCertificate,
  softwareSigner,
  verifyCertificate,
  type SSHSigner,
} from '../crypto/sshcert.ts';
import { formatAuthorizedKey, formatOpenSSHPrivateKey, sshPublicKeyBlob } from '../crypto/sshkeys.ts';
import { createNodeSSHServer, type NodeSSHServer, type UserAuthorizer } from './server.ts';
import { listeningOn } from '../../test/fixtures/listening.ts';

interface Result {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: 'pipe' });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ward-node-test-'));
const testUser = `wardt${crypto.randomBytes(3).toString('hex')}`;
// Created now, not in before(): whether the non-root case runs is decided when the tests are declared.
const userCreated = (() => {
  try {
    execFileSync('useradd', ['-m', '-s', '/bin/bash', testUser], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const events: Array<{ event: string; fields: Record<string, unknown> }> = [];
const permits = { port: true, gateway: false, agent: true, pty: true };
let ca: SSHSigner;
let server: NodeSSHServer;
let port = 0;

function clientOpts(key = path.join(dir, 'key')): string[] {
  // -F /dev/null and IdentitiesOnly: only the test's key, whatever the host's ~/.ssh holds.
  return [
    '-F',
    '/dev/null',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-i',
    key,
  ];
}
function ssh(
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; key?: string; login?: string; port?: number } = {},
): Promise<Result> {
  return run(
    'ssh',
    [...clientOpts(opts.key), '-p', String(opts.port ?? port), `${opts.login ?? 'root'}@127.0.0.1`, ...args],
    opts,
  );
}

async function writeIdentity(name: string, signer: SSHSigner | null, principals: string[]): Promise<string> {
  const key = crypto.generateKeyPairSync('ed25519');
  const file = path.join(dir, name);
  fs.writeFileSync(file, formatOpenSSHPrivateKey(key.privateKey), { mode: 0o600 });
  if (signer) {
    const cert = await signCertificate(
      {
        publicKey: sshPublicKeyBlob(key.publicKey),
        serial: 1n,
        certType: 'user',
        keyId: 'alice',
        principals,
        validAfter: new Date(Date.now() - 60_000),
        validBefore: new Date(Date.now() + 3600_000),
      },
      signer,
    );
    fs.writeFileSync(`${file}-cert.pub`, formatAuthorizedKey(cert) + '\n');
  }
  return file;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** `ssh -N -R SPEC` held open until the forward is up; resolves with the port the node allocated and the client. */
async function remoteForward(spec: string): Promise<{ port: number; stop: () => void }> {
  // LogLevel INFO first (the first value wins): the client says which port the node allocated.
  const client = spawn('ssh', [
    '-o',
    'LogLevel=INFO',
    ...clientOpts(),
    '-p',
    String(port),
    '-N',
    '-o',
    'ExitOnForwardFailure=yes',
    '-R',
    spec,
    'root@127.0.0.1',
  ]);
  let stderr = '';
  const allocated = await new Promise<number>((resolve, reject) => {
    client.stderr.on('data', (d: Buffer) => {
      const m = /Allocated port (\d+)/.exec((stderr += d.toString()));
      if (m) resolve(Number(m[1]));
    });
    client.once('close', (code) => reject(new Error(`ssh -R ${spec} exited ${code}: ${stderr}`)));
  });
  return { port: allocated, stop: () => client.kill() };
}

async function httpGet(url: string, deadlineMs: number): Promise<string> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await new Promise<string>((resolve, reject) => {
        http
          .get(url, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

let web: http.Server;
let webPort = 0;

/** The test's authorizer: a certificate from `ca` naming the login, with the grants in `permits`. */
const authorize: UserAuthorizer = async ({ certBlob, login }) => {
  const cert = parseCertificate(certBlob);
  try {
    verifyCertificate(cert, { trustedCAs: [ca.publicKeyBlob], now: new Date(), certType: 'user', principal: login });
  } catch (err) {
    return { allowed: false, reason: (err as Error).message };
  }
  return {
    allowed: true,
    user: 'alice',
    cert,
    permitPortForwarding: permits.port,
    permitGatewayPorts: permits.gateway,
    permitAgentForwarding: permits.agent,
    permitPty: permits.pty,
  };
};

before(async () => {
  ca = softwareSigner(crypto.generateKeyPairSync('ed25519').privateKey);
  await writeIdentity('key', ca, ['root', testUser, 'nosuchuserxyz']);
  const host = crypto.generateKeyPairSync('ed25519');
  server = createNodeSSHServer({
    hostKeys: [formatOpenSSHPrivateKey(host.privateKey)],
    log: pino({ level: 'silent' }),
    onEvent: (event, fields) => events.push({ event, fields }),
    authorize,
  });
  port = (await server.listen('127.0.0.1:0')).port;
  web = http.createServer((_req, res) => res.end('hello from the web server\n'));
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  webPort = (web.address() as net.AddressInfo).port;
});

after(async () => {
  await server.close();
  web.closeAllConnections();
  web.close();
  if (userCreated) {
    // The last session's processes may still be exiting (SIGHUP, then SIGKILL after a grace period).
    for (let i = 0; i < 30; i++) {
      try {
        execFileSync('userdel', ['-r', testUser], { stdio: 'ignore' });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('node SSH server with OpenSSH clients', () => {
  it('runs a command and propagates exit status 0 and 3', async () => {
    const ok = await ssh(['echo out; echo err >&2']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.toString(), 'out\n');
    assert.equal(ok.stderr, 'err\n');
    assert.equal((await ssh(['exit 3'])).code, 3);
  });

  it('pipes stdin to the command and propagates EOF', async () => {
    const r = await ssh(['cat'], { input: 'hi\n' });
    assert.equal(r.stdout.toString(), 'hi\n');
    assert.equal(r.code, 0);
  });

  it('sets the login environment and accepts only allow-listed client variables', async () => {
    const r = await ssh(
      [
        '-o',
        'SendEnv=LANG',
        '-o',
        'SendEnv=FOO',
        'echo "$HOME|$USER|$LOGNAME|$SHELL|$LANG|$FOO|$WARD_USER|$SSH_CONNECTION"',
      ],
      {
        env: { LANG: 'C.UTF-8', FOO: 'leak' },
      },
    );
    const [home, user, logname, shell, lang, foo, wardUser, conn] = r.stdout.toString().trim().split('|');
    assert.equal(home, os.userInfo().homedir);
    assert.equal(user, 'root');
    assert.equal(logname, 'root');
    assert.ok(shell?.startsWith('/'));
    assert.equal(lang, 'C.UTF-8');
    assert.equal(foo, '');
    assert.equal(wardUser, 'alice');
    assert.match(conn ?? '', new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${port}$`));
  });

  it('does not leak the node process environment into sessions', async () => {
    process.env.WARD_NODE_SECRET = 'secret';
    try {
      const r = await ssh(['env']);
      assert.doesNotMatch(r.stdout.toString(), /WARD_NODE_SECRET/);
    } finally {
      delete process.env.WARD_NODE_SECRET;
    }
  });

  it('gives a PTY with the client TERM', async () => {
    const r = await ssh(['-tt', 'tty; echo "term=$TERM"'], { env: { TERM: 'xterm-256color' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /\/dev\/pts\/\d+/);
    assert.match(r.stdout.toString(), /term=xterm-256color/);
  });

  it('refuses a PTY when not permitted', async () => {
    permits.pty = false;
    try {
      const r = await ssh(['-tt', 'tty']);
      assert.match(r.stderr, /PTY allocation request failed/);
      assert.doesNotMatch(r.stdout.toString(), /\/dev\/pts/);
    } finally {
      permits.pty = true;
    }
  });

  it('ends `cat /dev/zero | head -c` (eow@openssh.com closes the command output)', async () => {
    // timeout(1) kills the whole pipeline on a hang, so a regression fails instead of passing late.
    for (const tty of [[], ['-tt']]) {
      const cmd =
        `ssh ${clientOpts().join(' ')} ${tty.join(' ')} -p ${port} root@127.0.0.1 'cat /dev/zero' | ` +
        `head -c 1000000 | wc -c`;
      const r = await run('timeout', ['10', 'bash', '-c', cmd]);
      assert.equal(r.code, 0, `pipeline did not end: ${r.stderr}`);
      assert.equal(r.stdout.toString().trim(), '1000000');
    }
  });

  it('kills the session processes when the connection drops', async () => {
    const client = spawn('ssh', [...clientOpts(), '-p', String(port), 'root@127.0.0.1', 'sleep 300 & echo $!; wait'], {
      stdio: 'pipe',
    });
    const pid = await new Promise<number>((resolve) =>
      client.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    assert.ok(pid > 0);
    process.kill(pid, 0); // running
    client.kill('SIGKILL');
    const deadline = Date.now() + 5000;
    let alive = true;
    while (alive && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
    }
    assert.equal(alive, false, 'sleep survived the dropped connection');
  });

  it('puts and gets a file with sftp -b', async () => {
    const src = path.join(dir, 'sftp-src');
    fs.writeFileSync(src, crypto.randomBytes(100_000));
    const batch = path.join(dir, 'batch');
    fs.writeFileSync(batch, `put ${src} ${dir}/sftp-up\nget ${dir}/sftp-up ${dir}/sftp-down\n`);
    const r = await run('sftp', [...clientOpts(), '-P', String(port), '-b', batch, 'root@127.0.0.1']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.readFileSync(src).equals(fs.readFileSync(`${dir}/sftp-down`)));
  });

  for (const legacy of [false, true]) {
    it(
      'copies 10 MB byte-identical both ways with scp' + (legacy ? ' -O (legacy scp -t/-f over exec)' : ' (SFTP)'),
      async () => {
        const tag = legacy ? 'legacy' : 'sftp';
        const src = path.join(dir, `scp-src-${tag}`);
        fs.writeFileSync(src, crypto.randomBytes(10 * 1024 * 1024));
        const base = [...clientOpts(), '-P', String(port), ...(legacy ? ['-O'] : [])];
        const up = await run('scp', [...base, src, `root@127.0.0.1:${dir}/scp-up-${tag}`]);
        assert.equal(up.code, 0, up.stderr);
        const down = await run('scp', [...base, `root@127.0.0.1:${dir}/scp-up-${tag}`, `${dir}/scp-down-${tag}`]);
        assert.equal(down.code, 0, down.stderr);
        const want = fs.readFileSync(src);
        assert.ok(want.equals(fs.readFileSync(`${dir}/scp-up-${tag}`)));
        assert.ok(want.equals(fs.readFileSync(`${dir}/scp-down-${tag}`)));
      },
    );
  }

  it('forwards a local port (-L) to an HTTP server', async () => {
    const local = await freePort();
    const client = spawn(
      'ssh',
      [
        ...clientOpts(),
        '-p',
        String(port),
        '-N',
        '-o',
        'ExitOnForwardFailure=yes',
        '-L',
        `${local}:127.0.0.1:${webPort}`,
        'root@127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    try {
      assert.equal(await httpGet(`http://127.0.0.1:${local}/`, 5000), 'hello from the web server\n');
    } finally {
      client.kill();
    }
    assert.ok(events.some((e) => e.event === 'port' && e.fields.success === true && e.fields.kind === 'local'));
  });

  it('forwards a remote port (-R) back to the client side', async () => {
    const remote = await freePort();
    const r = await ssh([
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      `${remote}:127.0.0.1:${webPort}`,
      `curl -s http://127.0.0.1:${remote}/`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'hello from the web server\n');
  });

  it('binds a remote forward to loopback whatever address the client asks, as sshd with GatewayPorts no', async () => {
    // OpenSSH sends "0.0.0.0", "" (for "*"), "localhost" (no address) and "127.0.0.1"/"::1" as written.
    const cases = [
      ['0.0.0.0:', ['127.0.0.1', '::1']],
      ['*:', ['127.0.0.1', '::1']],
      ['', ['127.0.0.1', '::1']],
      ['127.0.0.1:', ['127.0.0.1']],
      ['[::1]:', ['::1']],
    ] as const;
    for (const [bind, want] of cases) {
      const fwd = await remoteForward(`${bind}0:127.0.0.1:${webPort}`);
      try {
        assert.deepEqual(listeningOn(fwd.port), want, `ssh -R ${bind}0:...`);
        const host = want[0] === '::1' ? '[::1]' : '127.0.0.1';
        assert.equal(await httpGet(`http://${host}:${fwd.port}/`, 5000), 'hello from the web server\n');
      } finally {
        fwd.stop();
      }
    }
    // The audit event names where it listened.
    const bound = events.filter((e) => e.event === 'port' && e.fields.addr === '0.0.0.0:0' && e.fields.success);
    const hosts = (bound.at(-1)!.fields.bound as string[]).map((a) => a.replace(/:\d+$/, ''));
    assert.deepEqual(hosts, ['127.0.0.1', '[::1]']);
  });

  it('binds where the client asks when a role allows it, as sshd with GatewayPorts clientspecified', async () => {
    permits.gateway = true;
    try {
      const cases = [
        ['0.0.0.0:', ['0.0.0.0']],
        ['*:', ['0.0.0.0', '::']],
        ['', ['127.0.0.1', '::1']],
      ] as const;
      for (const [bind, want] of cases) {
        const fwd = await remoteForward(`${bind}0:127.0.0.1:${webPort}`);
        try {
          assert.deepEqual(listeningOn(fwd.port), want, `ssh -R ${bind}0:...`);
          assert.equal(await httpGet(`http://127.0.0.1:${fwd.port}/`, 5000), 'hello from the web server\n');
        } finally {
          fwd.stop();
        }
      }
    } finally {
      permits.gateway = false;
    }
  });

  it('refuses port forwarding when the roles do not permit it', async () => {
    permits.port = false;
    try {
      const remote = await freePort();
      const r = await ssh(['-o', 'ExitOnForwardFailure=yes', '-R', `${remote}:127.0.0.1:${webPort}`, 'true']);
      assert.equal(r.code, 255);
      const w = await ssh(['-W', `127.0.0.1:${webPort}`]);
      assert.equal(w.code, 255);
      assert.match(w.stderr, /stdio forwarding failed|prohibited/);
      const denied = events.filter((e) => e.event === 'port' && e.fields.success === false);
      assert.ok(denied.some((e) => e.fields.kind === 'remote'));
      assert.ok(denied.some((e) => e.fields.kind === 'local'));
    } finally {
      permits.port = true;
    }
  });

  it('forwards the client agent (-A) to a socket only the login can use', async () => {
    const agentSock = path.join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 50 && !fs.existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 50));
      const add = await run('ssh-add', [path.join(dir, 'key')], { env: { SSH_AUTH_SOCK: agentSock } });
      assert.equal(add.code, 0, add.stderr);
      const args = [
        '-F',
        '/dev/null',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'BatchMode=yes',
        '-o',
        'LogLevel=ERROR',
        '-A',
        '-p',
        String(port),
        'root@127.0.0.1',
        'stat -c %a "$SSH_AUTH_SOCK"; ssh-add -l',
      ];
      const r = await run('ssh', args, { env: { SSH_AUTH_SOCK: agentSock } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.toString(), /^600\n/);
      assert.match(r.stdout.toString(), /ED25519/);
      permits.agent = false;
      const refused = await run('ssh', [...args.slice(0, -1), 'echo "sock=$SSH_AUTH_SOCK"'], {
        env: { SSH_AUTH_SOCK: agentSock },
      });
      assert.equal(refused.stdout.toString(), 'sock=\n');
    } finally {
      permits.agent = true;
      agent.kill();
    }
  });

  it('refuses a certificate from another CA', async () => {
    const other = softwareSigner(crypto.generateKeyPairSync('ed25519').privateKey);
    const key = await writeIdentity('foreign', other, ['root']);
    const r = await ssh(['true'], { key });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied/);
    assert.ok(
      events.some(
        (e) =>
          e.event === 'auth' &&
          e.fields.success === false &&
          /trusted certificate authority/.test(String(e.fields.reason)),
      ),
    );
  });

  it('refuses a plain key without a certificate', async () => {
    const key = await writeIdentity('plain', null, []);
    const r = await ssh(['true'], { key });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied/);
  });

  it('refuses a login with no OS account even when the certificate lists it', async () => {
    const r = await ssh(['true'], { login: 'nosuchuserxyz' });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied/);
  });

  it('survives garbage and drops peers that never finish the handshake', async () => {
    const strict = createNodeSSHServer({
      hostKeys: [formatOpenSSHPrivateKey(crypto.generateKeyPairSync('ed25519').privateKey)],
      log: pino({ level: 'silent' }),
      authorize: async () => ({ allowed: false, reason: 'test' }),
      limits: { handshakeTimeoutMs: 300 },
    });
    const addr = await strict.listen('127.0.0.1:0');
    try {
      const closed = (sock: net.Socket): Promise<number> => {
        const t0 = Date.now();
        sock.resume(); // read the server's version line, or 'end' (and so 'close') never comes
        return new Promise((resolve) => sock.on('error', () => {}).on('close', () => resolve(Date.now() - t0)));
      };
      const silent = net.connect(addr.port, '127.0.0.1');
      const garbage = net.connect(addr.port, '127.0.0.1', () => garbage.write('SSH-2.0-x\r\n' + 'A'.repeat(70_000)));
      assert.ok((await closed(silent)) < 3000);
      await closed(garbage);
      // Still serving: the real client gets as far as authentication.
      const r = await ssh(['true'], { port: addr.port });
      assert.match(r.stderr, /Permission denied/);
    } finally {
      await strict.close();
    }
  });

  it('ends a connection after idleTimeoutMs without client input; keepalives do not count, input does', async () => {
    const IDLE_MS = 1_500;
    const idle = createNodeSSHServer({
      hostKeys: [formatOpenSSHPrivateKey(crypto.generateKeyPairSync('ed25519').privateKey)],
      log: pino({ level: 'silent' }),
      onEvent: (event, fields) => events.push({ event, fields }),
      authorize,
      limits: { idleTimeoutMs: IDLE_MS },
    });
    const idlePort = (await idle.listen('127.0.0.1:0')).port;
    try {
      const t0 = Date.now();
      const quiet = await ssh(['-o', 'ServerAliveInterval=1', 'sleep 10; echo survived'], { port: idlePort });
      assert.equal(quiet.code, 255, 'the idle connection was ended');
      assert.equal(quiet.stdout.toString(), '');
      assert.ok(Date.now() - t0 < 6_000, `ended after ${Date.now() - t0} ms`);
      assert.ok(events.some((e) => e.event === 'session.idle_timeout' && e.fields.login === 'root'));

      // Input every 500 ms for twice the idle time keeps the connection, and `cat` echoes all of it.
      const busy = spawn('ssh', [...clientOpts(), '-p', String(idlePort), 'root@127.0.0.1', 'cat'], { stdio: 'pipe' });
      let out = '';
      busy.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => busy.once('close', resolve));
      const killer = setTimeout(() => busy.kill('SIGKILL'), 20_000);
      for (let i = 0; i < 6; i++) {
        busy.stdin.write(`line ${i}\n`);
        await new Promise((r) => setTimeout(r, 500));
      }
      busy.stdin.end();
      assert.equal(await exited, 0);
      clearTimeout(killer);
      assert.equal(out, [0, 1, 2, 3, 4, 5].map((i) => `line ${i}\n`).join(''));
    } finally {
      await idle.close();
    }
  });

  it('serves a stream handed over with injectSocket (a reverse-tunnel stream)', async () => {
    // A separate listener stands in for the reverse tunnel; each socket is wrapped in a plain Duplex
    // (not a net.Socket), as an HTTP/2 tunnel stream would be.
    const tunnel = net.createServer((sock) => {
      const stream = new Duplex({
        read() {
          sock.resume();
        },
        write(chunk, _enc, cb) {
          sock.write(chunk, cb);
        },
        final(cb) {
          sock.end();
          cb();
        },
        destroy(err, cb) {
          sock.destroy();
          cb(err);
        },
      });
      sock.on('data', (d) => {
        if (!stream.push(d)) sock.pause();
      });
      sock.on('end', () => stream.push(null));
      sock.on('close', () => stream.destroy());
      server.injectSocket(stream, '192.0.2.7');
    });
    await new Promise<void>((resolve) => tunnel.listen(0, '127.0.0.1', resolve));
    try {
      const r = await ssh(['echo "via tunnel $SSH_CLIENT"'], { port: (tunnel.address() as net.AddressInfo).port });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.toString(), /^via tunnel 192\.0\.2\.7 /);
    } finally {
      tunnel.close();
    }
  });

  it('runs sessions as a non-root login with its own uid, groups, home and tty', {
    skip: !userCreated && 'useradd failed (not root?)',
  }, async () => {
    const r = await ssh(['id -un; id -G; pwd; echo "$HOME"'], { login: testUser });
    assert.equal(r.code, 0, r.stderr);
    const [name, groups, pwd, home] = r.stdout.toString().trim().split('\n');
    assert.equal(name, testUser);
    assert.ok(!groups!.split(' ').includes('0'), `root group leaked: ${groups}`);
    assert.equal(pwd, `/home/${testUser}`);
    assert.equal(home, `/home/${testUser}`);
    const t = await ssh(['-tt', 'stat -c %U "$(tty)"'], { login: testUser });
    assert.match(t.stdout.toString(), new RegExp(testUser));
    const up = await run('scp', [
      ...clientOpts(),
      '-P',
      String(port),
      path.join(dir, 'sftp-src'),
      `${testUser}@127.0.0.1:upload`,
    ]);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(fs.statSync(`/home/${testUser}/upload`).uid, Number(execFileSync('id', ['-u', testUser]).toString()));
  });
});

// Window changes and signals need a client that sends them on demand, which OpenSSH's does not: these
// use ssh2's client with a user certificate (Ward's ssh2 patch), against the same server.
describe('requests the OpenSSH client cannot send on demand', () => {
  async function connect(): Promise<import('ssh2').Client> {
    const { default: ssh2 } = await import('ssh2');
    const keyFile = path.join(dir, 'key');
    const certLine = fs.readFileSync(`${keyFile}-cert.pub`, 'utf8').trim().split(' ');
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({
        host: '127.0.0.1',
        port,
        username: 'root',
        readyTimeout: 10_000,
        privateKey: fs.readFileSync(keyFile),
        certificate: Buffer.from(certLine[1]!, 'base64'),
      } as import('ssh2').ConnectConfig);
    });
    return client;
  }

  it('resizes the PTY on window-change', async () => {
    const client = await connect();
    try {
      const out = await new Promise<string>((resolve, reject) => {
        client.shell({ rows: 24, cols: 80, term: 'xterm' }, (err, stream) => {
          if (err) return reject(err);
          let text = '';
          stream.on('data', (d: Buffer) => {
            text += d.toString();
            if (/\b24 80\b/.test(text) && !text.includes('resized')) {
              stream.setWindow(40, 120, 0, 0);
              setTimeout(() => stream.write('echo resized; stty size; exit\n'), 200);
            }
          });
          stream.on('close', () => resolve(text));
          stream.write('stty size\n');
        });
      });
      assert.match(out, /\b24 80\b/);
      assert.match(out, /resized[\s\S]*\b40 120\b/);
    } finally {
      client.end();
    }
  });

  it('delivers a signal to the command and reports the exit signal', async () => {
    const client = await connect();
    try {
      const exit = await new Promise<{ code: number | null; signal?: string }>((resolve, reject) => {
        client.exec('echo started; sleep 30', (err, stream) => {
          if (err) return reject(err);
          stream.on('data', (d: Buffer) => {
            if (d.toString().includes('started')) stream.signal('TERM');
          });
          stream.on('exit', (code: number | null, signal?: string) => resolve({ code, signal }));
        });
      });
      // RFC 4254 6.10 sends "TERM" on the wire; ssh2's client reports it with the SIG prefix.
      assert.deepEqual(exit, { code: null, signal: 'SIGTERM' });
    } finally {
      client.end();
    }
  });
});
