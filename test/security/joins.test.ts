// Joins from addresses of the attacker's own (client sockets bound to 127.0.0.2-.5) against `ward start`, through
// the proxy's pass-through and straight to the auth server (issue 18, items 4 and 8). The auth server limits
// RegisterUsingToken per connection and per client address, also inside one connection the proxy let through; it
// learns a proxied client's address from the proxy's signed header, and closes a connection with a forged one.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { join as joinPath } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { newHostKeys } from '../../src/host/identity.ts';
import { ALPN_AUTH, fromRPCError } from '../../src/api/client.ts';
import { AuthService } from '../../src/api/gen/ward/auth/v1/auth_pb.ts';
import { encodeProxyHeader } from '../../src/api/proxyheader.ts';
import { certDer } from '../../src/api/certinfo.ts';
import { cleanup, poll, readTLSIdentity, type Cluster } from '../harness.ts';
import { ok, startTarget } from './fixture.ts';

/** Joins an address may make at once here: few, so that a test floods past them quickly. */
const JOIN = { burst: 20, per_minute: 6 };
/** The auth server's bound on joins in one connection (auth/joinlimits.ts), under JOIN's burst here. */
const PER_CONNECTION = 10;

let cluster: Cluster;
let user: string;

before(async () => {
  const target = await startTarget({ authRateLimits: { join: JOIN } });
  cluster = target.cluster;
  user = target.user;
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
  const { sshPublicKey, tlsPublicKey } = keys;
  const req = { token, systemRole: 'node', hostname, addresses, sshPublicKey, tlsPublicKey };
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
    assert.deepEqual(names, [...Array(PER_CONNECTION).fill('AccessDenied'), ...Array(3).fill('LimitExceeded')]);
    const refusal = answers.at(-1) as Error;
    assert.match(refusal.message, /^too many join requests from this address: try again in \d+ s$/);
    const joined = await join(clientFrom('127.0.0.3', cluster.proxyAddr), await newToken(), 'after-flood');
    assert.ok(!(joined instanceof Error), `a join from another address was refused: ${String(joined)}`);
  });
});

/** The names a join's TLS certificate was issued for (DNS names and IP addresses). */
function certNames(tlsCert: string): string[] {
  const san = new X509Certificate(tlsCert).subjectAltName ?? '';
  return san.split(', ').map((n) => n.replace(/^(DNS|IP Address):/, ''));
}

/** The remote_addr of the newest node.join event for `hostname`. */
async function joinAudited(hostname: string): Promise<string | undefined> {
  const { events } = await cluster.adminClient().searchEvents({ types: ['node.join'], limit: 50, order: 'desc' });
  const parsed = events.map((e) => JSON.parse(e) as { hostname?: string; remote_addr?: string });
  return parsed.find((e) => e.hostname === hostname)?.remote_addr;
}

describe('client addresses behind the proxy', () => {
  it('gives no loopback names to a join through the proxy from another address, and audits that address', async () => {
    const names = ['localhost', '127.0.0.1', '::1', '10.20.30.40'];
    const joined = await join(clientFrom('127.0.0.2', cluster.proxyAddr), await newToken(), 'far-host', names);
    assert.ok(!(joined instanceof Error), `the join was refused: ${String(joined)}`);
    const issued = certNames(joined.tlsCert);
    assert.ok(issued.includes('10.20.30.40') && issued.includes('far-host'), issued.join(' '));
    const loopback = issued.filter((n) => /^(localhost|127\.|::1$|0:0:0:0:0:0:0:1$)/i.test(n));
    assert.deepEqual(loopback, [], `loopback names issued: ${issued.join(' ')}`);
    assert.equal(await joinAudited('far-host'), '127.0.0.2');
    const named = await join(clientFrom('127.0.0.2', cluster.proxyAddr), await newToken(), 'localhost');
    assert.ok(named instanceof Error && named.name === 'BadParameter', String(named));
    assert.match(named.message, /a loopback name is only for a host on the auth server's machine/);
  });

  it("gives loopback names to a join straight to the auth server from this machine's own address", async () => {
    const near = clientFrom('127.0.0.1', cluster.authAddr);
    const joined = await join(near, await newToken(), 'near-host', ['localhost', '127.0.0.1']);
    assert.ok(!(joined instanceof Error), `the join was refused: ${String(joined)}`);
    const issued = certNames(joined.tlsCert);
    assert.ok(issued.includes('localhost') && issued.includes('127.0.0.1'), issued.join(' '));
    assert.equal(await joinAudited('near-host'), '127.0.0.1');
  });

  it("refuses an address's joins past its burst on new connections via the proxy, while another joins", async () => {
    const answers = [];
    for (let i = 0; i <= JOIN.burst; i++) {
      answers.push(await join(clientFrom('127.0.0.4', cluster.proxyAddr), WRONG_TOKEN, `many-${i}`));
    }
    const names = answers.map((a) => (a instanceof Error ? a.name : 'joined'));
    assert.deepEqual(names, [...Array(JOIN.burst).fill('AccessDenied'), 'LimitExceeded']);
    const joined = await join(clientFrom('127.0.0.5', cluster.proxyAddr), await newToken(), 'next-door');
    assert.ok(!(joined instanceof Error), `a join from another address was refused: ${String(joined)}`);
  });

  it("closes a raw connection to the auth port that sends a header signed by a user's key, and serves on", async () => {
    const prefix = joinPath(cluster.root, 'forger');
    ok(await cluster.wctl(['auth', 'sign', '--user', user, '--format', 'tls', '--out', prefix]));
    const forger = readTLSIdentity(prefix);
    const nonce = randomBytes(16);
    const cert = certDer(forger.certPem);
    const fields = { clientAddr: '127.0.0.1', clientPort: 1, timeMs: Date.now(), nonce, certDer: cert };
    const header = encodeProxyHeader(fields, createPrivateKey(forger.keyPem));
    const [host, port] = cluster.authAddr.split(':') as [string, string];
    const raw = net.connect({ host, port: Number(port), localAddress: '127.0.0.3' });
    raw.on('error', () => {});
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write(header);
    const ca = cluster.adminIdentity().caPems;
    const socket = tls.connect({ socket: raw, ALPNProtocols: [ALPN_AUTH, 'h2'], ca, servername: 'localhost' });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('secureConnect', () => resolve('handshake'));
      socket.once('error', () => resolve('closed'));
      socket.once('close', () => resolve('closed'));
    });
    socket.destroy();
    assert.equal(outcome, 'closed');
    // The server's log line reaches the test through its stdout pipe, possibly after the close does.
    await poll(
      'the forged header to be logged',
      async () => /refused a forged proxy header/.test(cluster.log) || undefined,
    );
    const ping = await cluster.client().ping({});
    assert.equal(ping.clusterName, cluster.clusterName);
  });
});
