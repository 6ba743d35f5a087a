// The Auth API in process: a real AuthServer on SQLite behind the real mTLS listener, called with the
// real client. Covers the watch stream and the authorisation guard; test/ drives the same through CLIs.
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createAuthClient, type AuthClient } from '../api/client.ts';
import { AccessDenied, NotFound } from '../api/errors.ts';
import { parseCertificate } from '../crypto/sshcert.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { serviceIdentity, startTestAuthAPI, type TestAuthAPI } from '../../test/fixtures/authapi.ts';
import type { AuthServer } from './server.ts';

let api: TestAuthAPI;
let auth: AuthServer;
let addr: string;

async function serviceClient(hostId: string, systemRoles: string[]): Promise<AuthClient> {
  return createAuthClient({ addr, identity: await serviceIdentity(auth, hostId, systemRoles) });
}

async function userClient(name: string): Promise<AuthClient> {
  const keys = generateClientKeys(name);
  const certs = await auth.issueUserCerts(await auth.users.get(name), keys, 3_600_000, 'test');
  return createAuthClient({ addr, identity: { keyPem: keys.tlsKey, certPem: certs.tlsCert, caPems: certs.tlsCAs } });
}

before(async () => {
  api = await startTestAuthAPI();
  ({ auth, addr } = api);
  await auth.createUser({
    name: 'alice',
    roles: ['access'],
    logins: ['alice'],
    password: 'correct horse',
    createdBy: 'test',
  });
  await auth.createUser({ name: 'ed', roles: ['editor'], logins: [], password: 'correct horse', createdBy: 'test' });
});

after(() => api.close());

describe('Auth API watch stream', () => {
  it('starts with init, then streams changes to the watched kinds in order', async () => {
    const proxy = await serviceClient('proxy.unit', ['proxy']);
    const abort = new AbortController();
    const events: string[] = [];
    const stream = proxy.watch({ kinds: ['role'] }, { signal: abort.signal });
    const done = (async () => {
      try {
        for await (const e of stream) {
          events.push(`${e.type}:${e.name}`);
          if (e.type === 'init') {
            const admin = await serviceClient('admin', ['admin']);
            const role = {
              kind: 'role',
              version: 'v1',
              metadata: { name: 'dev' },
              spec: { allow: { logins: ['dev'] } },
            };
            await admin.upsertResource({ resource: { json: JSON.stringify(role) }, overwrite: false });
            await admin.deleteResource({ kind: 'role', name: 'dev' });
          }
          if (e.type === 'delete') abort.abort();
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
    })();
    await done;
    assert.deepEqual(events, ['init:', 'put:dev', 'delete:dev']);
  });

  it('never sends CA private keys', async () => {
    const proxy = await serviceClient('proxy.unit', ['proxy']);
    const res = await proxy.listResources({ kind: 'cert_authority' });
    assert.equal(res.resources.length, 5);
    for (const r of res.resources) assert.ok(!r.json.includes('PRIVATE KEY') && !r.json.includes('"private"'));
  });
});

describe('Auth API listings', () => {
  it('pages a listing and ends it on a full last page without an empty one', async () => {
    const admin = await serviceClient('admin.paging', ['admin']);
    const names = ['page-a', 'page-b', 'page-c'];
    for (const name of names) {
      const node = {
        kind: 'node',
        version: 'v1',
        metadata: { name, labels: { paging: 'yes' } },
        spec: { hostname: name, addr: '', tunnel: true, version: 'test' },
      };
      await admin.upsertResource({ resource: { json: JSON.stringify(node) }, overwrite: true });
    }
    const all = (await admin.listResources({ kind: 'node', limit: 10_000 })).resources.map(
      (r) => JSON.parse(r.json).metadata.name as string,
    );
    const ours = all.filter((n) => names.includes(n));
    assert.deepEqual(ours, names);
    const first = await admin.listResources({ kind: 'node', limit: all.length - 1 });
    assert.equal(first.resources.length, all.length - 1);
    assert.equal(first.nextKey, JSON.parse(first.resources.at(-1)!.json).metadata.name);
    const rest = await admin.listResources({ kind: 'node', limit: all.length - 1, startAfter: first.nextKey });
    assert.equal(rest.resources.length, 1);
    assert.equal(rest.nextKey, '');
    const whole = await admin.listResources({ kind: 'node', limit: all.length });
    assert.equal(whole.resources.length, all.length);
    assert.equal(whole.nextKey, '', 'a page that holds the rest exactly is the last one');
  });

  it('packs a page into one JSON array holding what the unpacked page holds, paged and filtered alike', async () => {
    const admin = await serviceClient('admin.packing', ['admin']);
    for (const [name, rack] of [
      ['pack-a', 'a'],
      ['pack-b', 'b'],
      ['pack-c', 'a'],
    ]) {
      const node = {
        kind: 'node',
        version: 'v1',
        metadata: { name, labels: { rack } },
        spec: { hostname: name, addr: '', tunnel: true, version: 'test' },
      };
      await admin.upsertResource({ resource: { json: JSON.stringify(node) }, overwrite: true });
    }
    const unpacked = async (client: AuthClient, limit: number, startAfter = '') => {
      const page = await client.listResources({ kind: 'node', limit, startAfter });
      assert.equal(page.packedJson, '');
      return {
        items: page.resources.map((r) => JSON.parse(r.json) as { metadata: { name: string } }),
        nextKey: page.nextKey,
      };
    };
    const packed = async (client: AuthClient, limit: number, startAfter = '') => {
      const page = await client.listResources({ kind: 'node', limit, startAfter, packed: true });
      assert.equal(page.resources.length, 0, 'a packed page sends no per-resource messages');
      return { items: JSON.parse(page.packedJson) as Array<{ metadata: { name: string } }>, nextKey: page.nextKey };
    };
    const all = await unpacked(admin, 10_000);
    assert.deepEqual(await packed(admin, 10_000), all);
    assert.deepEqual(await packed(admin, 2), await unpacked(admin, 2));
    assert.deepEqual(await packed(admin, 2, 'pack-a'), await unpacked(admin, 2, 'pack-a'));
    const rackA = {
      kind: 'role',
      version: 'v1',
      metadata: { name: 'rack-a' },
      spec: {
        allow: { logins: ['x'], node_labels: { rack: ['a'] }, rules: [{ resources: ['node'], verbs: ['list'] }] },
      },
    };
    await admin.upsertResource({ resource: { json: JSON.stringify(rackA) }, overwrite: true });
    await auth.createUser({
      name: 'rita',
      roles: ['rack-a'],
      logins: [],
      password: 'long enough pw',
      createdBy: 'test',
    });
    const rita = await userClient('rita');
    const seen = await packed(rita, 10_000);
    assert.deepEqual(
      seen.items.map((n) => n.metadata.name),
      ['pack-a', 'pack-c'],
      'the role filter applies to a packed page',
    );
    assert.deepEqual(seen, await unpacked(rita, 10_000));
    assert.deepEqual(await packed(rita, 10_000, 'pack-c'), { items: [], nextKey: '' });
  });
});

describe('Auth API authorisation', () => {
  it('answers Ping without a certificate and nothing else', async () => {
    const anonymous = createAuthClient({ addr, caPems: (await auth.trustBundle()).tlsCAs });
    assert.equal((await anonymous.ping({})).clusterName, 'unit');
    await assert.rejects(
      anonymous.listResources({ kind: 'role' }),
      (e) => e instanceof AccessDenied && /log in first/.test(e.message),
    );
  });
  it('lets an editor create users but not an access-only user', async () => {
    const ed = await userClient('ed');
    await ed.createUser({ name: 'bob', roles: ['access'], logins: ['bob'], password: 'long enough pw' });
    const alice = await userClient('alice');
    await assert.rejects(
      alice.createUser({ name: 'eve', roles: ['editor'], logins: [], password: 'long enough pw' }),
      AccessDenied,
    );
    await assert.rejects(alice.listResources({ kind: 'user' }), AccessDenied);
  });
  it('keeps password login for proxies: a user certificate may not submit passwords', async () => {
    const alice = await userClient('alice');
    const keys = generateClientKeys('alice');
    await assert.rejects(
      alice.authenticateUser({
        user: 'alice',
        password: 'correct horse',
        sshPublicKey: keys.sshPublicKey,
        tlsPublicKey: keys.tlsPublicKey,
      }),
      AccessDenied,
    );
    const proxy = await serviceClient('proxy.unit', ['proxy']);
    const certs = await proxy.authenticateUser({
      user: 'alice',
      password: 'correct horse',
      sshPublicKey: keys.sshPublicKey,
      tlsPublicKey: keys.tlsPublicKey,
      ttlSeconds: 600,
    });
    assert.equal(certs.ttlSeconds, 600);
  });
  it('refuses a node service that tries to create users, and a user whose role was deleted', async () => {
    const node = await serviceClient('node-1', ['node']);
    await assert.rejects(
      node.createUser({ name: 'x', roles: ['access'], logins: [], password: 'long enough pw' }),
      AccessDenied,
    );
    const admin = await serviceClient('admin', ['admin']);
    const temp = {
      kind: 'role',
      version: 'v1',
      metadata: { name: 'temp' },
      spec: { allow: { rules: [{ resources: ['role'], verbs: ['list'] }] } },
    };
    await admin.upsertResource({ resource: { json: JSON.stringify(temp) }, overwrite: false });
    await auth.createUser({ name: 'tina', roles: ['temp'], logins: [], password: 'long enough pw', createdBy: 'test' });
    const tina = await userClient('tina');
    assert.ok((await tina.listResources({ kind: 'role' })).resources.length >= 4);
    await assert.rejects(admin.deleteResource({ kind: 'role', name: 'temp' }), /still assigned to tina/);
    // her certificate still names temp
    await auth.users.modify('tina', (u) => ({ ...u, spec: { ...u.spec, roles: ['access'] } }));
    await admin.deleteResource({ kind: 'role', name: 'temp' });
    await assert.rejects(
      tina.listResources({ kind: 'role' }),
      (e) => e instanceof AccessDenied && /no longer exists/.test(e.message),
    );
  });
  it('refuses calls on a connection kept open past the end of its certificate', async () => {
    // A TCP relay in front of the listener counts connections, so the refusal is shown to come on the
    // connection the handshake accepted (the certificate is read once per connection), not a new one.
    let connections = 0;
    const relay = net.createServer((c) => {
      connections++;
      const up = net.connect(api.listener.address.port, '127.0.0.1');
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    try {
      const keys = generateClientKeys('alice');
      const issued = Date.now();
      // notAfter has whole seconds, so the certificate ends between 2 and 3 s from now.
      const certs = await auth.issueUserCerts(await auth.users.get('alice'), keys, 3_000, 'test');
      const alice = createAuthClient({
        addr: `127.0.0.1:${(relay.address() as net.AddressInfo).port}`,
        identity: { keyPem: keys.tlsKey, certPem: certs.tlsCert, caPems: certs.tlsCAs },
      });
      const renew = () =>
        alice.generateUserCerts({
          user: 'alice',
          sshPublicKey: keys.sshPublicKey,
          tlsPublicKey: keys.tlsPublicKey,
          ttlSeconds: 60,
        });
      while (Date.now() < issued + 1_000) {
        await renew();
        await setTimeout(100);
      }
      await setTimeout(issued + 3_200 - Date.now());
      await assert.rejects(renew(), (e) => e instanceof AccessDenied && /certificate has expired/.test(e.message));
      assert.equal(connections, 1);
    } finally {
      relay.close();
    }
  });
});

describe('GenerateUserCerts', () => {
  // The auth server decodes the user, roles and CAs once per stored version (ResourceService.getShared):
  // every change must still reach the very next call.
  it(
    'sees a role edited, a user locked, a lock placed or lifted, a role removed and a user deleted on ' +
      'the very next call',
    async () => {
      const admin = await serviceClient('admin', ['admin']);
      const role = (logins: string[]) => ({
        kind: 'role',
        version: 'v1',
        metadata: { name: 'shifts' },
        spec: { allow: { logins } },
      });
      await admin.upsertResource({ resource: { json: JSON.stringify(role(['early'])) }, overwrite: false });
      await auth.createUser({
        name: 'sam',
        roles: ['shifts'],
        logins: [],
        password: 'long enough pw',
        createdBy: 'test',
      });
      const keys = generateClientKeys('sam');
      const sign = (c: AuthClient) =>
        c.generateUserCerts({
          user: 'sam',
          sshPublicKey: keys.sshPublicKey,
          tlsPublicKey: keys.tlsPublicKey,
          ttlSeconds: 600,
        });
      const principals = async (c: AuthClient) =>
        parseCertificate(parseAuthorizedKey((await sign(c)).sshCert).blob).principals;
      const sam = await userClient('sam');
      assert.deepEqual(await principals(admin), ['early']);
      assert.deepEqual(await principals(sam), ['early']);
      await admin.upsertResource({ resource: { json: JSON.stringify(role(['late'])) }, overwrite: true });
      assert.deepEqual(await principals(admin), ['late']);
      assert.deepEqual(await principals(sam), ['late']);
      await auth.users.modify('sam', (u) => ({
        ...u,
        spec: { ...u.spec, locked_until: new Date(Date.now() + 60_000).toISOString() },
      }));
      await assert.rejects(sign(admin), (e) => e instanceof AccessDenied && /locked/.test(e.message));
      await assert.rejects(sign(sam), (e) => e instanceof AccessDenied && /locked/.test(e.message));
      await auth.users.modify('sam', (u) => ({ ...u, spec: { ...u.spec, locked_until: undefined } }));
      assert.deepEqual(await principals(admin), ['late']);
      for (const target of [{ user: 'sam' }, { role: 'shifts' }]) {
        const lock = {
          kind: 'lock',
          version: 'v1',
          metadata: { name: 'stop-sam' },
          spec: { target, message: 'incident' },
        };
        await admin.upsertResource({ resource: { json: JSON.stringify(lock) }, overwrite: false });
        await assert.rejects(sign(admin), (e) => e instanceof AccessDenied && /is locked: incident/.test(e.message));
        await assert.rejects(sign(sam), (e) => e instanceof AccessDenied && /is locked: incident/.test(e.message));
        await admin.deleteResource({ kind: 'lock', name: 'stop-sam' });
        assert.deepEqual(await principals(sam), ['late']);
      }
      await auth.roles.delete('shifts'); // behind the API's back: the user still names it
      await assert.rejects(sign(admin), (e) => e instanceof AccessDenied && /no longer exists/.test(e.message));
      await assert.rejects(sign(sam), (e) => e instanceof AccessDenied && /no longer exists/.test(e.message));
      await admin.upsertResource({ resource: { json: JSON.stringify(role(['back'])) }, overwrite: false });
      assert.deepEqual(await principals(sam), ['back']);
      await admin.deleteResource({ kind: 'user', name: 'sam' });
      await assert.rejects(sign(admin), NotFound);
      await assert.rejects(sign(sam), AccessDenied);
    },
  );
});

describe('agent audit events', () => {
  it("stores what a node reports, under the node's own id whatever the event claims", async () => {
    const node = await serviceClient('node-7', ['node']);
    await node.emitAuditEvents({
      events: [
        JSON.stringify({ event: 'exec', user: 'alice', command: 'uptime', server_id: 'someone-else', code: 'X' }),
      ],
    });
    const [stored] = await auth.backend.search({ types: ['exec'], limit: 1 });
    assert.equal(stored?.server_id, 'node-7');
    assert.equal(stored?.emitter, 'node-7');
    assert.equal(stored?.emitter_role, 'node');
    assert.equal(stored?.code, 'WE3000I');
    assert.equal(stored?.command, 'uptime');
  });
  it('refuses users, unknown event names and oversized batches', async () => {
    const alice = await userClient('alice');
    await assert.rejects(alice.emitAuditEvents({ events: [JSON.stringify({ event: 'exec' })] }), AccessDenied);
    const node = await serviceClient('node-7', ['node']);
    await assert.rejects(
      node.emitAuditEvents({ events: [JSON.stringify({ event: 'user.create', name: 'x' })] }),
      /may not report "user.create"/,
    );
    await assert.rejects(node.emitAuditEvents({ events: ['not json'] }), /not valid JSON/);
    await assert.rejects(node.emitAuditEvents({ events: Array(1001).fill('{"event":"exec"}') }), /at most 1000/);
  });
  it('lets each kind of host report only what a host of its kind witnesses', async () => {
    const session = JSON.stringify({ event: 'session.start', user: 'alice', login: 'root' });
    const proxy = await serviceClient('proxy-7', ['proxy']);
    await assert.rejects(proxy.emitAuditEvents({ events: [session] }), /a proxy may not report "session.start"/);
    for (const [id, roles] of [
      ['admin', ['admin']],
      ['db-7', ['db']],
    ] as const) {
      const host = await serviceClient(id, [...roles]);
      await assert.rejects(host.emitAuditEvents({ events: [session] }), AccessDenied);
    }
    assert.equal((await auth.backend.search({ types: ['session.start'], limit: 10 })).length, 0);
  });
});
