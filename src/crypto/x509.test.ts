// Ward's X.509 CA and certificates, checked against real OpenSSL (`openssl x509/verify/s_client`) and a
// real mutual-TLS handshake between node:tls peers.
import 'reflect-metadata';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  X509Certificate as NodeX509,
  createECDH,
  createHash,
  createPublicKey,
  generateKeyPairSync,
  webcrypto,
} from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { certValidity } from '../api/certinfo.ts';
import {
  IDENTITY_OID,
  certExpiry,
  createTLSCA,
  fingerprintSPKI,
  generateTLSKey,
  identityFromPeerCert,
  issueTLSCert,
  readIdentity,
  verifyChain,
  type Identity,
} from './x509.ts';

const HOUR = 3_600_000;
const now = new Date(); // real time: Node's TLS stack and openssl verify check validity against the clock
let dir: string;
let ca: { certPem: string; keyPem: string };
let foreignCA: { certPem: string; keyPem: string }; // same cluster name, different key: a look-alike
let userKey: { privateKeyPem: string; publicKeyPem: string };
let userCert: string;
let hostKey: { privateKeyPem: string; publicKeyPem: string };
let hostCert: string;

const alice: Identity = {
  username: 'alice',
  roles: ['dev'],
  logins: ['ubuntu', 'alice'],
  traits: { 'internal.logins': ['alice'] },
  cluster: 'lab',
  expires: '',
  kind: 'user',
  routeToCluster: 'lab',
};
const node1: Identity = {
  username: 'node-1',
  roles: [],
  logins: [],
  cluster: 'lab',
  expires: '',
  kind: 'host',
  hostId: '5f0c7c2e-node-1',
  systemRoles: ['node'],
};

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** Runs openssl without a shell; async so in-process TLS servers keep serving meanwhile. */
function openssl(args: string[], input = ''): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => {}); // most subcommands never read stdin and exit first: EPIPE is expected
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
    child.stdin.end(input);
  });
}

async function issue(
  identity: Identity,
  usage: 'client' | 'server' | 'both',
  extra: Partial<Parameters<typeof issueTLSCert>[0]> = {},
) {
  const key = await generateTLSKey();
  const certPem = await issueTLSCert({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    publicKeyPem: key.publicKeyPem,
    identity,
    now,
    notAfter: new Date(now.getTime() + HOUR),
    usage,
    ...extra,
  });
  return { certPem, keyPem: key.privateKeyPem };
}

/** Signs an arbitrary certificate with the test CA's key, to build what issueTLSCert refuses to build. */
async function craft(
  extensions: x509.Extension[],
  params: Partial<x509.X509CertificateCreateWithKeyParams> = {},
): Promise<string> {
  const key = await webcrypto.subtle.importKey(
    'pkcs8',
    x509.PemConverter.decode(ca.keyPem)[0]!,
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  );
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'O=lab, CN=mallory',
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    notBefore: now,
    notAfter: new Date(now.getTime() + HOUR),
    publicKey: new x509.PublicKey(userKey.publicKeyPem),
    signingKey: key,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions,
    ...params,
  });
  return cert.toString('pem');
}

function utf8String(text: string): Uint8Array<ArrayBuffer> {
  const body = Buffer.from(text);
  const len =
    body.length < 0x80
      ? [body.length]
      : body.length < 0x100
        ? [0x81, body.length]
        : body.length < 0x10000
          ? [0x82, body.length >> 8, body.length & 0xff]
          : [0x83, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff];
  return new Uint8Array(Buffer.concat([Buffer.from([0x0c, ...len]), body]));
}

function derOf(pem: string): Buffer {
  return Buffer.from(new x509.X509Certificate(pem).rawData);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ward-x509-'));
  ca = await createTLSCA({ clusterName: 'lab', now });
  foreignCA = await createTLSCA({ clusterName: 'lab', now });
  userKey = await generateTLSKey();
  userCert = await issueTLSCert({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    publicKeyPem: userKey.publicKeyPem,
    identity: alice,
    now,
    notAfter: new Date(now.getTime() + 8 * HOUR),
    usage: 'client',
  });
  hostKey = await generateTLSKey();
  hostCert = await issueTLSCert({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    publicKeyPem: hostKey.publicKeyPem,
    identity: node1,
    now,
    notAfter: new Date(now.getTime() + 24 * HOUR),
    usage: 'both',
    dnsNames: ['localhost', 'node-1.lab.test', '*.apps.lab.test'],
    ipAddresses: ['127.0.0.1', '::1'],
  });
  file('ca.pem', ca.certPem);
  file('foreign-ca.pem', foreignCA.certPem);
  file('user.pem', userCert);
  file('user.key', userKey.privateKeyPem);
  file('host.pem', hostCert);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('keys and CA', () => {
  it('generates P-256 keys openssl reads as PKCS8 and SPKI', async () => {
    const priv = await openssl(['pkey', '-in', file('k.key', userKey.privateKeyPem), '-noout', '-text']);
    assert.equal(priv.code, 0, priv.out);
    assert.match(priv.out, /prime256v1/);
    const pub = await openssl(['pkey', '-pubin', '-in', file('k.pub', userKey.publicKeyPem), '-noout', '-text']);
    assert.equal(pub.code, 0, pub.out);
    assert.match(userKey.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  });

  it('creates a self-signed CA that openssl shows as a critical CA:TRUE with keyCertSign and cRLSign', async () => {
    const { code, out } = await openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text']);
    assert.equal(code, 0, out);
    assert.match(out, /Basic Constraints: critical\s+CA:TRUE/);
    assert.match(out, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(out, /Subject Key Identifier/);
    assert.match(out, /Subject: O = lab, CN = lab/);
    assert.match(out, /Issuer: O = lab, CN = lab/);
    assert.equal((await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'ca.pem')])).code, 0);
  });

  it('backdates notBefore by a minute, lasts ten years by default and takes a common name', async () => {
    const fixed = new Date('2026-03-01T12:00:00Z');
    const c = new x509.X509Certificate(
      (await createTLSCA({ clusterName: 'lab', commonName: 'lab TLS CA', now: fixed })).certPem,
    );
    assert.equal(c.notBefore.toISOString(), '2026-03-01T11:59:00.000Z');
    assert.equal(c.notAfter.toISOString(), '2036-02-27T12:00:00.000Z');
    assert.equal(c.subject, 'O=lab, CN=lab TLS CA');
    assert.notEqual(c.serialNumber, new x509.X509Certificate(ca.certPem).serialNumber);
    assert.ok(c.serialNumber.replace(/^00/, '').length >= 30, 'serial carries ~128 random bits');
  });

  it('pins the CA by the sha256 of its SubjectPublicKeyInfo, as openssl computes it', async () => {
    const pubPem = (await openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-pubkey'])).out;
    const der = Buffer.from(pubPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    assert.equal(fingerprintSPKI(ca.certPem), `sha256:${createHash('sha256').update(der).digest('hex')}`);
    assert.notEqual(fingerprintSPKI(ca.certPem), fingerprintSPKI(foreignCA.certPem));
  });
});

describe('issued certificates', () => {
  it('issues a user cert that openssl verifies against its CA and refuses against a look-alike CA', async () => {
    const ok = await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'user.pem')]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /user\.pem: OK/);
    const bad = await openssl(['verify', '-CAfile', join(dir, 'foreign-ca.pem'), join(dir, 'user.pem')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.out, /signature failure|unable to get/);
  });

  it('shows the identity extension OID and its JSON in openssl x509 -text', async () => {
    const { out } = await openssl(['x509', '-in', join(dir, 'user.pem'), '-noout', '-text']);
    assert.match(out, /1\.3\.9999\.7\.1: \n/); // no "critical" after the OID
    assert.ok(out.includes('"username":"alice","roles":["dev"]'), out);
    assert.match(out, /Subject: O = lab, CN = alice/);
    assert.match(out, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(out, /Key Usage: critical\s+Digital Signature\n/);
    assert.match(out, /Extended Key Usage: \s+TLS Web Client Authentication\n/);
    const ski = /Subject Key Identifier: \s+([0-9A-F:]+)/.exec(
      (await openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text'])).out,
    )![1]!;
    assert.match(out, new RegExp(`Authority Key Identifier: \\s+(keyid:)?${ski}`));
    assert.equal(IDENTITY_OID, '1.3.9999.7.1');
  });

  it('puts DNS and IP SANs and the host id in a host cert', async () => {
    const { out } = await openssl(['x509', '-in', join(dir, 'host.pem'), '-noout', '-text']);
    assert.match(
      out,
      /DNS:localhost, DNS:node-1\.lab\.test, DNS:\*\.apps\.lab\.test, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/,
    );
    assert.match(out, /Subject: O = lab, CN = 5f0c7c2e-node-1/);
    assert.match(out, /TLS Web Client Authentication, TLS Web Server Authentication/);
    const byName = await openssl([
      'verify',
      '-CAfile',
      join(dir, 'ca.pem'),
      '-verify_hostname',
      'node-1.lab.test',
      join(dir, 'host.pem'),
    ]);
    assert.equal(byName.code, 0, byName.out);
    const byIP = await openssl([
      'verify',
      '-CAfile',
      join(dir, 'ca.pem'),
      '-verify_ip',
      '127.0.0.1',
      join(dir, 'host.pem'),
    ]);
    assert.equal(byIP.code, 0, byIP.out);
    const wrong = await openssl([
      'verify',
      '-CAfile',
      join(dir, 'ca.pem'),
      '-verify_hostname',
      'node-2.lab.test',
      join(dir, 'host.pem'),
    ]);
    assert.notEqual(wrong.code, 0);
  });

  it('refuses bad issuance parameters', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    for (const publicKeyPem of [rsa, p384, 'not a key']) {
      await assert.rejects(
        issueTLSCert({
          caCertPem: ca.certPem,
          caKeyPem: ca.keyPem,
          publicKeyPem,
          identity: alice,
          now,
          notAfter: new Date(now.getTime() + HOUR),
          usage: 'client',
        }),
        BadParameter,
      );
    }
    await assert.rejects(issue({ ...node1, hostId: undefined }, 'server'), BadParameter);
    await assert.rejects(issue({ ...alice, username: '' }, 'client'), BadParameter);
    await assert.rejects(issue({ ...alice, extra: 1 } as Identity, 'client'), BadParameter);
    await assert.rejects(issue(alice, 'client', { notAfter: new Date(now.getTime() - 1000) }), BadParameter);
    await assert.rejects(
      issue(alice, 'client', { notAfter: new Date(now.getTime() + 20 * 365 * 24 * HOUR) }),
      /outlive its CA/,
    );
    await assert.rejects(issue(node1, 'server', { dnsNames: ['bad name'] }), BadParameter);
    await assert.rejects(issue(node1, 'server', { ipAddresses: ['300.1.1.1'] }), BadParameter);
    await assert.rejects(issue({ ...alice, traits: { big: ['x'.repeat(5000)] } }, 'client'), /invalid identity/);
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}`, ['y'.repeat(2000)]]));
    await assert.rejects(issue({ ...alice, traits: many }, 'client'), /too large/);
  });
});

describe('readIdentity', () => {
  it('round-trips the identity from PEM, PEM bytes and DER, with expires equal to notAfter', () => {
    const expected = { ...alice, expires: certExpiry(userCert).toISOString() };
    assert.deepEqual(readIdentity(userCert), expected);
    assert.deepEqual(readIdentity(Buffer.from(userCert)), expected);
    assert.deepEqual(readIdentity(derOf(userCert)), expected);
    assert.equal(certExpiry(userCert).getTime(), Math.floor((now.getTime() + 8 * HOUR) / 1000) * 1000);
    assert.deepEqual(readIdentity(hostCert).systemRoles, ['node']);
  });

  it('refuses certificates without exactly one well-formed identity', async () => {
    assert.throws(() => readIdentity(ca.certPem), /no Ward identity/);
    const ext = (v: Uint8Array<ArrayBuffer>) => new x509.Extension(IDENTITY_OID, false, v);
    const good = JSON.stringify(readIdentity(userCert));
    const cases: [string, x509.Extension[], RegExp][] = [
      ['duplicate', [ext(utf8String(good)), ext(utf8String(good))], /duplicate/],
      ['unknown field', [ext(utf8String(JSON.stringify({ ...JSON.parse(good), admin: true })))], /invalid identity/],
      [
        'wrong type',
        [ext(utf8String(JSON.stringify({ ...JSON.parse(good), roles: 'dev' })))],
        /invalid identity: roles/,
      ],
      ['not JSON', [ext(utf8String('{"username":'))], /not valid JSON/],
      ['raw JSON, not DER', [ext(new Uint8Array(Buffer.from(good)))], /not a UTF8String/],
      ['trailing bytes', [ext(new Uint8Array([...utf8String(good), 0]))], /bad length/],
      ['__proto__ key', [ext(utf8String(good.replace('"internal.logins"', '"__proto__"')))], /reserved key/],
      [
        'over 64 KiB',
        [ext(utf8String(JSON.stringify({ ...JSON.parse(good), roles: ['r'.repeat(200)], pad: 'x'.repeat(70_000) })))],
        /too large/,
      ],
    ];
    for (const [what, extensions, error] of cases) {
      const pem = await craft(extensions);
      assert.throws(
        () => readIdentity(pem),
        (err: unknown) => err instanceof BadParameter && error.test(err.message),
        what,
      );
    }
    assert.throws(() => readIdentity('garbage'), BadParameter);
    assert.throws(() => readIdentity(Buffer.alloc(200_000)), /too large/);
    assert.throws(() => readIdentity(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])), /malformed/);
  });

  it('is only a parser: a tampered identity still parses, but verifyChain and openssl refuse the cert', async () => {
    const der = derOf(userCert);
    const at = der.indexOf('"roles":["dev"]');
    assert.ok(at > 0);
    const forged = Buffer.from(der);
    forged.write('"roles":["adm"]', at); // same length: the DER structure stays valid, only the signature breaks
    assert.deepEqual(readIdentity(forged).roles, ['adm']);
    assert.throws(() => verifyChain(forged, [ca.certPem], now), AccessDenied);
    verifyChain(der, [ca.certPem], now);
    const res = await openssl([
      'verify',
      '-CAfile',
      join(dir, 'ca.pem'),
      file('forged.der.pem', new x509.X509Certificate(new Uint8Array(forged)).toString('pem')),
    ]);
    assert.notEqual(res.code, 0);
    assert.match(res.out, /signature failure/);

    const broken = Buffer.from(der);
    broken.write('"roles":{"dev"]', at); // no longer JSON
    assert.throws(() => readIdentity(broken), /not valid JSON/);
  });
});

describe('verifyChain', () => {
  it('accepts a cert from any CA in the trusted set (rotation) while both are valid', () => {
    verifyChain(userCert, [ca.certPem], now);
    verifyChain(userCert, [foreignCA.certPem, ca.certPem], new Date(now.getTime() + 7 * HOUR));
  });

  it('refuses a cert signed by a look-alike CA with the same name', () => {
    assert.throws(
      () => verifyChain(userCert, [foreignCA.certPem], now),
      (e: unknown) => e instanceof AccessDenied && /not signed by a trusted/.test(e.message),
    );
    assert.throws(() => verifyChain(userCert, [], now), AccessDenied);
  });

  it('refuses an expired or not yet valid cert', () => {
    assert.throws(
      () => verifyChain(userCert, [ca.certPem], new Date(now.getTime() + 8 * HOUR + 1000)),
      /expired or not yet valid/,
    );
    assert.throws(
      () => verifyChain(userCert, [ca.certPem], new Date(now.getTime() - 2 * 60_000)),
      /expired or not yet valid/,
    );
    // the one-minute backdating tolerates a verifier whose clock lags
    verifyChain(userCert, [ca.certPem], new Date(now.getTime() - 30_000));
  });

  it('refuses a cert whose CA is no longer valid', async () => {
    const old = await createTLSCA({ clusterName: 'lab', now: new Date(now.getTime() - 2 * 24 * HOUR), ttlDays: 1 });
    const key = await generateTLSKey();
    const cert = await issueTLSCert({
      caCertPem: old.certPem,
      caKeyPem: old.keyPem,
      publicKeyPem: key.publicKeyPem,
      identity: alice,
      now: new Date(now.getTime() - 2 * 24 * HOUR),
      notAfter: new Date(now.getTime() - 25 * HOUR),
      usage: 'client',
    });
    verifyChain(cert, [old.certPem], new Date(now.getTime() - 26 * HOUR));
    assert.throws(() => verifyChain(cert, [old.certPem], now), AccessDenied);
  });

  it('skips an expired CA cert for a renewed one holding the same key', async () => {
    const caCert = new x509.X509Certificate(ca.certPem);
    const expiredTwin = await craft(caCert.extensions, {
      subject: caCert.subjectName,
      publicKey: caCert.publicKey,
      notBefore: new Date(now.getTime() - 48 * HOUR),
      notAfter: new Date(now.getTime() - 24 * HOUR),
    });
    assert.throws(() => verifyChain(userCert, [expiredTwin], now), /authority is expired/);
    verifyChain(userCert, [expiredTwin, ca.certPem], now);
  });

  it('refuses a CA cert presented as an identity, and garbage', () => {
    assert.throws(() => verifyChain(ca.certPem, [ca.certPem], now), /CA certificate is not an identity/);
    assert.throws(() => verifyChain('nope', [ca.certPem], now), AccessDenied);
    verifyChain(userCert, ['not a cert', ca.certPem], now);
  });
});

describe('mutual TLS', () => {
  type Outcome = {
    identity?: Identity;
    /** Why the server's verification failed: Node destroys the socket then, without a TLS alert. */
    rejection?: string;
    serverError?: NodeJS.ErrnoException;
    clientError?: NodeJS.ErrnoException;
    received: string;
  };

  /** One connection to a fresh `requestCert` server trusting `ca`; resolves when both sides are done. */
  async function connect(server: { certPem: string; keyPem: string }, client: tls.ConnectionOptions): Promise<Outcome> {
    const outcome: Outcome = { received: '' };
    const srv = tls.createServer({
      cert: server.certPem,
      key: server.keyPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
    });
    let serverDone!: () => void;
    const serverSettled = new Promise<void>((r) => (serverDone = r));
    srv.on('secureConnection', (socket) => {
      try {
        outcome.identity = identityFromPeerCert(socket.getPeerCertificate(true));
        socket.end(JSON.stringify(outcome.identity));
      } catch (err) {
        outcome.serverError = err as NodeJS.ErrnoException;
        socket.destroy();
      }
      serverDone();
    });
    srv.on('tlsClientError', (err, socket) => {
      outcome.serverError = err;
      outcome.rejection = socket.authorizationError?.toString();
      serverDone();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as AddressInfo;
    try {
      const clientSettled = new Promise<void>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: [ca.certPem], ...client });
        socket.on('error', (err) => (outcome.clientError = err));
        socket.on('data', (d: Buffer) => (outcome.received += d.toString()));
        socket.on('close', () => resolve());
      });
      const deadline = new Promise((_, reject) =>
        setTimeout(() => reject(new Error('handshake timed out')), 5000).unref(),
      );
      await Promise.race([clientSettled, deadline]);
      // The server side may report a moment after the client closed; a client that aborts may leave it silent.
      await Promise.race([serverSettled, new Promise((r) => setTimeout(r, 500).unref())]);
      return outcome;
    } finally {
      srv.close();
    }
  }

  const host = () => ({ certPem: hostCert, keyPem: hostKey.privateKeyPem });

  it('lets a user cert in and shows the server its identity; the client checks the server SAN', async () => {
    const out = await connect(host(), { servername: 'node-1.lab.test', cert: userCert, key: userKey.privateKeyPem });
    assert.equal(out.serverError, undefined);
    assert.equal(out.clientError, undefined);
    assert.deepEqual(out.identity, readIdentity(userCert));
    const byIP = await connect(host(), { cert: userCert, key: userKey.privateKeyPem }); // no servername: IP SAN
    assert.equal(byIP.clientError, undefined);
    assert.equal(byIP.identity?.username, 'alice');
  });

  it('refuses a client cert from a look-alike CA', async () => {
    const mallory = await generateTLSKey();
    const cert = await issueTLSCert({
      caCertPem: foreignCA.certPem,
      caKeyPem: foreignCA.keyPem,
      publicKeyPem: mallory.publicKeyPem,
      identity: { ...alice, roles: ['admin'] },
      now,
      notAfter: new Date(now.getTime() + HOUR),
      usage: 'client',
    });
    const out = await connect(host(), { servername: 'localhost', cert, key: mallory.privateKeyPem });
    assert.equal(out.identity, undefined);
    // OpenSSL matches the leaf's authority key id, so the same-named trusted CA is never taken as its issuer.
    assert.equal(out.rejection, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.equal(out.received, '');
  });

  it('refuses an expired client cert', async () => {
    const past = new Date(now.getTime() - 3 * HOUR);
    const expired = await issue(alice, 'client', { now: past, notAfter: new Date(now.getTime() - HOUR) });
    const out = await connect(host(), { servername: 'localhost', cert: expired.certPem, key: expired.keyPem });
    assert.equal(out.identity, undefined);
    assert.equal(out.rejection, 'CERT_HAS_EXPIRED');
    assert.equal(out.received, '');
  });

  it('refuses a connection without a client cert, and a server-only cert used as a client cert', async () => {
    const none = await connect(host(), { servername: 'localhost' });
    assert.equal(none.identity, undefined);
    assert.ok(none.serverError);
    assert.match(String(none.clientError?.code), /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/);
    assert.equal(none.received, '');
    const serverOnly = await issue(node1, 'server', { dnsNames: ['node-1.lab.test'] });
    const out = await connect(host(), { servername: 'localhost', cert: serverOnly.certPem, key: serverOnly.keyPem });
    assert.equal(out.identity, undefined);
    assert.equal(out.rejection, 'INVALID_PURPOSE'); // no clientAuth extended key usage
  });

  it('fails checkServerIdentity for a name not in the SANs, and refuses a client-only cert as a server', async () => {
    const wrong = await connect(host(), { servername: 'node-2.lab.test', cert: userCert, key: userKey.privateKeyPem });
    assert.equal(wrong.clientError?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    assert.equal(wrong.received, '');
    // A user named like a host has CN=that name and no SANs; the missing serverAuth usage is what stops it.
    const impostor = await issue({ ...alice, username: 'node-1.lab.test' }, 'client');
    const out = await connect(impostor, { servername: 'node-1.lab.test', cert: userCert, key: userKey.privateKeyPem });
    assert.equal(out.clientError?.code, 'INVALID_PURPOSE');
    assert.equal(out.identity, undefined);
  });

  it('identityFromPeerCert refuses an absent certificate', () => {
    assert.throws(() => identityFromPeerCert({} as tls.PeerCertificate), AccessDenied);
  });

  it('accepts openssl s_client with the user cert (Verify return code: 0)', async () => {
    const srv = tls.createServer({
      cert: hostCert,
      key: hostKey.privateKeyPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
    });
    const seen: Identity[] = [];
    srv.on('secureConnection', (socket) => {
      const identity = identityFromPeerCert(socket.getPeerCertificate());
      seen.push(identity);
      socket.end(`hello ${identity.username}\n`);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const { port } = srv.address() as AddressInfo;
      const { out } = await openssl([
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-servername',
        'localhost',
        '-verify_hostname',
        'localhost',
        '-CAfile',
        join(dir, 'ca.pem'),
        '-cert',
        join(dir, 'user.pem'),
        '-key',
        join(dir, 'user.key'),
        '-verify_return_error',
        '-ign_eof',
      ]);
      // openssl exits 1 on Node's FIN without close_notify ("unexpected eof") after the exchange; not our concern.
      assert.match(out, /Verify return code: 0 \(ok\)/, out.slice(-1500));
      assert.match(out, /hello alice/);
      assert.equal(seen[0]?.username, 'alice');
    } finally {
      srv.close();
    }
  });
});

describe('leaf certificates written as DER by hand', () => {
  it('encodes the fields the general ASN.1 library and Node read back: serial, names, times, key', () => {
    const lib = new x509.X509Certificate(userCert);
    const node = new NodeX509(userCert);
    assert.equal(lib.serialNumber.length, 32, 'a 16-octet positive serial');
    assert.ok(/^[4-7]/.test(lib.serialNumber), 'top bit clear, next bit set: positive and minimal');
    assert.equal(lib.issuer, new x509.X509Certificate(ca.certPem).subject);
    assert.equal(lib.subject, 'O=lab, CN=alice');
    assert.equal(lib.notBefore.getTime(), Math.floor((now.getTime() - 60_000) / 1000) * 1000);
    assert.deepEqual(
      Buffer.from(lib.publicKey.rawData),
      Buffer.from(userKey.publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'),
    );
    assert.equal(node.checkIssued(new NodeX509(ca.certPem)), true);
    assert.equal(node.ca, false);
    // Two certificates never share a serial.
    assert.notEqual(new x509.X509Certificate(hostCert).serialNumber, lib.serialNumber);
  });

  it('writes GeneralizedTime from 2050 on (RFC 5280 4.1.2.5) and UTCTime before', async () => {
    const longCA = await createTLSCA({ clusterName: 'lab', now, ttlDays: 365 * 60 });
    const notAfter = new Date(Date.UTC(2061, 0, 2, 3, 4, 5));
    const pem = await issueTLSCert({
      caCertPem: longCA.certPem,
      caKeyPem: longCA.keyPem,
      publicKeyPem: userKey.publicKeyPem,
      identity: alice,
      now,
      notAfter,
      usage: 'client',
    });
    const { out } = await openssl(['asn1parse', '-in', file('long.pem', pem)]);
    assert.match(out, /UTCTIME +:\d{12}Z/);
    assert.match(out, /GENERALIZEDTIME +:20610102030405Z/);
    assert.equal(new NodeX509(pem).validTo, 'Jan  2 03:04:05 2061 GMT');
    assert.equal(readIdentity(pem).expires, notAfter.toISOString());
    assert.equal(certExpiry(pem).getTime(), notAfter.getTime());
    assert.equal(certExpiry(userCert).getTime(), new Date(new NodeX509(userCert).validTo).getTime());
    assert.deepEqual(certValidity(pem), {
      notBefore: Math.floor((now.getTime() - 60_000) / 1000) * 1000,
      notAfter: notAfter.getTime(),
    });
    assert.equal(certValidity(userCert).notBefore, new Date(new NodeX509(userCert).validFrom).getTime());
  });

  it('writes IPv6 SANs, including v4-mapped and compressed forms, as 16 octets', async () => {
    const { certPem } = await issue(node1, 'server', {
      ipAddresses: ['::ffff:10.1.2.3', 'fe80::1:2', '2001:db8::', '10.0.0.1'],
    });
    const { out } = await openssl(['x509', '-in', file('v6.pem', certPem), '-noout', '-ext', 'subjectAltName']);
    assert.match(
      out,
      /IP Address:0:0:0:0:0:FFFF:A01:203, IP Address:FE80:0:0:0:0:0:1:2, IP Address:2001:DB8:0:0:0:0:0:0, IP Address:10\.0\.0\.1/,
    );
  });

  it('refuses a P-256 key whose point is not on the curve, and takes a compressed point through OpenSSL', async () => {
    const spki = Buffer.from(userKey.publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const offCurve = Buffer.from(spki);
    offCurve[offCurve.length - 1]! ^= 1;
    const asPem = (der: Buffer) => `-----BEGIN PUBLIC KEY-----\n${der.toString('base64')}\n-----END PUBLIC KEY-----\n`;
    await assert.rejects(issue(alice, 'client', { publicKeyPem: asPem(offCurve) }), /not a valid P-256 point/);

    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const compressed = Buffer.concat([
      Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'),
      ecdh.getPublicKey(null, 'compressed'),
    ]);
    const { certPem } = await issue(alice, 'client', { publicKeyPem: asPem(compressed) });
    // OpenSSL keeps the point's form when it re-encodes; the certificate certifies the same key.
    assert.deepEqual(
      new NodeX509(certPem).publicKey.export({ format: 'jwk' }),
      createPublicKey(asPem(compressed)).export({ format: 'jwk' }),
    );
  });
});
