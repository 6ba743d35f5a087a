// File transfer paths that try to leave what the OS login may touch: `..`, symlinks and NUL bytes, with
// real OpenSSH sftp and scp (SFTP and legacy scp protocol) and with ssh2's client for what OpenSSH will
// not send. The node runs sftp-server and scp as the login (setpriv), so the OS is the boundary: a
// throwaway OS user reads what the world may read, and never a root-only file however the path is spelt.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ssh2 from 'ssh2';
import { cleanup, makeTempDir, run, type Cluster } from '../harness.ts';
import { ok, startTarget, type Target } from './fixture.ts';
import { assertSettled, readVitals, type Vitals } from './vitals.ts';

let target: Target;
let cluster: Cluster;
let work: string;
let baseline: Vitals;
const osUser = `wardsec${randomBytes(3).toString('hex')}`;
let osHome: string;
/** A root-only file outside the login's home, and its contents. */
let secret: { path: string; text: string };
/** Keys and ssh_config that `wsh login` gave a Ward user whose one login is `osUser`. */
let cfg: string;
let keyFile: string;
let nodePort: string;

before(async () => {
  work = makeTempDir('ward-sec-paths-');
  ok(await run('useradd', ['--create-home', '--shell', '/bin/sh', osUser]));
  osHome = `/home/${osUser}`;
  secret = {
    path: join('/tmp', `ward-sec-secret-${randomBytes(4).toString('hex')}`),
    text: `secret-${randomBytes(8).toString('hex')}`,
  };
  writeFileSync(secret.path, secret.text, { mode: 0o600 });
  chmodSync(secret.path, 0o600);
  symlinkSync(secret.path, join(osHome, 'link-to-secret'));
  writeFileSync(join(osHome, 'mine.txt'), 'mine');
  ok(await run('chown', [`${osUser}:${osUser}`, join(osHome, 'mine.txt')]));

  target = await startTarget();
  cluster = target.cluster;
  nodePort = cluster.nodeAddr.split(':')[1]!;
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  ok(
    await cluster.wctl(['users', 'add', 'sec', '--roles', 'access', '--logins', osUser, '--password-stdin'], {
      stdin: `${password}\n`,
    }),
  );
  const home = cluster.newWshHome();
  const out = ok(
    await cluster.wsh(
      home,
      ['login', '--proxy', cluster.proxyAddr, '--user', 'sec', '--password-stdin', '--ca-pin', cluster.caPin],
      { stdin: `${password}\n` },
    ),
  );
  const keys = /Keys: (\S+)/.exec(out)?.[1];
  assert.ok(keys, out);
  keyFile = join(keys, 'id');
  cfg = join(work, 'ssh_config');
  writeFileSync(
    cfg,
    [
      'Host *',
      `  IdentityFile ${keyFile}`,
      `  CertificateFile ${keyFile}-cert.pub`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${join(keys, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  ConnectTimeout 10',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
  );
  baseline = readVitals(cluster.pid);
});

after(async () => {
  await cleanup();
  await run('userdel', ['--remove', osUser]).catch(() => undefined);
  await run('rm', ['-f', secret.path]).catch(() => undefined);
});

/** `sftp -b` with a batch of commands, straight to the node's port as the throwaway login. */
function sftp(batch: string[]) {
  const file = join(work, `batch-${randomBytes(4).toString('hex')}`);
  writeFileSync(file, batch.join('\n') + '\n');
  return run('sftp', ['-F', cfg, '-P', nodePort, '-b', file, `${osUser}@127.0.0.1`], { cwd: work, timeoutMs: 20_000 });
}
function scp(args: string[]) {
  return run('scp', ['-F', cfg, '-P', nodePort, ...args], { cwd: work, timeoutMs: 20_000 });
}
const remote = (path: string) => `${osUser}@127.0.0.1:${path}`;

describe('file transfer paths', () => {
  it('lets the login read its own files and world-readable ones through `..` (the control case)', async () => {
    ok(await sftp(['get mine.txt got-mine.txt', 'get ../../etc/hostname got-hostname']));
    assert.equal(readFileSync(join(work, 'got-mine.txt'), 'utf8'), 'mine');
    assert.equal(readFileSync(join(work, 'got-hostname'), 'utf8'), readFileSync('/etc/hostname', 'utf8'));
    // And root can read the secret: it exists, so the refusals below are about rights.
    assert.equal(readFileSync(secret.path, 'utf8'), secret.text);
  });

  it('refuses a root-only file through `..` and through a symlink, with sftp', async () => {
    for (const path of [`../..${secret.path}`, `../../../../../../..${secret.path}`, 'link-to-secret', secret.path]) {
      const r = await sftp([`get ${path} stolen`]);
      assert.notEqual(r.code, 0, `sftp get ${path} succeeded`);
      assert.match(r.stderr, /Permission denied/, path);
      assert.equal(existsSync(join(work, 'stolen')), false);
    }
  });

  it(
    'refuses a root-only file through `..` and through a symlink, with scp over SFTP and over the legacy ' +
      'scp protocol',
    async () => {
      for (const mode of [[], ['-O']]) {
        for (const path of [`../..${secret.path}`, 'link-to-secret']) {
          const r = await scp([...mode, remote(path), join(work, 'stolen')]);
          assert.notEqual(r.code, 0, `scp ${mode.join(' ')} ${path} succeeded`);
          assert.match(r.stderr, /Permission denied/, `scp ${mode.join(' ')} ${path}: ${r.stderr}`);
          assert.equal(existsSync(join(work, 'stolen')), false);
        }
      }
    },
  );

  it('refuses to write outside what the login may write, through `..` and through a symlink', async () => {
    writeFileSync(join(work, 'payload'), 'owned');
    const outside = `/etc/ward-sec-${randomBytes(4).toString('hex')}`;
    const put = await sftp([`put payload ../..${outside}`]);
    assert.notEqual(put.code, 0);
    for (const mode of [[], ['-O']]) {
      const r = await scp([...mode, join(work, 'payload'), remote(`../..${outside}`)]);
      assert.notEqual(r.code, 0, `scp ${mode.join(' ')} upload succeeded`);
      const overLink = await scp([...mode, join(work, 'payload'), remote('link-to-secret')]);
      assert.notEqual(overLink.code, 0, `scp ${mode.join(' ')} through the symlink succeeded`);
    }
    assert.equal(existsSync(outside), false, `${outside} was written`);
    assert.equal(readFileSync(secret.path, 'utf8'), secret.text, 'the root-only file was overwritten');
  });

  it('keeps paths and commands with NUL bytes confined, and refuses a command with one (ssh2 client)', async () => {
    const certLine = readFileSync(`${keyFile}-cert.pub`, 'utf8').trim().split(' ');
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({
        host: '127.0.0.1',
        port: Number(nodePort),
        username: osUser,
        readyTimeout: 10_000,
        privateKey: readFileSync(keyFile),
        certificate: Buffer.from(certLine[1]!, 'base64'),
      } as ssh2.ConnectConfig);
    });
    try {
      // OpenSSH's sftp-server refuses a string with a NUL inside (sshbuf_get_cstring) and ends the
      // session: nothing is read, whatever follows the NUL. One session per path, then.
      for (const path of [
        'mine.txt\0../../etc/shadow',
        'link-to-secret\0',
        `../..${secret.path}\0.txt`,
        `mine.txt/../../..${secret.path}\0`,
      ]) {
        const session = await new Promise<ssh2.SFTPWrapper>((resolve, reject) =>
          client.sftp((err, s) => (err ? reject(err) : resolve(s))),
        );
        const got = await new Promise<Buffer | Error>((resolve) =>
          session.readFile(path, (err, data) => resolve(err ?? data)),
        );
        assert.ok(got instanceof Error, `read ${JSON.stringify(path)}: ${String(got)}`);
        session.end();
      }
      // A command with a NUL byte is refused outright (it could not be passed to a shell as it was asked).
      const refused = await new Promise<boolean>((resolve) => {
        client.exec(`cat ${secret.path}\0; id`, (err, stream) => {
          if (err) return resolve(true);
          stream.resume();
          stream.on('close', () => resolve(false));
        });
      });
      assert.equal(refused, true, 'a command with a NUL byte ran');
    } finally {
      client.end();
    }
  });

  it('is still up, serves a real user, and has given back its descriptors and memory', async () => {
    await target.assertServing();
    await assertSettled(cluster, baseline);
    assert.equal(readFileSync(secret.path, 'utf8'), secret.text);
  });
});
