// A host renewing its certificates before they expire (host/renewal.ts): when it is due, how it retries, and, in
// process against a real auth listener with a 3-second host certificate TTL, that it renews both certificates for
// the same keys, hands them over, and keeps calling the Auth API on new connections after the first one expired.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createAuthClient, type TLSIdentity } from '../api/client.ts';
import { ResourceCache } from '../cache/resources.ts';
import { issueHostIdentity } from '../auth/join.ts';
import type { AuthServer } from '../auth/server.ts';
import { startTestAuthAPI, type TestAuthAPI } from '../../test/fixtures/authapi.ts';
import { hostIdentity, newHostKeys, type HostIdentity } from './identity.ts';
import { expiredMessage, renewalDue, retryDelay, startHostCertRenewal, tlsIdentityOf } from './renewal.ts';
import { certValidity } from '../api/certinfo.ts';
import { trustedTLSCAs } from '../api/rotation.ts';

const log = pino({ level: 'silent' });
const TTL_MS = 3_000;
let auth: AuthServer;
let authAPI: TestAuthAPI;
let addr: string;

before(async () => {
  authAPI = await startTestAuthAPI({ hostCertTTLMs: TTL_MS });
  ({ auth, addr } = authAPI);
});

after(() => authAPI.close());

async function joined(hostId: string): Promise<HostIdentity> {
  const keys = newHostKeys();
  const issued = await issueHostIdentity(auth, {
    hostId,
    hostname: hostId,
    systemRole: 'node',
    addresses: [],
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
  });
  return hostIdentity(keys, issued, { hostname: hostId, systemRole: 'node' });
}

describe('when a host renews', () => {
  it('is due with a third of the lifetime left, counted from the issue (not the backdated start)', () => {
    const issued = Date.UTC(2026, 0, 1);
    const at = (ttl: number) => renewalDue({ notBefore: issued - 60_000, notAfter: issued + ttl });
    assert.equal(at(30_000), issued + 20_000);
    assert.equal(at(365 * 86_400_000), issued + (2 / 3) * 365 * 86_400_000);
    // A certificate from elsewhere with no backdating, shorter than the minute: due at once rather than never.
    assert.ok(renewalDue({ notBefore: issued, notAfter: issued + 30_000 }) <= issued + 30_000);
  });

  it('retries from 5 s, doubling up to 5 minutes, jittered, never past a quarter of the time left', () => {
    const hour = 3_600_000;
    assert.equal(
      retryDelay(1, hour, () => 1),
      5_000,
    );
    assert.equal(
      retryDelay(1, hour, () => 0),
      2_500,
    );
    assert.equal(
      retryDelay(3, hour, () => 1),
      20_000,
    );
    assert.equal(
      retryDelay(30, 365 * 86_400_000, () => 1),
      300_000,
    );
    assert.equal(
      retryDelay(1, 8_000, () => 1),
      2_000,
      'a short-lived certificate still gets several tries',
    );
    assert.equal(
      retryDelay(4, -5, () => 1),
      1_000,
    );
  });
});

describe('host certificate renewal in process', () => {
  it('renews both certificates for the same keys before they expire, and the client presents the new one', async () => {
    const first = await joined('r1');
    let tls: TLSIdentity = tlsIdentityOf(first);
    const client = createAuthClient({ addr, identity: () => tls, idleTimeoutMs: 500 });
    const cache = new ResourceCache(client, { kinds: ['cert_authority'], log }).start();
    await cache.ready();
    const renewed: HostIdentity[] = [];
    const renewal = startHostCertRenewal({
      cache,
      auth: client,
      identity: first,
      log,
      onRenewed: (id) => {
        renewed.push(id);
        tls = tlsIdentityOf(id);
      },
    });
    try {
      const firstEnd = certValidity(first.tlsCert).notAfter;
      // Due 2 s after the issue; the first certificate ends at 3 s.
      while (renewed.length === 0 && Date.now() < firstEnd) await sleep(50);
      const next = renewed[0];
      assert.ok(next, 'renewed before the first certificate ended');
      assert.notEqual(next.tlsCert, first.tlsCert);
      assert.notEqual(next.sshCert, first.sshCert);
      assert.equal(next.tlsKey, first.tlsKey);
      assert.equal(next.sshKey, first.sshKey);
      assert.equal(next.hostId, 'r1');
      assert.ok(new X509Certificate(next.tlsCert).publicKey.equals(new X509Certificate(first.tlsCert).publicKey));
      assert.ok(certValidity(next.tlsCert).notAfter > firstEnd);
      // Past the first certificate's end, calls still work: they go over connections with the renewed one.
      while (Date.now() <= firstEnd + 200) await sleep(50);
      const node = {
        kind: 'node',
        version: 'v1',
        metadata: { name: 'r1' },
        spec: { hostname: 'r1', addr: '', tunnel: true, version: 't' },
      };
      await client.heartbeat({ resource: { json: JSON.stringify(node) } });
      assert.ok(renewed.length >= 1);
    } finally {
      renewal.stop();
      cache.close();
    }
  });

  it(
    'asks only for the certificate that is due: ' + 'the SSH one stays while the host CA does not call for it',
    async () => {
      const id = await joined('r3');
      // A TLS certificate due within half a second, an SSH one due in 2 s.
      const { tlsCert } = await auth.issueHostCerts({
        hostId: 'r3',
        systemRoles: ['node'],
        tlsPublicKey: new X509Certificate(id.tlsCert).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        dnsNames: ['r3'],
        ipAddresses: [],
        expires: new Date(Date.now() + 1_500),
      });
      const identity = { ...id, tlsCert };
      const asked: Array<{ sshCert?: string; tlsPublicKey?: string }> = [];
      const api = {
        renewHostCerts: async (req: { sshCert?: string; tlsPublicKey?: string }) => {
          asked.push(req);
          return { sshCert: '', sshHostCas: [], tlsCert: id.tlsCert, tlsCas: id.tlsCAs };
        },
      } as unknown as ReturnType<typeof createAuthClient>;
      const cache = { get: () => undefined, onChange: () => undefined } as unknown as ResourceCache;
      const renewed: HostIdentity[] = [];
      const renewal = startHostCertRenewal({ cache, auth: api, identity, log, onRenewed: (r) => void renewed.push(r) });
      try {
        while (renewed.length === 0) await sleep(20);
      } finally {
        renewal.stop();
      }
      assert.equal(asked[0]!.sshCert, '', 'no SSH certificate asked for');
      assert.ok(asked[0]!.tlsPublicKey);
      assert.equal(renewed[0]!.sshCert, id.sshCert, 'the SSH certificate kept');
      assert.equal(renewed[0]!.tlsCert, id.tlsCert);
    },
  );

  it('says to join again, once, when the certificate has already expired, and asks for nothing', async () => {
    const keys = newHostKeys();
    const issued = await issueHostIdentity(auth, {
      hostId: 'r2',
      hostname: 'r2',
      systemRole: 'node',
      addresses: [],
      sshPublicKey: keys.sshPublicKey,
      tlsPublicKey: keys.tlsPublicKey,
    });
    const identity = hostIdentity(keys, issued, { hostname: 'r2', systemRole: 'node' });
    const lines: Array<{ level: number; msg: string }> = [];
    const captured = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    let calls = 0;
    const api = {
      renewHostCerts: async () => {
        calls++;
        throw new Error('not reached');
      },
    } as unknown as ReturnType<typeof createAuthClient>;
    const cache = { get: () => undefined, onChange: () => undefined } as unknown as ResourceCache;
    const late = { now: () => new Date(certValidity(identity.tlsCert).notAfter + 1_000) };
    const renewal = startHostCertRenewal({
      cache,
      auth: api,
      identity,
      log: captured,
      clock: late,
      onRenewed: () => assert.fail('renewed'),
    });
    await sleep(100);
    renewal.stop();
    assert.equal(calls, 0);
    const errors = lines.filter((l) => l.level === 50);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.msg, expiredMessage(identity, certValidity(identity.tlsCert).notAfter));
    assert.match(errors[0]!.msg, /join it again with a new token/);
  });
});

describe('host certificate renewal through a TLS CA rotation', () => {
  it('trusts both keys from init, moves the TLS certificate in update_servers, and back at a rollback', async () => {
    const api = await startTestAuthAPI(); // a year's host certificates: nothing here is due by expiry
    try {
      const keys = newHostKeys();
      const issued = await issueHostIdentity(api.auth, {
        hostId: 't1',
        hostname: 't1',
        systemRole: 'node',
        addresses: [],
        sshPublicKey: keys.sshPublicKey,
        tlsPublicKey: keys.tlsPublicKey,
      });
      const first = hostIdentity(keys, issued, { hostname: 't1', systemRole: 'node' });
      let current = first;
      const client = createAuthClient({ addr: api.addr, identity: () => tlsIdentityOf(current), idleTimeoutMs: 500 });
      const cache = new ResourceCache(client, { kinds: ['cert_authority'], log }).start();
      await cache.ready();
      const renewal = startHostCertRenewal({
        cache,
        auth: client,
        identity: first,
        log,
        onRenewed: (id) => (current = id),
      });
      const step = async (move: Parameters<AuthServer['rotateCA']>[1]) => {
        const ca = await api.auth.rotateCA('tls', move, 'test');
        // The test listener does not follow the CA as `ward start` does (auth/tlstrust.ts): give it the bundle.
        api.listener.setTLS({ ...api.tls, caPems: trustedTLSCAs(ca) });
        return ca;
      };
      const until = async (what: string, check: () => boolean) => {
        for (const end = Date.now() + 10_000; !check(); await sleep(50)) {
          if (Date.now() > end) assert.fail(`timed out: ${what}`);
        }
      };
      const [oldCA] = first.tlsCAs as [string];
      try {
        const init = await step({ target: 'init' });
        const newCA = init.spec.additional_keys[0]!.public;
        await until('the host to trust both keys', () => current.tlsCAs.length === 2);
        assert.equal(current.tlsCert, first.tlsCert, 'init: the certificate stays');
        await step({ target: 'update_clients' });
        await sleep(1_500);
        assert.equal(current.tlsCert, first.tlsCert, 'update_clients: servers keep theirs');
        await step({ target: 'update_servers' });
        const signedBy = (ca: string) => new X509Certificate(current.tlsCert).checkIssued(new X509Certificate(ca));
        await until('a certificate from the new key', () => signedBy(newCA));
        const publicKey = (pem: string) => new X509Certificate(pem).publicKey;
        assert.ok(publicKey(current.tlsCert).equals(publicKey(first.tlsCert)), 'for the same key');
        assert.equal(current.sshCert, first.sshCert, 'the SSH certificate is not touched');
        await step({ rollback: true });
        await until('a certificate from the old key again', () => signedBy(oldCA));
        await step({ target: 'standby' });
        await until('the host to trust the old key alone', () => current.tlsCAs.join() === oldCA);
      } finally {
        renewal.stop();
        cache.close();
      }
    } finally {
      await api.close();
    }
  });
});
