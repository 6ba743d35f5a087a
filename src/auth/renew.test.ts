// Host certificate renewal (RenewHostCerts): a host gets its own certificate again from the host CA's signing key,
// for exactly the names in its TLS certificate; another host's certificate, a user certificate, a name the TLS
// certificate does not carry, or junk are refused. And when a host asks (host/renewal.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { systemClock } from '../time/clock.ts';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { needsRenewal } from '../host/renewal.ts';
import { SqliteBackend } from '../backend/sqlite.ts';
import { parseCertificate } from '../crypto/sshcert.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';
import { issueHostIdentity } from './join.ts';
import { renewHostSSHCert, subjectAltNames } from './renew.ts';
import { authServerParts } from '../../test/fixtures/authapi.ts';
import { AuthServer } from './server.ts';

let dir: string;
let backend: SqliteBackend;
let auth: AuthServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ward-renew-'));
  backend = SqliteBackend.open({ path: join(dir, 'ward.db') });
  auth = await AuthServer.create(
    authServerParts({
      clusterName: 'c',
      backend,
      clock: systemClock,
      log: pino({ level: 'silent' }),
      lockout: { maxAttempts: 5, durationMs: 60_000 },
    }),
  );
});

after(async () => {
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

async function host(hostId: string, addresses: string[]) {
  const keys = generateClientKeys('h');
  return issueHostIdentity(auth, {
    hostId,
    hostname: 'web',
    systemRole: 'node',
    addresses,
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
  });
}

const signer = (sshCert: string) => parseCertificate(parseAuthorizedKey(sshCert).blob).signatureKey;
const activeHostKey = async () => parseAuthorizedKey((await auth.cas.get('host')).spec.active_keys[0]!.public).blob;

describe('host certificate renewal', () => {
  it('reads the names of a TLS certificate as Node spells them, IPv6 in either form', () => {
    const names = subjectAltNames(
      'DNS:h1, DNS:web.c, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:0:2, DNS:"a, b"',
    );
    assert.deepEqual([...names].sort(), ['127.0.0.1', '::1', 'fd00::2', 'h1', 'web.c']);
    assert.equal(subjectAltNames(undefined).size, 0);
  });

  it('re-issues the same key and principals from the signing key, with a fresh validity', async () => {
    const id = await host('h1', ['10.0.0.5', '::1']);
    const names = subjectAltNames(
      'DNS:h1, DNS:web, DNS:web.c, DNS:localhost, IP Address:10.0.0.5, IP Address:127.0.0.1, IP ' +
        'Address:0:0:0:0:0:0:0:1',
    );
    const old = parseCertificate(parseAuthorizedKey(id.sshCert).blob);
    await auth.rotateCA('host', { target: 'init' }, 'test');
    await auth.rotateCA('host', { target: 'update_clients' }, 'test');
    const { sshCert } = await renewHostSSHCert(auth, 'h1', names, { sshCert: id.sshCert });
    const renewed = parseCertificate(parseAuthorizedKey(sshCert).blob);
    assert.deepEqual(renewed.publicKey, old.publicKey);
    assert.deepEqual(renewed.principals, old.principals);
    assert.equal(renewed.keyId, 'h1');
    assert.equal(renewed.certType, 'host');
    assert.ok(renewed.signatureKey.equals(await activeHostKey()), 'signed by the new key');
    assert.ok(!renewed.signatureKey.equals(old.signatureKey));
    await auth.rotateCA('host', { rollback: true }, 'test');
  });

  it("refuses another host's certificate, names the TLS certificate lacks, user certificates and junk", async () => {
    const id = await host('h2', ['10.0.0.6']);
    const all = subjectAltNames('DNS:h2, DNS:web, DNS:web.c, IP Address:10.0.0.6');
    await assert.rejects(renewHostSSHCert(auth, 'h3', all, { sshCert: id.sshCert }), AccessDenied, 'another host id');
    await assert.rejects(
      renewHostSSHCert(auth, 'h2', subjectAltNames('DNS:h2, DNS:web, DNS:web.c'), { sshCert: id.sshCert }),
      AccessDenied,
      'an address not in the TLS certificate',
    );
    const keys = generateClientKeys('u');
    const user = await auth.createUser({
      name: 'h2',
      roles: ['access'],
      logins: ['web'],
      password: 'correct horse battery',
      createdBy: 't',
    });
    const userCerts = await auth.issueUserCerts(
      user.user,
      { sshPublicKey: keys.sshPublicKey, tlsPublicKey: keys.tlsPublicKey },
      60_000,
      't',
    );
    await assert.rejects(
      renewHostSSHCert(auth, 'h2', subjectAltNames('DNS:h2, DNS:web'), { sshCert: userCerts.sshCert }),
      AccessDenied,
      'a user certificate',
    );
    await assert.rejects(renewHostSSHCert(auth, 'h2', all, { sshCert: 'ssh-ed25519 AAAA' }), BadParameter);
  });

  it('refuses a locked node, named by host name or by id', async () => {
    const id = await host('h5', []);
    const names = subjectAltNames('DNS:h5, DNS:web, DNS:web.c');
    for (const target of ['web', 'h5']) {
      await auth.locks.create({
        kind: 'lock',
        version: 'v1',
        metadata: { name: `lock-${target}` },
        spec: { target: { node: target }, message: 'compromised' },
      });
      await assert.rejects(renewHostSSHCert(auth, 'h5', names, { sshCert: id.sshCert }), /is locked: compromised/);
      await auth.locks.delete(`lock-${target}`);
    }
    await renewHostSSHCert(auth, 'h5', names, { sshCert: id.sshCert }); // unlocked again
  });

  it('has a host renew only once the CA is in update_servers, or back in standby on another key', async () => {
    const id = await host('h4', []);
    const mine = signer(id.sshCert);
    const ca = async () => auth.cas.get('host');
    assert.equal(needsRenewal(await ca(), mine), false, 'standby, signed by the signing key');
    await auth.rotateCA('host', { target: 'init' }, 'test');
    assert.equal(needsRenewal(await ca(), mine), false, 'init');
    await auth.rotateCA('host', { target: 'update_clients' }, 'test');
    assert.equal(needsRenewal(await ca(), mine), false, 'update_clients: clients may not know the new key yet');
    await auth.rotateCA('host', { target: 'update_servers' }, 'test');
    assert.equal(needsRenewal(await ca(), mine), true, 'update_servers');
    assert.equal(needsRenewal(await ca(), await activeHostKey()), false, 'already renewed');
    await auth.rotateCA('host', { rollback: true }, 'test');
    assert.equal(needsRenewal(await ca(), mine), false, 'rolled back: the old key signs again');
    assert.equal(needsRenewal(undefined, mine), false, 'no CA in the cache yet');
  });
});
