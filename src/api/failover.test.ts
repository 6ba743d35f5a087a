// Auth API failover against a real listener and a dead address: every call succeeds whichever address
// it starts from, and the client stays on the live one afterwards.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestAuthAPI, type TestAuthAPI } from '../../test/fixtures/authapi.ts';
import { createAuthClient, type TLSIdentity } from './client.ts';
import { ConnectionProblem } from './errors.ts';
import { splitAddrList } from './failover.ts';

let api: TestAuthAPI;
let identity: TLSIdentity;
let dead: string;

before(async () => {
  api = await startTestAuthAPI();
  // The auth server's own identity: a client presenting it is admitted like any host.
  identity = api.tls;
  // A port that refuses connections: bound, then closed.
  const probe = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  dead = `127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
  await new Promise((r) => probe.close(r));
});

after(() => api.close());

describe('Auth API failover', () => {
  it('reaches the live auth server from either end of the list, on every call', async () => {
    const live = api.addr;
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

  it(
    'fails with one ConnectionProblem when no address answers, ' + 'naming the server as the caller describes it',
    async () => {
      const client = createAuthClient({ addr: `${dead},${dead}`, identity, timeoutMs: 5_000 });
      await assert.rejects(
        client.ping({}),
        (err: Error) =>
          err instanceof ConnectionProblem && /^cannot reach the auth server: .*ECONNREFUSED/.test(err.message),
      );
      // wsh reaches the Auth API through the proxy: its errors say so.
      const viaProxy = createAuthClient({
        addr: dead,
        identity,
        timeoutMs: 5_000,
        describedAs: `the proxy at ${dead}`,
      });
      await assert.rejects(viaProxy.ping({}), (err: Error) =>
        err.message.startsWith(`cannot reach the proxy at ${dead}: `),
      );
    },
  );

  it('reads address lists with spaces and without empty entries', () => {
    assert.deepEqual(splitAddrList(' a:1, b:2,,'), ['a:1', 'b:2']);
  });
});
