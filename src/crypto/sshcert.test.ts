// OpenSSH certificates both ways against real ssh-keygen (it verifies the CA signature when it loads a
// cert), then every refusal verifyCertificate owes a target, and parser robustness on hostile bytes.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { matchCIDRList } from './cidr.ts';
import {
  FOREVER,
  parseCertificate,
  signCertificate,
  softwareSigner,
  verifyCertificate,
  type CertificateFields,
  type SSHCertificate,
} from './sshcert.ts';
import {
  fingerprintSHA256,
  formatAuthorizedKey,
  formatOpenSSHPrivateKey,
  parseAuthorizedKey,
  signSSH,
  sshPublicKeyBlob,
} from './sshkeys.ts';
import { SSHWriter } from './sshwire.ts';

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ward-sshcert-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function sshKeygen(args: string[]): string {
  return execFileSync('/usr/bin/ssh-keygen', args, {
    env: { PATH: '/usr/bin:/bin', TZ: 'UTC' },
    stdio: 'pipe',
  }).toString();
}
function file(name: string, content: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content, { mode: 0o600 });
  return p;
}
const isBadParameter = (err: unknown) => err instanceof BadParameter;
const denied = (reason: RegExp) => (err: unknown) => err instanceof AccessDenied && reason.test(err.message);

const gen = {
  ed25519: () => crypto.generateKeyPairSync('ed25519').privateKey,
  ecdsa: () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
};
const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T01:00:00Z');
const inside = new Date('2026-01-01T00:30:00Z');

function userFields(publicKey: Buffer, extra: Partial<CertificateFields> = {}): CertificateFields {
  return {
    publicKey,
    serial: 42n,
    certType: 'user',
    keyId: 'alice',
    principals: ['root', 'ubuntu'],
    validAfter: T0,
    validBefore: T1,
    criticalOptions: { 'source-address': '10.0.0.0/8,2001:db8::/32', 'force-command': 'uptime' },
    extensions: { 'permit-pty': '', 'permit-port-forwarding': '', 'ward-roles@ward.dev': '["dev"]' },
    ...extra,
  };
}

for (const caKind of ['ed25519', 'ecdsa'] as const) {
  describe(`certificates signed by an ${caKind} CA`, () => {
    const caKey = gen[caKind]();
    const ca = softwareSigner(caKey);
    const caBlob = sshPublicKeyBlob(caKey);
    const caFile = () => file(`ca-${caKind}`, formatOpenSSHPrivateKey(caKey));

    for (const keyKind of ['ed25519', 'ecdsa'] as const) {
      it(`ssh-keygen -L shows every field of our user certificate for an ${keyKind} key`, async () => {
        const keyBlob = sshPublicKeyBlob(gen[keyKind]());
        const blob = await signCertificate(userFields(keyBlob), ca);
        const out = sshKeygen(['-L', '-f', file(`u-${caKind}-${keyKind}-cert.pub`, formatAuthorizedKey(blob) + '\n')]);
        const type =
          keyKind === 'ed25519' ? 'ssh-ed25519-cert-v01@openssh.com' : 'ecdsa-sha2-nistp256-cert-v01@openssh.com';
        const lines = out.split('\n').map((l) => l.trim());
        assert.ok(lines.includes(`Type: ${type} user certificate`), out);
        assert.ok(
          lines.some((l) => l.startsWith('Public key: ') && l.endsWith(fingerprintSHA256(keyBlob))),
          out,
        );
        assert.ok(
          lines.some((l) => l.startsWith('Signing CA: ') && l.includes(fingerprintSHA256(caBlob))),
          out,
        );
        assert.ok(lines.includes('Key ID: "alice"'), out);
        assert.ok(lines.includes('Serial: 42'), out);
        assert.ok(lines.includes('Valid: from 2026-01-01T00:00:00 to 2026-01-01T01:00:00'), out);
        const block = (title: string) => lines.slice(lines.indexOf(title) + 1, lines.indexOf(title) + 4);
        assert.deepEqual(block('Principals:').slice(0, 2), ['root', 'ubuntu']);
        assert.deepEqual(block('Critical Options:').slice(0, 2), [
          'force-command uptime',
          'source-address 10.0.0.0/8,2001:db8::/32',
        ]);
        // Flags must show bare: non-empty data would print as UNKNOWN or make ssh-keygen fail.
        assert.deepEqual(block('Extensions:'), [
          'permit-port-forwarding',
          'permit-pty',
          'ward-roles@ward.dev UNKNOWN OPTION: 000000075b22646576225d (len 11)',
        ]);
      });
    }

    it('ssh-keygen -L shows a host certificate valid forever with no options', async () => {
      const fields = {
        publicKey: sshPublicKeyBlob(gen.ed25519()),
        serial: 0n,
        certType: 'host',
        keyId: 'node-1',
        principals: ['node-1.example.com'],
        validAfter: new Date(0),
        validBefore: FOREVER,
      } as const;
      const blob = await signCertificate(fields, ca);
      const out = sshKeygen(['-L', '-f', file(`h-${caKind}-cert.pub`, formatAuthorizedKey(blob) + '\n')]);
      assert.match(out, /Type: ssh-ed25519-cert-v01@openssh.com host certificate/);
      assert.match(out, /Valid: forever/);
      assert.match(out, /Critical Options: \(none\)\n\s+Extensions: \(none\)/);
      const cert = parseCertificate(blob);
      assert.equal(cert.validBefore.getTime(), FOREVER.getTime());
      assert.equal(cert.validAfter.getTime(), 0);
      verifyCertificate(cert, {
        trustedCAs: [caBlob],
        now: new Date(),
        certType: 'host',
        principal: 'node-1.example.com',
      });
    });

    it('ssh-keygen refuses our certificate once a signed byte is flipped', async () => {
      const blob = Buffer.from(await signCertificate(userFields(sshPublicKeyBlob(gen.ed25519())), ca));
      blob.write('U', blob.indexOf('ubuntu'), 'latin1'); // "ubuntu" -> "Ubuntu"
      assert.throws(() => sshKeygen(['-L', '-f', file(`bad-${caKind}-cert.pub`, formatAuthorizedKey(blob) + '\n')]));
      const cert = parseCertificate(blob);
      assert.deepEqual(cert.principals, ['root', 'Ubuntu']);
      assert.throws(
        () => verifyCertificate(cert, { trustedCAs: [caBlob], now: inside, certType: 'user', principal: 'Ubuntu' }),
        denied(/invalid CA signature/),
      );
    });

    for (const keyKind of ['ed25519', 'ecdsa'] as const) {
      it(`accepts a user certificate ssh-keygen -s issued for an ${keyKind} key, only with that CA`, () => {
        const keyFile = path.join(dir, `k-${caKind}-${keyKind}`);
        sshKeygen(['-q', '-t', keyKind, ...(keyKind === 'ecdsa' ? ['-b', '256'] : []), '-N', '', '-f', keyFile]);
        const args = ['-q', '-s', caFile(), '-I', 'bob@corp', '-n', 'a,b', '-V', '+1h', '-z', '77'];
        sshKeygen([
          ...args,
          '-O',
          'force-command=id',
          '-O',
          'source-address=192.168.0.0/16',
          '-O',
          'extension:ward-cluster@ward.dev=lab',
          `${keyFile}.pub`,
        ]);
        const cert = parseCertificate(parseAuthorizedKey(fs.readFileSync(`${keyFile}-cert.pub`, 'utf8')).blob);
        assert.equal(cert.keyId, 'bob@corp');
        assert.equal(cert.serial, 77n);
        assert.deepEqual(cert.principals, ['a', 'b']);
        assert.deepEqual(cert.publicKey, parseAuthorizedKey(fs.readFileSync(`${keyFile}.pub`, 'utf8')).blob);
        assert.deepEqual(cert.signatureKey, caBlob);
        assert.deepEqual({ ...cert.criticalOptions }, { 'force-command': 'id', 'source-address': '192.168.0.0/16' });
        assert.deepEqual(Object.keys(cert.extensions), [
          'permit-X11-forwarding',
          'permit-agent-forwarding',
          'permit-port-forwarding',
          'permit-pty',
          'permit-user-rc',
          'ward-cluster@ward.dev',
        ]);
        assert.equal(cert.extensions['ward-cluster@ward.dev'], 'lab');
        const opts = {
          trustedCAs: [caBlob],
          now: new Date(),
          certType: 'user',
          principal: 'b',
          sourceAddress: '192.168.7.9',
        } as const;
        verifyCertificate(cert, opts);
        verifyCertificate(cert, { ...opts, sourceAddress: '::ffff:192.168.1.1' });
        assert.throws(
          () => verifyCertificate(cert, { ...opts, trustedCAs: [sshPublicKeyBlob(gen[caKind]())] }),
          denied(/trusted certificate authority/),
        );
        assert.throws(
          () => verifyCertificate(cert, { ...opts, sourceAddress: '10.1.2.3' }),
          denied(/source address 10.1.2.3 is not allowed/),
        );
        assert.throws(
          () => verifyCertificate(cert, { ...opts, sourceAddress: undefined }),
          denied(/client address is unknown/),
        );
        assert.throws(
          () => verifyCertificate(cert, { ...opts, certType: 'host' }),
          denied(/expected a host certificate, got a user/),
        );
      });
    }

    it('accepts a host certificate from ssh-keygen -h only as a host certificate', () => {
      const keyFile = path.join(dir, `host-${caKind}`);
      sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
      sshKeygen(['-q', '-s', caFile(), '-h', '-I', 'node', '-n', 'node.lab', '-V', '+1h', `${keyFile}.pub`]);
      const cert = parseCertificate(parseAuthorizedKey(fs.readFileSync(`${keyFile}-cert.pub`, 'utf8')).blob);
      assert.equal(cert.certType, 'host');
      const opts = { trustedCAs: [caBlob], now: new Date(), certType: 'host', principal: 'node.lab' } as const;
      verifyCertificate(cert, opts);
      assert.throws(
        () => verifyCertificate(cert, { ...opts, certType: 'user' }),
        denied(/expected a user certificate, got a host/),
      );
      assert.throws(
        () => verifyCertificate(cert, { ...opts, principal: 'other.lab' }),
        denied(/"other.lab" is not listed/),
      );
    });

    it('refuses an ssh-keygen certificate carrying an unknown critical option', () => {
      const keyFile = path.join(dir, `crit-${caKind}`);
      sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
      sshKeygen([
        '-q',
        '-s',
        caFile(),
        '-I',
        'x',
        '-n',
        'a',
        '-V',
        '+1h',
        '-O',
        'critical:restrict-foo@example.com=1',
        `${keyFile}.pub`,
      ]);
      const cert = parseCertificate(parseAuthorizedKey(fs.readFileSync(`${keyFile}-cert.pub`, 'utf8')).blob);
      assert.throws(
        () => verifyCertificate(cert, { trustedCAs: [caBlob], now: new Date(), certType: 'user', principal: 'a' }),
        denied(/unsupported critical option "restrict-foo@example.com"/),
      );
    });
  });
}

describe('verifyCertificate refusals', () => {
  const caKey = gen.ed25519();
  const ca = softwareSigner(caKey);
  const trustedCAs = [sshPublicKeyBlob(caKey)];
  const keyBlob = sshPublicKeyBlob(gen.ecdsa());
  const sign = async (extra: Partial<CertificateFields> = {}) =>
    parseCertificate(await signCertificate(userFields(keyBlob, extra), ca));
  const opts = { trustedCAs, now: inside, certType: 'user', principal: 'root', sourceAddress: '10.9.8.7' } as const;

  it('accepts a valid certificate at both ends of its window', async () => {
    const cert = await sign();
    verifyCertificate(cert, opts);
    verifyCertificate(cert, { ...opts, now: T0 });
    verifyCertificate(cert, { ...opts, now: new Date(T1.getTime() - 1), sourceAddress: '2001:db8:1::5' });
  });

  it('refuses an expired certificate (valid before is exclusive)', async () => {
    const cert = await sign();
    assert.throws(() => verifyCertificate(cert, { ...opts, now: T1 }), denied(/expired/));
  });

  it('refuses a certificate that is not yet valid', async () => {
    const cert = await sign();
    assert.throws(() => verifyCertificate(cert, { ...opts, now: new Date(T0.getTime() - 1) }), denied(/not yet valid/));
  });

  it('refuses a certificate from a CA that is not trusted', async () => {
    const cert = parseCertificate(await signCertificate(userFields(keyBlob), softwareSigner(gen.ed25519())));
    assert.throws(() => verifyCertificate(cert, opts), denied(/trusted certificate authority/));
  });

  it('refuses a principal the certificate does not list, and a certificate listing none', async () => {
    await assert.rejects(
      async () => verifyCertificate(await sign(), { ...opts, principal: 'admin' }),
      denied(/"admin" is not listed/),
    );
    await assert.rejects(
      async () => verifyCertificate(await sign({ principals: [] }), opts),
      denied(/lists no principals/),
    );
  });

  it('refuses a user certificate where a host certificate is expected', async () => {
    await assert.rejects(
      async () => verifyCertificate(await sign(), { ...opts, certType: 'host' }),
      denied(/expected a host certificate/),
    );
  });

  it('refuses unknown and unenforceable critical options', async () => {
    await assert.rejects(
      async () => verifyCertificate(await sign({ criticalOptions: { 'no-such-option@example.com': 'x' } }), opts),
      denied(/unsupported critical option/),
    );
    await assert.rejects(
      async () => verifyCertificate(await sign({ criticalOptions: { 'verify-required': '' } }), opts),
      denied(/"verify-required"/),
    );
  });

  it('refuses a certificate whose parsed fields were edited after parsing', async () => {
    const cert = await sign();
    const edited: SSHCertificate = { ...cert, principals: [...cert.principals, 'admin'] };
    assert.throws(() => verifyCertificate(edited, { ...opts, principal: 'admin' }), denied(/do not match/));
    assert.throws(
      () => verifyCertificate({ ...cert, validBefore: FOREVER }, { ...opts, now: T1 }),
      denied(/do not match/),
    );
  });

  it('refuses a certificate whose principal list was modified after signing', async () => {
    const signed = await signCertificate(userFields(keyBlob), ca);
    const blob = Buffer.from(signed);
    blob.write('admin', blob.indexOf('ubunt'), 'latin1'); // "ubuntu" -> "adminu"
    const cert = parseCertificate(blob);
    assert.deepEqual(cert.principals, ['root', 'adminu']);
    assert.throws(() => verifyCertificate(cert, { ...opts, principal: 'adminu' }), denied(/invalid CA signature/));
  });
});

describe('signCertificate', () => {
  const ca = softwareSigner(gen.ed25519());
  const keyBlob = sshPublicKeyBlob(gen.ed25519());

  it('refuses fields it cannot encode faithfully', async () => {
    const rsaBlob = new SSHWriter()
      .string('ssh-rsa')
      .mpint(Buffer.from([1, 0, 1]))
      .mpint(crypto.randomBytes(256))
      .toBuffer();
    const bad: Array<Partial<CertificateFields>> = [
      { publicKey: rsaBlob },
      { validAfter: T1, validBefore: T0 },
      { validAfter: new Date(NaN) },
      { serial: -1n },
      { serial: 1n << 64n },
      { certType: 'admin' as 'user' },
      { keyId: '' },
      { principals: ['a\0b'] },
      { extensions: { 'permit-pty': 'yes' } },
      { criticalOptions: { 'force-command': '' } },
      { criticalOptions: { 'source-address': '10.0.0.1/8' } },
      { criticalOptions: { 'source-address': '*.example.com' } },
      { certType: 'host' },
      { nonce: Buffer.alloc(4) },
    ];
    for (const extra of bad)
      await assert.rejects(
        signCertificate(userFields(keyBlob, extra), ca),
        isBadParameter,
        JSON.stringify(extra, (_, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
    await assert.rejects(signCertificate(userFields(rsaBlob), ca), /unsupported key type/);
  });

  it(
    'refuses a subject key that is not a point on its curve, ' + 'and an outside signer whose CA key is malformed',
    async () => {
      const offCurve = new SSHWriter()
        .string('ecdsa-sha2-nistp256')
        .string('nistp256')
        .string(Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]))
        .toBuffer();
      await assert.rejects(signCertificate(userFields(offCurve), ca), /not a valid point/);
      const outside = { publicKeyBlob: offCurve, sign: ca.sign };
      await assert.rejects(signCertificate(userFields(keyBlob), outside), /not a valid point/);
    },
  );

  it('refuses to return a certificate when the CA signer produces a bad signature', async () => {
    const broken = { publicKeyBlob: ca.publicKeyBlob, sign: async (d: Buffer) => signSSH(gen.ed25519(), d) };
    await assert.rejects(signCertificate(userFields(keyBlob), broken), /does not verify/);
  });

  it('keeps names like __proto__ as ordinary extensions', async () => {
    const extensions = JSON.parse('{"__proto__": "x", "permit-pty": ""}') as Record<string, string>;
    const cert = parseCertificate(await signCertificate(userFields(keyBlob, { extensions }), ca));
    assert.deepEqual(Object.keys(cert.extensions), ['__proto__', 'permit-pty']);
    assert.equal(Object.getPrototypeOf(cert.extensions), Object.prototype);
  });
});

describe('parseCertificate on hostile input', () => {
  const caKey = gen.ecdsa();
  let good: Buffer = Buffer.alloc(0);
  before(async () => {
    good = await signCertificate(userFields(sshPublicKeyBlob(gen.ecdsa())), softwareSigner(caKey));
  });
  const onlyBadParameter = (blob: Buffer) => {
    try {
      parseCertificate(blob);
      return true;
    } catch (err) {
      assert.ok(err instanceof BadParameter, `${String(err)} for ${blob.toString('hex').slice(0, 80)}`);
      return false;
    }
  };

  it('refuses every truncation and any trailing byte', () => {
    for (let n = 0; n < good.length; n++) assert.equal(onlyBadParameter(good.subarray(0, n)), false, `length ${n}`);
    assert.equal(onlyBadParameter(Buffer.concat([good, Buffer.from([0])])), false);
    assert.equal(onlyBadParameter(good), true);
  });

  it('throws only BadParameter on random garbage and random corruption', () => {
    for (let i = 0; i < 2000; i++) assert.equal(onlyBadParameter(crypto.randomBytes(crypto.randomInt(0, 600))), false);
    for (let i = 0; i < 4000; i++) {
      const blob = Buffer.from(good);
      for (let k = crypto.randomInt(1, 4); k > 0; k--) blob[crypto.randomInt(blob.length)] = crypto.randomInt(256);
      onlyBadParameter(blob);
    }
    assert.throws(() => parseCertificate(Buffer.alloc(40 * 1024)), isBadParameter);
    assert.throws(() => parseCertificate('not a buffer' as unknown as Buffer), isBadParameter);
  });

  // Builds a certificate by hand and signs it properly, so only the encoding under test is wrong.
  function handmade(parts: { critical?: Buffer; extensions?: Buffer; typeCode?: number }): Buffer {
    const keyBlob = sshPublicKeyBlob(gen.ed25519());
    const signed = new SSHWriter()
      .string('ssh-ed25519-cert-v01@openssh.com')
      .string(crypto.randomBytes(32))
      .raw(keyBlob.subarray(4 + 'ssh-ed25519'.length))
      .uint64(1n)
      .uint32(parts.typeCode ?? 1)
      .string('id')
      .string(new SSHWriter().string('root').toBuffer())
      .uint64(0n)
      .uint64(0xffff_ffff_ffff_ffffn)
      .string(parts.critical ?? Buffer.alloc(0))
      .string(parts.extensions ?? Buffer.alloc(0))
      .string('')
      .string(sshPublicKeyBlob(caKey))
      .toBuffer();
    return Buffer.concat([signed, new SSHWriter().string(signSSH(caKey, signed)).toBuffer()]);
  }
  const tuple = (name: string, data: Buffer) => new SSHWriter().string(name).string(data).toBuffer();
  const trustedCAs = () => [sshPublicKeyBlob(caKey)];

  it('builds valid certificates by hand (so the cases below fail for their own reason)', () => {
    const ext = Buffer.concat([tuple('a@x', Buffer.alloc(0)), tuple('permit-pty', Buffer.alloc(0))]);
    const cert = parseCertificate(handmade({ extensions: ext }));
    assert.deepEqual({ ...cert.extensions }, { 'a@x': '', 'permit-pty': '' });
    verifyCertificate(cert, { trustedCAs: trustedCAs(), now: inside, certType: 'user', principal: 'root' });
    assert.match(
      sshKeygen(['-L', '-f', file('handmade-cert.pub', formatAuthorizedKey(cert.blob) + '\n')]),
      /Valid: forever/,
    );
  });

  it('refuses unordered or duplicate names, and flags encoded as a nested empty string', () => {
    const empty = Buffer.alloc(0);
    const nestedEmpty = new SSHWriter().string('').toBuffer();
    const cases = [
      Buffer.concat([tuple('permit-pty', empty), tuple('a@x', empty)]),
      Buffer.concat([tuple('permit-pty', empty), tuple('permit-pty', empty)]),
      tuple('permit-pty', nestedEmpty),
      tuple('x@y', Buffer.from('raw')),
      tuple('', empty),
    ];
    for (const ext of cases)
      assert.throws(() => parseCertificate(handmade({ extensions: ext })), isBadParameter, ext.toString('hex'));
    assert.throws(
      () => parseCertificate(handmade({ critical: tuple('force-command', Buffer.alloc(0)) })),
      /needs a value/,
    );
    assert.throws(() => parseCertificate(handmade({ typeCode: 3 })), /unknown certificate type 3/);
  });

  it('refuses a host certificate that carries critical options', () => {
    const cert = parseCertificate(
      handmade({ typeCode: 2, critical: tuple('force-command', new SSHWriter().string('id').toBuffer()) }),
    );
    const opts = { trustedCAs: trustedCAs(), now: inside, certType: 'host', principal: 'root' } as const;
    assert.throws(() => verifyCertificate(cert, opts), denied(/host certificate carries critical options/));
  });
});

describe('source-address lists', () => {
  it('matches IPv4, IPv6 and IPv4-mapped clients against CIDR entries', () => {
    assert.equal(matchCIDRList('10.1.2.3', '192.168.0.0/16,10.0.0.0/8'), true);
    assert.equal(matchCIDRList('11.1.2.3', '10.0.0.0/8'), false);
    assert.equal(matchCIDRList('::ffff:10.1.2.3', '10.0.0.0/8'), true);
    assert.equal(matchCIDRList('2001:db8::1', '2001:db8::/32'), true);
    assert.equal(matchCIDRList('2001:db9::1', '2001:db8::/32'), false);
    assert.equal(matchCIDRList('10.0.0.1', '10.0.0.1'), true);
    assert.equal(matchCIDRList('10.0.0.2', '10.0.0.1'), false);
    assert.equal(matchCIDRList('10.0.0.2', '0.0.0.0/0'), true);
    assert.equal(matchCIDRList('10.0.0.2', '::/0'), false);
    assert.equal(matchCIDRList('::1', '::1/128'), true);
    assert.equal(matchCIDRList('not-an-ip', '10.0.0.0/8'), false);
  });

  it('refuses malformed lists as OpenSSH does', () => {
    for (const list of [
      '',
      '10.0.0.0/8,',
      '10.0.0.1/8',
      '10.0.0.0/33',
      '*',
      '!10.0.0.0/8',
      'host.example.com',
      '10.0.0.0/8/1',
      'fe80::1%eth0',
    ]) {
      assert.throws(() => matchCIDRList('10.0.0.1', list), isBadParameter, list);
    }
  });
});
