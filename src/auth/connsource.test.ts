import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ALPN_AUTH, createAuthClient, type TLSIdentity } from '../api/client.ts';
import { AccessDenied } from '../api/errors.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { encodeProxyHeader, type ProxyHeaderFields } from '../api/proxyheader.ts';
import { certDer } from '../api/certinfo.ts';
import { serviceIdentity, startTestAuthAPI, type TestAuthAPI } from '../../test/fixtures/authapi.ts';
import { HEADER_WINDOW_MS } from './connsource.ts';
import { startAuthListener, type AuthListener } from './listener.ts';

let api: TestAuthAPI;
let other: TestAuthAPI;
let proxy: TLSIdentity;
/** The auth server's listener under test, with a short deadline for a connection's first bytes. */
let listener: AuthListener;
let listenerAddr: { host: string; port: number };
const PEEK_MS = 400;

before(async () => {
  [api, other] = await Promise.all([startTestAuthAPI(), startTestAuthAPI({ clusterName: 'other' })]);
  proxy = await serviceIdentity(api.auth, 'proxy-1', ['proxy']);
  const log = pino({ level: 'silent' });
  listener = await startAuthListener(api.auth, api.tls, '127.0.0.1:0', log, { peekTimeoutMs: PEEK_MS });
  listenerAddr = { host: '127.0.0.1', port: listener.address.port };
});

after(async () => {
  await listener.close();
  await Promise.all([api.close(), other.close()]);
});

/** A header for `clientAddr`, signed with `id`'s key and carrying its certificate. */
function headerBy(id: TLSIdentity, over: Partial<ProxyHeaderFields> = {}): Buffer {
  const nonce = randomBytes(16);
  const cert = certDer(id.certPem);
  const fields = { clientAddr: '203.0.113.9', clientPort: 40000, timeMs: Date.now(), nonce, certDer: cert, ...over };
  return encodeProxyHeader(fields, createPrivateKey(id.keyPem));
}

/** What a header sent first on a raw connection to the listener gets: the connection closed, or a TLS handshake. */
async function sendHeaderThenTLS(header: Buffer): Promise<'closed' | 'tls'> {
  const raw = net.connect(listenerAddr);
  await new Promise((resolve) => raw.once('connect', resolve));
  raw.write(header);
  const ca = api.tls.caPems;
  const socket = tls.connect({ socket: raw, ALPNProtocols: [ALPN_AUTH, 'h2'], ca, servername: 'localhost' });
  return new Promise((resolve) => {
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve('tls');
    });
    socket.once('error', () => resolve('closed'));
    socket.once('close', () => resolve('closed'));
  });
}

/** Node's TLS client through a raw connection that began with `header`, making one anonymous join. */
async function joinBehind(header: Buffer): Promise<string | undefined> {
  const keys = generateClientKeys('joiner');
  // A relay that writes the header first and then passes the client's bytes, as a proxy's pass-through does.
  const relay = net.createServer((inbound) => {
    const out = net.connect(listenerAddr, () => {
      out.write(header);
      inbound.pipe(out).pipe(inbound);
    });
    out.on('error', () => inbound.destroy());
    inbound.on('error', () => out.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const viaRelay = createAuthClient({
    addr: `127.0.0.1:${(relay.address() as net.AddressInfo).port}`,
    caPems: api.tls.caPems,
    timeoutMs: 5_000,
    idleTimeoutMs: 500,
  });
  const req = { token: 'e'.repeat(32), systemRole: 'node', hostname: 'joiner', addresses: [], ...keys };
  await viaRelay.registerUsingToken(req).catch((err: unknown) => assert.ok(err instanceof AccessDenied));
  relay.close();
  const [event] = await api.auth.backend.search({ types: ['node.join'], limit: 1, order: 'desc' });
  return (event as { remote_addr?: string } | undefined)?.remote_addr;
}

describe("the auth server's check of a proxy's header", () => {
  it("takes the client address a proxy of this cluster vouches for as the join's address", async () => {
    assert.equal(await joinBehind(headerBy(proxy, { clientAddr: '198.51.100.23' })), '198.51.100.23');
  });

  it("takes a direct client's own address", async () => {
    const addr = `127.0.0.1:${listenerAddr.port}`;
    const client = createAuthClient({ addr, caPems: api.tls.caPems, idleTimeoutMs: 500 });
    const keys = generateClientKeys('direct');
    const req = { token: 'd'.repeat(32), systemRole: 'node', hostname: 'direct', addresses: [], ...keys };
    await client.registerUsingToken(req).catch(() => {});
    const [event] = await api.auth.backend.search({ types: ['node.join'], limit: 1, order: 'desc' });
    assert.equal((event as { remote_addr?: string }).remote_addr, '127.0.0.1');
  });

  it('closes a connection whose header is signed by a key other than its certificate', async () => {
    const forged = headerBy({ ...proxy, keyPem: generateClientKeys('x').tlsKey });
    assert.equal(await sendHeaderThenTLS(forged), 'closed');
    assert.equal(await sendHeaderThenTLS(headerBy(proxy)), 'tls', 'a good header is let through to TLS');
  });

  it("closes a connection whose header carries a node's or a user's certificate instead of a proxy's", async () => {
    const node = await serviceIdentity(api.auth, 'node-1', ['node']);
    assert.equal(await sendHeaderThenTLS(headerBy(node)), 'closed');
    const password = 'correct horse battery';
    await api.auth.createUser({ name: 'mallory', roles: ['access'], logins: ['m'], password, createdBy: 'test' });
    const keys = generateClientKeys('mallory');
    const user = await api.auth.getUserOrDeny('mallory');
    const certs = await api.auth.issueUserCerts(user, keys, 3_600_000, 'test');
    const asUser = headerBy({ keyPem: keys.tlsKey, certPem: certs.tlsCert, caPems: [] });
    assert.equal(await sendHeaderThenTLS(asUser), 'closed');
  });

  it("closes a connection whose header comes from another cluster's proxy", async () => {
    const foreign = await serviceIdentity(other.auth, 'proxy-9', ['proxy']);
    assert.equal(await sendHeaderThenTLS(headerBy(foreign)), 'closed');
  });

  it('closes a connection whose header is stale or from the future, beyond a minute either way', async () => {
    assert.equal(await sendHeaderThenTLS(headerBy(proxy, { timeMs: Date.now() - HEADER_WINDOW_MS - 5_000 })), 'closed');
    assert.equal(await sendHeaderThenTLS(headerBy(proxy, { timeMs: Date.now() + HEADER_WINDOW_MS + 5_000 })), 'closed');
  });

  it('closes a connection that replays a header already taken', async () => {
    const header = headerBy(proxy);
    assert.equal(await sendHeaderThenTLS(header), 'tls');
    assert.equal(await sendHeaderThenTLS(header), 'closed');
  });

  it('closes a connection whose header comes from a locked proxy', async () => {
    const locked = await serviceIdentity(api.auth, 'proxy-locked', ['proxy']);
    const lock = { kind: 'lock', version: 'v1', metadata: { name: 'l1' }, spec: { target: { node: 'proxy-locked' } } };
    await api.auth.locks.upsert(lock as never);
    try {
      assert.equal(await sendHeaderThenTLS(headerBy(locked)), 'closed');
    } finally {
      await api.auth.locks.delete('l1');
    }
  });

  it('closes a connection whose header is truncated or oversized, or that is neither TLS nor a header', async () => {
    const header = headerBy(proxy);
    const cut = Buffer.from(header);
    cut.writeUInt16BE(cut.readUInt16BE(8) - 20, 8);
    assert.equal(await sendHeaderThenTLS(cut), 'closed');
    const oversized = Buffer.from(header);
    oversized.writeUInt16BE(0xfff0, 8);
    assert.equal(await sendHeaderThenTLS(oversized), 'closed');
    assert.equal(await sendHeaderThenTLS(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 'closed');
  });

  it('closes a connection whose header never completes, by the deadline (slowloris)', async () => {
    const raw = net.connect(listenerAddr);
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.on('error', () => {});
    const started = Date.now();
    raw.write(headerBy(proxy).subarray(0, 30));
    await new Promise((resolve) => raw.once('close', resolve));
    const waited = Date.now() - started;
    assert.ok(waited >= PEEK_MS - 50 && waited < PEEK_MS + 2_000, `closed after ${waited} ms`);
  });
});
