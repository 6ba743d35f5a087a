// TLS host certificate renewal over the real Auth API (mutual TLS is the authentication): a host that joined gets a
// certificate for the same key, host id, system roles and names as the one it calls with, valid for the cluster's
// host certificate TTL from now, from the TLS CA. Users, in-process services, locked hosts, another key, and
// expired certificates are refused; nothing the request says about names is taken.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createAuthClient, type AuthClient, type TLSIdentity } from '../api/client.ts';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { generateTLSKey, readIdentity, verifyChain } from '../crypto/x509.ts';
import { parseCertificate } from '../crypto/sshcert.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';
import { issueHostIdentity } from './join.ts';
import type { AuthServer } from './server.ts';
import { startTestAuthAPI, type TestAuthAPI } from '../../test/fixtures/authapi.ts';

/** Not the default year, so the test sees the TTL come from the auth server's config. */
const TTL_MS = 2 * 3_600_000;
let auth: AuthServer;
let api: TestAuthAPI;
let addr: string;
const clients: AuthClient[] = [];

before(async () => {
  api = await startTestAuthAPI({ hostCertTTLMs: TTL_MS });
  ({ auth, addr } = api);
});

after(() => api.close());

const client = (identity: TLSIdentity) => createAuthClient({ addr, identity, idleTimeoutMs: 500 });

/** A host as a join makes it: both certificates from issueHostIdentity, its keys, and a client with its TLS identity.
 */
async function joinedHost(hostId: string, systemRole: string, addresses: string[] = ['10.0.0.7']) {
  const keys = generateClientKeys(hostId);
  const issued = await issueHostIdentity(auth, {
    hostId,
    hostname: `h-${hostId}`,
    systemRole,
    addresses,
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
  });
  const identity = { keyPem: keys.tlsKey, certPem: issued.tlsCert, caPems: issued.tlsCas };
  return { keys, issued, identity, api: client(identity) };
}

const sans = (pem: string) => new X509Certificate(pem).subjectAltName ?? '';
const spki = (pem: string) => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });

describe('TLS host certificate renewal (RenewHostCerts)', () => {
  it(
    'certifies the same key, host id, roles and names again, ' + 'from the TLS CA, valid for the host certificate TTL',
    async () => {
      const host = await joinedHost('n1', 'node', ['10.0.0.5', '::1']);
      const before = Date.now();
      const res = await host.api.renewHostCerts({ tlsPublicKey: host.keys.tlsPublicKey });
      assert.equal(res.sshCert, '', 'no SSH certificate unless asked for');
      const old = new X509Certificate(host.issued.tlsCert);
      const renewed = new X509Certificate(res.tlsCert);
      assert.ok(spki(res.tlsCert).equals(spki(host.issued.tlsCert)), 'the same key');
      assert.notEqual(renewed.serialNumber, old.serialNumber);
      assert.equal(sans(res.tlsCert), sans(host.issued.tlsCert), 'the same names');
      const id = readIdentity(res.tlsCert);
      assert.equal(id.kind, 'host');
      assert.equal(id.hostId, 'n1');
      assert.deepEqual(id.systemRoles, ['node']);
      assert.equal(id.cluster, 'unit');
      const notAfter = Date.parse(renewed.validTo);
      assert.ok(
        notAfter >= before + TTL_MS - 2_000 && notAfter <= Date.now() + TTL_MS,
        `fresh validity of the TTL: ${renewed.validTo}`,
      );
      assert.deepEqual(res.tlsCas, (await auth.trustBundle()).tlsCAs);
      verifyChain(res.tlsCert, res.tlsCas, new Date());
      // The renewed certificate is a working identity for the same host.
      const again = client({ ...host.identity, certPem: res.tlsCert });
      clients.push(again);
      const twice = await again.renewHostCerts({ tlsPublicKey: host.keys.tlsPublicKey });
      assert.equal(readIdentity(twice.tlsCert).hostId, 'n1');
    },
  );

  it('renews the SSH certificate in the same call when asked, with the names of the TLS one', async () => {
    const host = await joinedHost('n2', 'node');
    const res = await host.api.renewHostCerts({ sshCert: host.issued.sshCert, tlsPublicKey: host.keys.tlsPublicKey });
    const ssh = parseCertificate(parseAuthorizedKey(res.sshCert).blob);
    assert.deepEqual(ssh.principals, parseCertificate(parseAuthorizedKey(host.issued.sshCert).blob).principals);
    assert.ok(ssh.validBefore.getTime() > Date.now() + TTL_MS - 5_000);
    assert.ok(res.tlsCert);
    await assert.rejects(host.api.renewHostCerts({}), BadParameter, 'nothing asked for');
  });

  it('lets every agent role that joins with a token renew, and keeps its roles', async () => {
    for (const role of ['node', 'proxy', 'db', 'app', 'kube']) {
      const host = await joinedHost(`agent-${role}`, role);
      const res = await host.api.renewHostCerts({ tlsPublicKey: host.keys.tlsPublicKey });
      assert.deepEqual(readIdentity(res.tlsCert).systemRoles, [role], role);
    }
  });

  it(
    'takes nothing from the request but the key it must match: names and host id are those of the ' +
      'presented certificate',
    async () => {
      const host = await joinedHost('n3', 'node', ['10.0.0.8', '10.0.0.9']);
      const other = await joinedHost('n4', 'node', ['10.0.0.10']);
      const issuedFor = async (hostId: string) =>
        (await auth.backend.search({ types: ['cert.create'], limit: 1000, order: 'desc' })).filter(
          (e) => (e as Record<string, unknown>).host_id === hostId,
        ).length;
      // Another host's SSH certificate (its id, its names) beside our own key: refused, and nothing is issued at all.
      await assert.rejects(
        host.api.renewHostCerts({ sshCert: other.issued.sshCert, tlsPublicKey: host.keys.tlsPublicKey }),
        AccessDenied,
      );
      assert.equal(await issuedFor('n3'), 0);
      assert.equal(await issuedFor('n4'), 0);
      const res = await host.api.renewHostCerts({ tlsPublicKey: host.keys.tlsPublicKey });
      assert.match(sans(res.tlsCert), /IP Address:10\.0\.0\.9/);
      assert.equal(sans(res.tlsCert), sans(host.issued.tlsCert));
      assert.equal(readIdentity(res.tlsCert).hostId, 'n3');
      // A request for a key that is not the presented certificate's: refused, whoever's key it is.
      await assert.rejects(
        host.api.renewHostCerts({ tlsPublicKey: other.keys.tlsPublicKey }),
        (e) => e instanceof AccessDenied && /not the key of the certificate/.test(e.message),
      );
      await assert.rejects(
        host.api.renewHostCerts({ tlsPublicKey: generateClientKeys('x').tlsPublicKey }),
        AccessDenied,
      );
      await assert.rejects(host.api.renewHostCerts({ tlsPublicKey: 'not a key' }), BadParameter);
      assert.equal(await issuedFor('n3'), 1);
    },
  );

  it('refuses user certificates, and the in-process services that are not joined hosts', async () => {
    await auth.createUser({
      name: 'n5',
      roles: ['access'],
      logins: ['n5'],
      password: 'correct horse battery',
      createdBy: 't',
    });
    const keys = generateClientKeys('n5');
    const certs = await auth.issueUserCerts(await auth.users.get('n5'), keys, 600_000, 't');
    const user = client({ keyPem: keys.tlsKey, certPem: certs.tlsCert, caPems: certs.tlsCAs });
    await assert.rejects(user.renewHostCerts({ tlsPublicKey: keys.tlsPublicKey }), AccessDenied);
    for (const roles of [['admin'], ['auth'], ['node', 'admin']]) {
      const key = await generateTLSKey();
      const { tlsCert, tlsCAs } = await auth.issueHostCerts({
        hostId: 'svc',
        systemRoles: roles,
        tlsPublicKey: key.publicKeyPem,
        dnsNames: ['localhost'],
        ipAddresses: [],
        expires: new Date(Date.now() + 600_000),
      });
      const svc = client({ keyPem: key.privateKeyPem, certPem: tlsCert, caPems: tlsCAs });
      await assert.rejects(svc.renewHostCerts({ tlsPublicKey: key.publicKeyPem }), AccessDenied, roles.join(','));
    }
  });

  it('refuses a locked host, named by host name or by id, and audits each renewal with the host id', async () => {
    const host = await joinedHost('n6', 'node');
    for (const target of ['h-n6', 'n6']) {
      await auth.locks.create({
        kind: 'lock',
        version: 'v1',
        metadata: { name: `lock-${target}` },
        spec: { target: { node: target }, message: 'compromised' },
      });
      await assert.rejects(
        host.api.renewHostCerts({ tlsPublicKey: host.keys.tlsPublicKey }),
        (e) => e instanceof AccessDenied && /is locked: compromised/.test(e.message),
      );
      await auth.locks.delete(`lock-${target}`);
    }
    const res = await host.api.renewHostCerts({ tlsPublicKey: host.keys.tlsPublicKey });
    const events = await auth.backend.search({ types: ['cert.create'], limit: 1000, order: 'desc' });
    const mine = events.filter((e) => (e as Record<string, unknown>).host_id === 'n6');
    assert.equal(mine.length, 1, 'one renewal, one event; the refused ones issued nothing');
    const event = mine[0] as Record<string, unknown>;
    assert.equal(event.cert_type, 'tls');
    assert.equal(event.issued_by, 'service:n6');
    assert.equal(event.expires, new Date(Date.parse(new X509Certificate(res.tlsCert).validTo)).toISOString());
  });

  it('refuses a certificate that has expired: only a new join helps then', async () => {
    const keys = generateClientKeys('n7');
    const { tlsCert, tlsCAs } = await auth.issueHostCerts({
      hostId: 'n7',
      systemRoles: ['node'],
      tlsPublicKey: keys.tlsPublicKey,
      dnsNames: ['n7'],
      ipAddresses: [],
      expires: new Date(Date.now() + 1_500),
    });
    await sleep(2_100);
    const late = client({ keyPem: keys.tlsKey, certPem: tlsCert, caPems: tlsCAs });
    await assert.rejects(
      late.renewHostCerts({ tlsPublicKey: keys.tlsPublicKey }),
      (e) => e instanceof AccessDenied && /expired/.test(e.message),
    );
  });
});
