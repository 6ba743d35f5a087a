// ssh2 with OpenSSH certificates (patches/ssh2+1.17.0.patch, PROTOCOL.certkeys), proven against real OpenSSH 9.2:
// `ssh` logs in to an ssh2 Server with a user cert and trusts its host cert through @cert-authority; the ssh2
// Client logs in to real `sshd` with a user cert and hands sshd's host cert to hostVerifier; `eow@openssh.com`.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import ssh2 from 'ssh2';
import type { AuthContext, ConnectConfig, Connection, ParsedKey, ServerChannel } from 'ssh2';
import {
  parseCertificate,
  signCertificate,
  softwareSigner,
  verifyCertificate,
  type CertType,
  type SSHSigner,
} from '../crypto/sshcert.ts';
import {
  CERT_SUFFIX,
  ECDSA_P256,
  ED25519,
  formatAuthorizedKey,
  formatOpenSSHPrivateKey,
  sshPublicKeyBlob,
  verifySSHSignature,
} from '../crypto/sshkeys.ts';

const { Client, Server, utils } = ssh2;
const WAIT = 15_000; // every wait on a peer is bounded by this

// The options the patch adds, which @types/ssh2 does not know.
type CertConnectConfig = Omit<ConnectConfig, 'algorithms'> & {
  certificate?: Buffer;
  algorithms?: { serverHostKey?: string[] };
};
interface CertHostKey {
  key: string | Buffer;
  certificate?: Buffer;
}

const KINDS = {
  ed25519: { type: ED25519, gen: () => crypto.generateKeyPairSync('ed25519').privateKey },
  ecdsa: { type: ECDSA_P256, gen: () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey },
} as const;
type Kind = keyof typeof KINDS;
const certAlgo = (kind: Kind) => KINDS[kind].type + CERT_SUFFIX;

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ward-ssh2-certs-'));
});
const cleanups: (() => void)[] = [];
after(() => {
  for (const fn of cleanups.reverse()) fn();
  fs.rmSync(dir, { recursive: true, force: true });
});

function file(name: string, content: string | Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content, { mode: 0o600 });
  return p;
}

async function issue(key: crypto.KeyObject, ca: SSHSigner, certType: CertType, principals: string[]): Promise<Buffer> {
  const now = Date.now();
  return signCertificate(
    {
      publicKey: sshPublicKeyBlob(key),
      serial: 7n,
      certType,
      keyId: certType === 'user' ? 'alice@ward' : 'node-1',
      principals,
      validAfter: new Date(now - 60_000),
      validBefore: new Date(now + 3_600_000),
      extensions: certType === 'user' ? { 'permit-pty': '' } : {},
    },
    ca,
  );
}

function newCA(kind: Kind = 'ed25519'): { signer: SSHSigner; blob: Buffer } {
  const signer = softwareSigner(KINDS[kind].gen());
  return { signer, blob: signer.publicKeyBlob };
}

/** Writes NAME, NAME.pub and (with a cert) NAME-cert.pub, the layout `ssh -i NAME` and sshd read. */
function writeIdentity(name: string, key: crypto.KeyObject, cert?: Buffer): string {
  const p = file(name, formatOpenSSHPrivateKey(key));
  file(`${name}.pub`, formatAuthorizedKey(sshPublicKeyBlob(key)) + '\n');
  if (cert) file(`${name}-cert.pub`, formatAuthorizedKey(cert) + '\n');
  return p;
}

interface SSHResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runSSH(args: string[]): Promise<SSHResult> {
  const base = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none'];
  const child = spawn('/usr/bin/ssh', [...base, '-o', 'ConnectTimeout=10', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), WAIT);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---- an ssh2 Server doing what a Ward node does with user certificates -------------------------------------

interface AuthRecord {
  algo: string;
  signed: boolean;
  result: 'accepted' | 'cert refused' | 'bad signature' | 'not a cert';
  blob?: Buffer;
  signature?: Buffer;
  cert?: Buffer;
}

interface TestServer {
  port: number;
  auths: AuthRecord[];
  eows: number;
}

interface ServerOptions {
  hostKeys: (string | Buffer | CertHostKey)[];
  userCA: Buffer;
  ident?: string;
  /** Handles an exec instead of answering "ok"; receives the channel. */
  exec?: (stream: ServerChannel, t: TestServer) => void;
}

/**
 * On the unsigned request: parse and verify the certificate, then accept (PK_OK). On the signed request:
 * verify it again and check `ctx.signature` (the whole SSH signature blob) over `ctx.blob` with the CERTIFIED key.
 */
function authenticate(ctx: AuthContext, userCA: Buffer, auths: AuthRecord[]): void {
  if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
  const record: AuthRecord = { algo: ctx.key.algo, signed: ctx.signature !== undefined, result: 'not a cert' };
  auths.push(record);
  if (!ctx.key.algo.endsWith(CERT_SUFFIX)) return ctx.reject(['publickey']);
  let cert;
  try {
    cert = parseCertificate(ctx.key.data);
    if (cert.keyType !== ctx.key.algo) throw new Error('algorithm does not match the certificate');
    verifyCertificate(cert, { trustedCAs: [userCA], now: new Date(), certType: 'user', principal: ctx.username });
  } catch {
    record.result = 'cert refused';
    return ctx.reject(['publickey']);
  }
  if (ctx.signature === undefined || ctx.blob === undefined) {
    record.result = 'accepted';
    return ctx.accept();
  }
  Object.assign(record, { blob: ctx.blob, signature: ctx.signature, cert: cert.blob });
  if (!verifySSHSignature(cert.publicKey, ctx.blob, ctx.signature)) {
    record.result = 'bad signature';
    return ctx.reject(['publickey']);
  }
  record.result = 'accepted';
  ctx.accept();
}

async function startServer(opts: ServerOptions): Promise<TestServer> {
  const t: TestServer = { port: 0, auths: [], eows: 0 };
  const conns = new Set<Connection>();
  const config = { hostKeys: opts.hostKeys, ...(opts.ident ? { ident: opts.ident } : {}) };
  const server = new Server(config as ssh2.ServerConfig, (conn) => {
    conns.add(conn);
    conn.on('error', () => {});
    conn.on('close', () => conns.delete(conn));
    conn.on('authentication', (ctx) => authenticate(ctx, opts.userCA, t.auths));
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', (accept) => {
          const stream = accept();
          stream.on('eow', () => t.eows++);
          if (opts.exec) return opts.exec(stream, t);
          stream.write('ok\n');
          stream.exit(0);
          stream.end();
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.port = (server.address() as net.AddressInfo).port;
  cleanups.push(() => {
    for (const c of conns) c.end();
    server.close();
  });
  return t;
}

// `extra` comes first: for each option, ssh uses the first value it is given.
function sshTo(t: TestServer, identity: string, knownHosts: string, extra: string[] = []): string[] {
  return [
    ...extra,
    '-i',
    identity,
    '-p',
    String(t.port),
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    'alice@127.0.0.1',
    'echo ok',
  ];
}

// ---- (1) the ssh2 Server accepts user certificates ------------------------------------------------------------

describe('ssh2 Server: user certificates from real ssh', () => {
  const userCA = newCA();
  const hostKey = KINDS.ed25519.gen();
  const hostCA = newCA();
  let knownHosts = '';
  let t: TestServer;
  before(async () => {
    const hostCert = await issue(hostKey, hostCA.signer, 'host', ['127.0.0.1']);
    knownHosts = file('known_hosts_user', `@cert-authority * ${formatAuthorizedKey(hostCA.blob)}\n`);
    t = await startServer({
      hostKeys: [{ key: formatOpenSSHPrivateKey(hostKey), certificate: hostCert }],
      userCA: userCA.blob,
    });
  });

  for (const kind of ['ed25519', 'ecdsa'] as const) {
    it(`logs in real ssh with an ${kind} user certificate, checking its signature with the certified key`, async () => {
      const key = KINDS[kind].gen();
      const id = writeIdentity(`user-${kind}`, key, await issue(key, userCA.signer, 'user', ['alice']));
      t.auths.length = 0;
      const r = await runSSH(sshTo(t, id, knownHosts));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'ok\n');
      const signed = t.auths.find((a) => a.signed);
      assert.ok(signed, 'ssh sent a signed publickey request');
      assert.equal(signed.algo, certAlgo(kind));
      assert.equal(signed.result, 'accepted');

      // The captured signature verifies only with the certified key, only over these exact bytes.
      const { blob, signature, cert } = signed as Required<AuthRecord>;
      const certified = parseCertificate(cert).publicKey;
      assert.ok(certified.equals(sshPublicKeyBlob(key)));
      assert.equal(verifySSHSignature(certified, blob, signature), true);
      assert.equal(
        verifySSHSignature(sshPublicKeyBlob(KINDS[kind].gen()), blob, signature),
        false,
        'another key of the same type',
      );
      assert.equal(verifySSHSignature(userCA.blob, blob, signature), false, 'the CA key');
      const tampered = Buffer.from(blob);
      tampered[tampered.length - 1]! ^= 1;
      assert.equal(verifySSHSignature(certified, tampered, signature), false, 'other signed bytes');
    });
  }

  it('refuses real ssh with a user certificate from a foreign CA', async () => {
    const key = KINDS.ed25519.gen();
    const id = writeIdentity('user-foreign', key, await issue(key, newCA().signer, 'user', ['alice']));
    t.auths.length = 0;
    const r = await runSSH(sshTo(t, id, knownHosts));
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
    assert.ok(t.auths.some((a) => a.algo === certAlgo('ed25519') && a.result === 'cert refused'));
    assert.ok(!t.auths.some((a) => a.result === 'accepted'));
  });

  it('refuses a certificate whose signature was made by another key than the certified one', async () => {
    const key = KINDS.ed25519.gen();
    const cert = await issue(key, userCA.signer, 'user', ['alice']);
    const login = (sign: 'certified key' | 'another key') =>
      new Promise<string>((resolve) => {
        // A parsed key whose public half is the certified key; it signs with `sign`.
        const parsed = utils.parseKey(formatOpenSSHPrivateKey(key)) as ParsedKey;
        if (sign === 'another key') {
          const other = utils.parseKey(formatOpenSSHPrivateKey(KINDS.ed25519.gen())) as ParsedKey;
          parsed.sign = other.sign.bind(other);
        }
        const c = new Client();
        const timer = setTimeout(() => c.end(), WAIT);
        const done = (how: string) => {
          clearTimeout(timer);
          c.end();
          resolve(how);
        };
        c.on('ready', () => done('ready')).on('error', (err) => done(err.message));
        c.connect({
          host: '127.0.0.1',
          port: t.port,
          username: 'alice',
          authHandler: [{ type: 'publickey', username: 'alice', key: parsed, certificate: cert }],
          hostVerifier: () => true,
        } as unknown as ConnectConfig);
      });
    t.auths.length = 0;
    assert.equal(await login('another key'), 'All configured authentication methods failed');
    assert.ok(t.auths.some((a) => a.signed && a.result === 'bad signature'));
    assert.ok(!t.auths.some((a) => a.result === 'accepted' && a.signed));
    assert.equal(await login('certified key'), 'ready', 'the same client signing with the certified key logs in');
  });
});

// ---- (2) the ssh2 Server presents a host certificate ----------------------------------------------------------

describe('ssh2 Server: host certificates checked by real ssh', () => {
  const userCA = newCA();
  const hostCA = newCA('ecdsa');
  let id = '';
  let knownHosts = '';
  before(async () => {
    const key = KINDS.ed25519.gen();
    id = writeIdentity('user-for-host', key, await issue(key, userCA.signer, 'user', ['alice']));
    knownHosts = file('known_hosts_ca', `@cert-authority * ${formatAuthorizedKey(hostCA.blob)}\n`);
  });

  for (const kind of ['ed25519', 'ecdsa'] as const) {
    it(`ssh trusts an ${kind} host certificate from the host CA without a prompt`, async () => {
      const hostKey = KINDS[kind].gen();
      const hostCert = await issue(hostKey, hostCA.signer, 'host', ['localhost', '127.0.0.1']);
      const t = await startServer({
        hostKeys: [{ key: formatOpenSSHPrivateKey(hostKey), certificate: hostCert }],
        userCA: userCA.blob,
      });
      const r = await runSSH(sshTo(t, id, knownHosts, ['-v']));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'ok\n');
      assert.match(r.stderr, new RegExp(`kex: host key algorithm: ${certAlgo(kind)}`));
      assert.match(r.stderr, /Server host certificate: .*ID "node-1"/);
      assert.match(r.stderr, /is known and matches the .* host certificate/);
    });
  }

  it('ssh refuses a host certificate from a foreign CA', async () => {
    const hostKey = KINDS.ed25519.gen();
    const hostCert = await issue(hostKey, newCA().signer, 'host', ['localhost', '127.0.0.1']);
    const t = await startServer({
      hostKeys: [{ key: formatOpenSSHPrivateKey(hostKey), certificate: hostCert }],
      userCA: userCA.blob,
    });
    const r = await runSSH(sshTo(t, id, knownHosts));
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Host key verification failed/);
    assert.equal(t.auths.length, 0, 'no user authentication after a refused host');
  });

  it('ssh refuses a host certificate for another name', async () => {
    const hostKey = KINDS.ed25519.gen();
    const hostCert = await issue(hostKey, hostCA.signer, 'host', ['db.example.com']);
    const t = await startServer({
      hostKeys: [{ key: formatOpenSSHPrivateKey(hostKey), certificate: hostCert }],
      userCA: userCA.blob,
    });
    const r = await runSSH(sshTo(t, id, knownHosts));
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Host key verification failed/);
  });

  it('offers the plain key next to the certificate, for clients that pin the key', async () => {
    const hostKey = KINDS.ecdsa.gen();
    const hostCert = await issue(hostKey, hostCA.signer, 'host', ['127.0.0.1']);
    const t = await startServer({
      hostKeys: [{ key: formatOpenSSHPrivateKey(hostKey), certificate: hostCert }],
      userCA: userCA.blob,
    });
    const pinned = file(
      'known_hosts_pinned',
      `[127.0.0.1]:${t.port} ${formatAuthorizedKey(sshPublicKeyBlob(hostKey))}\n`,
    );
    const r = await runSSH(sshTo(t, id, pinned, ['-v']));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /kex: host key algorithm: ecdsa-sha2-nistp256\b/);
  });

  it('keeps plain host keys working', async () => {
    const hostKey = KINDS.ed25519.gen();
    const t = await startServer({ hostKeys: [formatOpenSSHPrivateKey(hostKey)], userCA: userCA.blob });
    const plain = file(
      'known_hosts_plain',
      `[127.0.0.1]:${t.port} ${formatAuthorizedKey(sshPublicKeyBlob(hostKey))}\n`,
    );
    const r = await runSSH(sshTo(t, id, plain, ['-v']));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /kex: host key algorithm: ssh-ed25519\b/);
  });

  it('refuses to configure a host certificate for another key', async () => {
    const cert = await issue(KINDS.ed25519.gen(), hostCA.signer, 'host', ['127.0.0.1']);
    const hostKeys = [{ key: formatOpenSSHPrivateKey(KINDS.ed25519.gen()), certificate: cert }];
    assert.throws(
      () => new Server({ hostKeys } as ssh2.ServerConfig),
      /Invalid host certificate: Certificate does not certify this key/,
    );
    const ecdsaKey = [{ key: formatOpenSSHPrivateKey(KINDS.ecdsa.gen()), certificate: cert }];
    assert.throws(
      () => new Server({ hostKeys: ecdsaKey } as ssh2.ServerConfig),
      /Invalid host certificate: Not a supported certificate/,
    );
  });
});

// ---- (3) the ssh2 Client: user certificate into real sshd, sshd's host certificate to hostVerifier ----------

const canRunSshd = process.getuid?.() === 0 && fs.existsSync('/usr/sbin/sshd');

describe('ssh2 Client: user certificates into real sshd', {
  skip: !canRunSshd && 'needs root and /usr/sbin/sshd',
}, () => {
  const userCA = newCA();
  const hostCA = newCA();
  const hostKeys = { ed25519: KINDS.ed25519.gen(), ecdsa: KINDS.ecdsa.gen() };
  let port = 0;

  before(async () => {
    const conf: string[] = [];
    for (const kind of ['ed25519', 'ecdsa'] as const) {
      const cert = await issue(hostKeys[kind], hostCA.signer, 'host', ['127.0.0.1']);
      const p = writeIdentity(`sshd-host-${kind}`, hostKeys[kind], cert);
      conf.push(`HostKey ${p}`, `HostCertificate ${p}-cert.pub`);
    }
    conf.push(
      `TrustedUserCAKeys ${file('user_ca.pub', formatAuthorizedKey(userCA.blob) + '\n')}`,
      'AuthorizedPrincipalsFile none', // the principals must name the login (root)
      'AuthorizedKeysFile none',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'ListenAddress 127.0.0.1',
      `PidFile ${path.join(dir, 'sshd.pid')}`,
    );
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
    port = await freePort();
    const sshd = spawn(
      '/usr/sbin/sshd',
      ['-D', '-e', '-f', file('sshd_config', conf.join('\n') + '\n'), '-p', String(port)],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    sshd.stderr.on('data', (d: Buffer) => (log += d));
    cleanups.push(() => sshd.kill());
    await waitForListen(sshd, port, () => log);
  });

  interface LoginResult {
    error?: string;
    stdout?: string;
    code?: number;
    hostKey?: Buffer;
  }

  function loginAndRun(
    config: CertConnectConfig,
    verify: (hostKey: Buffer) => boolean = () => true,
  ): Promise<LoginResult> {
    return new Promise((resolve) => {
      const result: LoginResult = {};
      const c = new Client();
      const timer = setTimeout(() => finish('timed out'), WAIT);
      const finish = (error?: string) => {
        clearTimeout(timer);
        if (error) result.error = error;
        c.end();
        resolve(result);
      };
      c.on('error', (err) => finish(err.message));
      c.on('ready', () => {
        c.exec('echo ok', (err, stream) => {
          if (err) return finish(err.message);
          let out = '';
          stream.on('data', (d: Buffer) => (out += d));
          stream.on('exit', (code: number) => (result.code = code));
          stream.on('close', () => {
            result.stdout = out;
            finish();
          });
        });
      });
      c.connect({
        host: '127.0.0.1',
        port,
        username: 'root',
        hostVerifier: (key: Buffer) => {
          result.hostKey = key;
          return verify(key);
        },
        ...config,
      } as ConnectConfig);
    });
  }

  const trustsHostCert = (ca: Buffer) => (key: Buffer) => {
    try {
      verifyCertificate(parseCertificate(key), {
        trustedCAs: [ca],
        now: new Date(),
        certType: 'host',
        principal: '127.0.0.1',
      });
      return true;
    } catch {
      return false;
    }
  };

  for (const kind of ['ed25519', 'ecdsa'] as const) {
    it(`logs in with an ${kind} user certificate and verifies sshd's ${kind} host certificate`, async () => {
      const key = KINDS[kind].gen();
      const certificate = await issue(key, userCA.signer, 'user', ['root']);
      const r = await loginAndRun(
        { privateKey: formatOpenSSHPrivateKey(key), certificate, algorithms: { serverHostKey: [certAlgo(kind)] } },
        trustsHostCert(hostCA.blob),
      );
      assert.equal(r.error, undefined);
      assert.equal(r.stdout, 'ok\n');
      assert.equal(r.code, 0);
      const hostCert = parseCertificate(r.hostKey!);
      assert.equal(hostCert.keyType, certAlgo(kind));
      assert.ok(hostCert.publicKey.equals(sshPublicKeyBlob(hostKeys[kind])));
    });
  }

  it('is refused by sshd with a user certificate from a foreign CA', async () => {
    const key = KINDS.ed25519.gen();
    const certificate = await issue(key, newCA().signer, 'user', ['root']);
    const r = await loginAndRun({ privateKey: formatOpenSSHPrivateKey(key), certificate });
    assert.equal(r.error, 'All configured authentication methods failed');
    assert.equal(r.stdout, undefined);
  });

  it('is refused by sshd with a user certificate not naming the login', async () => {
    const key = KINDS.ed25519.gen();
    const certificate = await issue(key, userCA.signer, 'user', ['alice']);
    const r = await loginAndRun({ privateKey: formatOpenSSHPrivateKey(key), certificate });
    assert.equal(r.error, 'All configured authentication methods failed');
  });

  it('lets hostVerifier refuse a host certificate from a foreign CA', async () => {
    const key = KINDS.ed25519.gen();
    const certificate = await issue(key, userCA.signer, 'user', ['root']);
    const r = await loginAndRun(
      { privateKey: formatOpenSSHPrivateKey(key), certificate, algorithms: { serverHostKey: [certAlgo('ed25519')] } },
      trustsHostCert(newCA().blob),
    );
    assert.match(r.error ?? '', /Host denied/);
    assert.equal(parseCertificate(r.hostKey!).keyType, certAlgo('ed25519'), 'hostVerifier was handed the certificate');
  });

  it('negotiates a plain host key unless the caller asks for certificates', async () => {
    const key = KINDS.ed25519.gen();
    const certificate = await issue(key, userCA.signer, 'user', ['root']);
    const r = await loginAndRun({ privateKey: formatOpenSSHPrivateKey(key), certificate });
    assert.equal(r.code, 0, r.error);
    assert.ok(r.hostKey!.equals(sshPublicKeyBlob(hostKeys.ed25519)), 'hostVerifier got the plain Ed25519 key');
  });

  it('refuses to configure a certificate for another key', () => {
    return issue(KINDS.ed25519.gen(), userCA.signer, 'user', ['root']).then((certificate) => {
      const c = new Client();
      const config = {
        host: '127.0.0.1',
        port,
        username: 'root',
        privateKey: formatOpenSSHPrivateKey(KINDS.ed25519.gen()),
        certificate,
      };
      assert.throws(
        () => c.connect(config as ConnectConfig),
        /Invalid certificate: Certificate does not certify this key/,
      );
      c.end();
    });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitForListen(child: ChildProcess, port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd exited: ${log()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not listen: ${log()}`);
}

// ---- (4) eow@openssh.com ----------------------------------------------------------------------------------------

describe('ssh2 Server: eow@openssh.com', () => {
  const userCA = newCA();
  let id = '';
  before(async () => {
    const key = KINDS.ed25519.gen();
    id = writeIdentity('user-eow', key, await issue(key, userCA.signer, 'user', ['alice']));
  });

  /** An endless command: writes until 'eow', then exits as a command killed by SIGPIPE would end. */
  const endless = (stream: ServerChannel) => {
    const chunk = Buffer.alloc(16 * 1024, 'y\n');
    let open = true;
    const pump = () => {
      while (open && stream.write(chunk));
      if (open) stream.once('drain', pump);
    };
    stream.on('eow', () => {
      open = false;
      stream.exit(0);
      stream.end();
    });
    stream.on('close', () => (open = false));
    pump();
  };

  /** `ssh host cmd | head -c 1`: reads a little, then closes ssh's stdout. */
  async function readThenClose(t: TestServer, quietMs: number): Promise<'ssh exited' | 'still running'> {
    const knownHosts = file('known_hosts_eow', '');
    const args = sshTo(t, id, knownHosts, ['-o', 'StrictHostKeyChecking=no']);
    const child = spawn(
      '/usr/bin/ssh',
      ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    cleanups.push(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const exited = new Promise<'ssh exited'>((resolve) => child.on('exit', () => resolve('ssh exited')));
    const first = await Promise.race([new Promise((resolve) => child.stdout.once('data', resolve)), exited]);
    assert.notEqual(first, 'ssh exited', `ssh failed before any output: ${stderr}`);
    child.stdout.destroy();
    let timer: NodeJS.Timeout | undefined;
    const quiet = new Promise<'still running'>((r) => (timer = setTimeout(() => r('still running'), quietMs)));
    const outcome = await Promise.race([exited, quiet]);
    clearTimeout(timer);
    child.kill('SIGKILL');
    return outcome;
  }

  it('emits eow on the channel when ssh can no longer write the output, so the command can be ended', async () => {
    const t = await startServer({
      hostKeys: [formatOpenSSHPrivateKey(KINDS.ed25519.gen())],
      userCA: userCA.blob,
      ident: 'OpenSSH_9.2 Ward',
      exec: endless,
    });
    assert.equal(await readThenClose(t, WAIT), 'ssh exited');
    assert.equal(t.eows, 1);
  });

  it('gets no eow from ssh when the server version does not start with "OpenSSH" (the interop trap)', async () => {
    const t = await startServer({
      hostKeys: [formatOpenSSHPrivateKey(KINDS.ed25519.gen())],
      userCA: userCA.blob,
      exec: endless,
    });
    assert.equal(await readThenClose(t, 1_500), 'still running');
    assert.equal(t.eows, 0);
  });
});
