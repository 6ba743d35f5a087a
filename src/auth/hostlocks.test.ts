// Host locks and revocation at the Auth API, with hosts that really joined (RegisterUsingToken over the API) and a
// clock the test moves, so a listing can expire as it does when a host stops heartbeating for 90 s.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAuthClient, type AuthClient, type TLSIdentity } from '../api/client.ts';
import { FakeClock } from '../time/clock.ts';
import { AccessDenied, BadParameter, NotFound } from '../api/errors.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { SqliteBackend } from '../backend/sqlite.ts';
import { serviceIdentity, startTestAuthAPI, type TestAuthAPI } from '../../test/fixtures/authapi.ts';
import { NODE_TTL_MS } from './join.ts';
import type { AuthServer } from './server.ts';

let api: TestAuthAPI;
let auth: AuthServer;
let admin: AuthClient;
// Starts now: certificates are checked against the real clock in the TLS handshake.
const clock = new FakeClock(new Date());

/** Joins a host with a fresh token of `role`, as `ward start --token` does, and returns its client and host id. */
async function join(hostname: string, role: 'node' | 'proxy'): Promise<{ client: AuthClient; hostId: string }> {
  const token = await auth.createToken({ roles: [role], ttlMs: 60_000, by: 'test' });
  const keys = generateClientKeys(hostname);
  const anonymous = createAuthClient({ addr: api.addr, caPems: api.tls.caPems });
  const joined = await anonymous.registerUsingToken({
    token: token.metadata.name,
    systemRole: role,
    hostname,
    addresses: ['127.0.0.1'],
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
  });
  const identity: TLSIdentity = { keyPem: keys.tlsKey, certPem: joined.tlsCert, caPems: joined.tlsCas };
  return { client: createAuthClient({ addr: api.addr, identity }), hostId: joined.hostId };
}

function heartbeat(host: { client: AuthClient; hostId: string }, hostname: string) {
  const spec = { hostname, addr: '', tunnel: true, version: 'x' };
  const node = { kind: 'node', version: 'v1', metadata: { name: host.hostId }, spec };
  return host.client.heartbeat({ resource: { json: JSON.stringify(node) }, remove: false });
}

function lock(target: Record<string, string>, name = `lock-${Math.random().toString(36).slice(2)}`) {
  const resource = { kind: 'lock', version: 'v1', metadata: { name }, spec: { target } };
  return admin.upsertResource({ resource: { json: JSON.stringify(resource) }, overwrite: false });
}

before(async () => {
  api = await startTestAuthAPI({ clock, backend: SqliteBackend.open({ path: ':memory:', clock }) });
  auth = api.auth;
  admin = createAuthClient({ addr: api.addr, identity: await serviceIdentity(auth, 'admin', ['admin']) });
});

after(() => api.close());

describe('host locks', () => {
  it('stores a lock by host name as the host id of the one node of that name', async () => {
    const host = await join('web-1', 'node');
    await heartbeat(host, 'web-1');
    const saved = JSON.parse((await lock({ node: 'web-1' }, 'by-name')).json);
    assert.deepEqual(saved.spec.target, { node: host.hostId });
    assert.equal(saved.spec.node_name, 'web-1');
    const locked = (e: unknown) => e instanceof AccessDenied && /node "web-1" is locked/.test(e.message);
    await assert.rejects(heartbeat(host, 'web-1-renamed'), locked);
    await admin.deleteResource({ kind: 'lock', name: 'by-name' });
    await heartbeat(host, 'web-1');
  });

  it('refuses a name of no node, and a name of several, naming their ids', async () => {
    const noNode = (e: unknown) => e instanceof BadParameter && /no node is named "nobody"/.test(e.message);
    await assert.rejects(lock({ node: 'nobody' }), noNode);
    const [a, b] = [await join('twin', 'node'), await join('twin', 'node')];
    await heartbeat(a, 'twin');
    await heartbeat(b, 'twin');
    const namesBoth = (e: unknown) =>
      e instanceof BadParameter && e.message.includes(a.hostId) && e.message.includes(b.hostId);
    await assert.rejects(lock({ node: 'twin' }), namesBoth);
    assert.equal((await admin.listResources({ kind: 'lock' })).resources.length, 0);
  });

  it('locks a host that is not listed now by its host id', async () => {
    const host = await join('offline', 'node');
    await lock({ node: host.hostId }, 'offline');
    await assert.rejects(heartbeat(host, 'offline'), AccessDenied);
    await admin.deleteResource({ kind: 'lock', name: 'offline' });
  });

  it("ends a locked host's watch stream at the lock", async () => {
    const host = await join('watcher', 'node');
    const abort = new AbortController();
    const ended = (async () => {
      for await (const e of host.client.watch({ kinds: ['role'] }, { signal: abort.signal })) {
        if (e.type === 'init') await lock({ node: host.hostId }, 'stop-watcher');
      }
    })();
    const timer = setTimeout(() => abort.abort(), 10_000);
    // Streams end with the RPC error itself (the client maps unary calls' errors only).
    await assert.rejects(ended, (e) => /permission_denied.*is locked/.test((e as Error).message));
    clearTimeout(timer);
    await admin.deleteResource({ kind: 'lock', name: 'stop-watcher' });
  });
});

describe('removing a host', () => {
  it('revokes a proxy removed by an admin, as a node', async () => {
    const proxy = await join('proxy-host', 'proxy');
    const spec = { addr: '127.0.0.1:3080', version: 'x' };
    const presence = { kind: 'proxy', version: 'v1', metadata: { name: proxy.hostId }, spec };
    const beat = () => proxy.client.heartbeat({ resource: { json: JSON.stringify(presence) }, remove: false });
    await beat();
    await admin.deleteResource({ kind: 'proxy', name: proxy.hostId });
    await assert.rejects(beat(), (e) => e instanceof AccessDenied && /revoked/.test(e.message));
    await assert.rejects(proxy.client.listResources({ kind: 'node' }), AccessDenied);
  });

  it('lets a node whose listing expired come back, and refuses one an admin removed until unlocked', async () => {
    const host = await join('comes-back', 'node');
    await heartbeat(host, 'comes-back');
    // No heartbeat for longer than a listing lives (last: certificates issued after this are not valid yet).
    clock.advance(NODE_TTL_MS + 1_000);
    await assert.rejects(admin.getResource({ kind: 'node', name: host.hostId }), NotFound);
    await heartbeat(host, 'comes-back');
    const listed = await admin.getResource({ kind: 'node', name: host.hostId });
    assert.equal(JSON.parse(listed.json).spec.hostname, 'comes-back');

    await admin.deleteResource({ kind: 'node', name: host.hostId });
    const revoked = (e: unknown) =>
      e instanceof AccessDenied && /node "comes-back" is locked: .*revoked/.test(e.message);
    await assert.rejects(heartbeat(host, 'comes-back'), revoked);
    await assert.rejects(host.client.listResources({ kind: 'user' }), AccessDenied);
    await assert.rejects(admin.getResource({ kind: 'node', name: host.hostId }), NotFound);
    await admin.deleteResource({ kind: 'lock', name: `revoked-${host.hostId}` });
    await heartbeat(host, 'comes-back');
  });
});
