// Auth API failover against a real listener and a dead address: every call succeeds whichever address
// it starts from, and the client stays on the live one afterwards.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { systemClock } from './clock.ts';
import { createAuthClient } from './client.ts';
import { ConnectionProblem } from './errors.ts';
import { SqliteBackend } from '../backend/sqlite.ts';
import { generateTLSKey } from '../crypto/x509.ts';
import { startAuthListener, type AuthListener } from '../auth/listener.ts';
import { AuthServer } from '../auth/server.ts';
import { splitAddrList } from './failover.ts';

const log = pino({ level: 'silent' });
let auth: AuthServer;
let listener: AuthListener;
let identity: { keyPem: string; certPem: string; caPems: string[] };
let dead: string;

before(async () => {
  auth = await AuthServer.create({
    clusterName: 'unit', backend: SqliteBackend.open({ path: ':memory:' }), clock: systemClock, log,
    lockout: { maxAttempts: 5, durationMs: 60_000 },
  });
  const key = await generateTLSKey();
  const issued = await auth.issueHostCerts({
    hostId: 'auth.unit', systemRoles: ['auth'], tlsPublicKey: key.publicKeyPem, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'],
    expires: new Date(Date.now() + 3_600_000),
  });
  identity = { keyPem: key.privateKeyPem, certPem: issued.tlsCert, caPems: issued.tlsCAs };
  listener = await startAuthListener(auth, identity, '127.0.0.1:0', log);
  // A port that refuses connections: bound, then closed.
  const probe = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  dead = `127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
  await new Promise((r) => probe.close(r));
});

after(async () => {
  await listener.close();
  await auth.backend.close();
});

describe('Auth API failover', () => {
  it('reaches the live auth server from either end of the list, on every call', async () => {
    const live = `127.0.0.1:${listener.address.port}`;
    for (const addr of [`${dead},${live}`, `${live},${dead}`]) {
      const client = createAuthClient({ addr, identity, timeoutMs: 5_000 });
      for (let i = 0; i < 5; i++) assert.equal((await client.ping({})).clusterName, 'unit');
      // A server stream too (the caches' Watch): it starts wherever the last call went.
      const stream = client.watch({ kinds: ['user'] }, { timeoutMs: 5_000 });
      for await (const e of stream) {
        assert.equal(e.type, 'init');
        break;
      }
    }
  });

  it('fails with one ConnectionProblem when no address answers', async () => {
    const client = createAuthClient({ addr: `${dead},${dead}`, identity, timeoutMs: 5_000 });
    await assert.rejects(client.ping({}), ConnectionProblem);
  });

  it('reads address lists with spaces and without empty entries', () => {
    assert.deepEqual(splitAddrList(' a:1, b:2,,'), ['a:1', 'b:2']);
  });
});
