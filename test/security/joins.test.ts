// Joins from addresses of the attacker's own (client sockets bound to 127.0.0.2-.4) against `ward start`, through
// the proxy's pass-through and straight to the auth server (issue 18, items 4 and 8). The auth server limits
// RegisterUsingToken per connection and per client address, also inside one connection the proxy let through.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { newHostKeys } from '../../src/agent/identity.ts';
import { ALPN_AUTH, fromRPCError } from '../../src/api/client.ts';
import { AuthService } from '../../src/api/gen/ward/auth/v1/auth_pb.ts';
import { cleanup, type Cluster } from '../harness.ts';
import { ok, startTarget } from './fixture.ts';

/** Joins an address may make at once here: few, so that a test floods past them quickly. */
const JOIN = { burst: 20, per_minute: 6 };
/** The auth server's bound on joins in one connection (auth/joinlimits.ts), under JOIN's burst here. */
const PER_CONNECTION = 10;

let cluster: Cluster;

before(async () => {
  cluster = (await startTarget({ authRateLimits: { join: JOIN } })).cluster;
});

after(cleanup);

/** An Auth API client without a certificate, on one HTTP/2 connection from `from`, to `addr` (proxy or auth). */
function clientFrom(from: string, addr: string): Client<typeof AuthService> {
  const [host, port] = addr.split(':') as [string, string];
  const ca = cluster.adminIdentity().caPems;
  const transport = createConnectTransport({
    httpVersion: '2',
    baseUrl: `https://${host}:${port}`,
    defaultTimeoutMs: 10_000,
    idleConnectionTimeoutMs: 1_000,
    nodeOptions: {
      createConnection: () => {
        const socket = net.connect({ host, port: Number(port), localAddress: from });
        return tls.connect({ socket, ALPNProtocols: [ALPN_AUTH, 'h2'], ca, servername: 'localhost' });
      },
    },
  });
  return createClient(AuthService, transport);
}

async function newToken(): Promise<string> {
  const token = /--token (\S+)/.exec(ok(await cluster.wctl(['tokens', 'add', '--type', 'node'])))?.[1];
  assert.ok(token, 'wctl tokens add printed no token');
  return token;
}

/** A join of a node named `hostname`: its answer, or the typed error it was refused with. */
async function join(client: Client<typeof AuthService>, token: string, hostname: string, addresses: string[] = []) {
  const keys = newHostKeys();
  const req = { token, systemRole: 'node', hostname, addresses, sshPublicKey: keys.sshPublicKey, tlsPublicKey: keys.tlsPublicKey };
  try {
    return await client.registerUsingToken(req);
  } catch (err) {
    return fromRPCError(err);
  }
}

const WRONG_TOKEN = 'f'.repeat(32);

describe('joins at the auth server', () => {
  it('refuses a flood of joins in one connection through the proxy, while another address still joins', async () => {
    const flood = clientFrom('127.0.0.2', cluster.proxyAddr);
    const answers = [];
    for (let i = 0; i < PER_CONNECTION + 3; i++) answers.push(await join(flood, WRONG_TOKEN, `flood-${i}`));
    const names = answers.map((a) => (a instanceof Error ? a.name : 'joined'));
    assert.deepEqual(names, [...Array(PER_CONNECTION).fill('AccessDenied'), 'LimitExceeded', 'LimitExceeded', 'LimitExceeded']);
    const refusal = answers.at(-1) as Error;
    assert.match(refusal.message, /^too many join requests from this address: try again in \d+ s$/);
    const joined = await join(clientFrom('127.0.0.3', cluster.proxyAddr), await newToken(), 'after-flood');
    assert.ok(!(joined instanceof Error), `a join from another address was refused: ${String(joined)}`);
  });
});
