// Heartbeats on one long-lived stream (host/heartbeats.ts and the auth server's HeartbeatStream), in process against
// the real mutual-TLS Auth API: what the auth server stores and refuses, and how a host keeps its stream when the
// auth server restarts or its certificate is renewed.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import pino from 'pino';
import { create, toBinary } from '@bufbuild/protobuf';
import { HeartbeatRequestSchema } from '../api/gen/ward/auth/v1/auth_pb.ts';
import { createAuthClient, type AuthClient, type TLSIdentity } from '../api/client.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import type { Node } from '../api/types.ts';
import type { AuthServer } from '../auth/server.ts';
import { startAuthListener } from '../auth/listener.ts';
import { generateTLSKey } from '../crypto/x509.ts';
import { serviceIdentity, startTestAuthAPI, type TestAuthAPI } from '../../test/fixtures/authapi.ts';
import { startHeartbeats } from './heartbeats.ts';

const quiet = pino({ level: 'silent' });
let api: TestAuthAPI;
let auth: AuthServer;

before(async () => {
  api = await startTestAuthAPI();
  auth = api.auth;
  await auth.createUser({
    name: 'alice',
    roles: ['access'],
    logins: ['alice'],
    password: 'correct horse',
    createdBy: 'test',
  });
});

after(() => api.close());

const node = (hostId: string, labels: Record<string, string> = {}): Node => ({
  kind: 'node',
  version: 'v1',
  metadata: { name: hostId, labels },
  spec: { hostname: hostId, addr: '', tunnel: true, version: '0.1.0' },
});

/** A client that counts the calls made through it, by method. */
function counted(client: AuthClient): { client: AuthClient; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const proxy = new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { client: proxy, calls };
}

/** A log that keeps its lines. */
function recordingLog(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), lines };
}

/** Sends these requests on one HeartbeatStream and collects the answers, or the error that ended it. */
async function streamOf(client: AuthClient, reqs: Array<{ resource?: { json: string }; remove?: boolean }>, gapMs = 0) {
  const answers: string[] = [];
  async function* requests() {
    for (const r of reqs) {
      yield r;
      if (gapMs) await sleep(gapMs);
    }
  }
  try {
    for await (const a of client.heartbeatStream(requests(), { timeoutMs: 0 })) answers.push(a.expires);
    return { answers };
  } catch (err) {
    return { answers, err: ConnectError.from(err) };
  }
}

/** A TCP relay to `target` that can hang: frozen, it stops moving bytes on every connection, new ones included. */
async function relayTo(
  target: string,
): Promise<{ addr: string; connections(): number; freeze(): void; close(): void }> {
  const [host, port] = [target.split(':')[0]!, Number(target.split(':')[1])];
  const sockets = new Set<net.Socket>();
  let frozen = false;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    if (frozen) return client.pause();
    const upstream = net.connect(port, host);
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => [...sockets].filter((s) => !s.destroyed).length,
    freeze: () => {
      frozen = true;
      for (const s of sockets) {
        s.unpipe();
        s.pause();
      }
    },
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

async function shortLivedIdentity(hostId: string, systemRoles: string[], ttlMs: number): Promise<TLSIdentity> {
  const key = await generateTLSKey();
  const { tlsCert, tlsCAs } = await auth.issueHostCerts({
    hostId,
    systemRoles,
    tlsPublicKey: key.publicKeyPem,
    dnsNames: [hostId, `${hostId}.${auth.clusterName}`],
    ipAddresses: [],
    expires: new Date(Date.now() + ttlMs),
  });
  return { keyPem: key.privateKeyPem, certPem: tlsCert, caPems: tlsCAs };
}

/** Everything the server sent on `stream` until it closed (an early answer ends with RST_STREAM NO_ERROR). */
function readAll(stream: http2.ClientHttp2Stream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => stream.once('close', () => resolve(Buffer.concat(chunks))));
}

type Envelope = { flags: number; body: Buffer };

/**
 * `bytes` sent as a HeartbeatStream request in raw HTTP/2 (with `identity`'s certificate, or none), the request
 * ended or left open; the envelopes of the answer.
 */
async function rawExchange(
  identity: TLSIdentity | undefined,
  codec: 'proto' | 'json',
  bytes: Buffer,
  endRequest = true,
): Promise<Envelope[]> {
  const tls = identity ? { key: identity.keyPem, cert: identity.certPem, ca: identity.caPems } : { ca: api.tls.caPems };
  const session = http2.connect(`https://${api.addr}`, { ...tls, checkServerIdentity: () => undefined });
  try {
    const stream = session.request({
      ':method': 'POST',
      ':path': '/ward.auth.v1.AuthService/HeartbeatStream',
      'content-type': `application/connect+${codec}`,
    });
    stream.write(bytes);
    if (endRequest) stream.end();
    const all = await readAll(stream);
    const out: Envelope[] = [];
    for (let at = 0; at < all.length; ) {
      const length = all.readUInt32BE(at + 1);
      out.push({ flags: all[at]!, body: all.subarray(at + 5, at + 5 + length) });
      at += 5 + length;
    }
    return out;
  } finally {
    session.close();
  }
}

/** An envelope header announcing `length` bytes. */
function envelopeHead(length: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 1);
  return head;
}

/** HeartbeatStream requests in `codec`, as raw HTTP/2; the envelopes of the answer. */
function rawStream(identity: TLSIdentity, codec: 'proto' | 'json', messages: unknown[]): Promise<Envelope[]> {
  const envelopes = messages.map((m) => {
    const body =
      codec === 'json'
        ? Buffer.from(JSON.stringify(m))
        : Buffer.from(toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, m as object)));
    return Buffer.concat([envelopeHead(body.length), body]);
  });
  return rawExchange(identity, codec, Buffer.concat(envelopes));
}

describe('HeartbeatStream on the auth server', () => {
  it('speaks the same protocol in protobuf (served by the listener) and in JSON (served by Connect)', async () => {
    const identity = await serviceIdentity(auth, 'hs0', ['node']);
    const own = { resource: { json: JSON.stringify(node('hs0')) } };
    const other = { resource: { json: JSON.stringify(node('hs0-other')) } };
    const ends: unknown[] = [];
    for (const codec of ['proto', 'json'] as const) {
      const ok = await rawStream(identity, codec, [own, own]);
      assert.deepEqual(
        ok.map((e) => e.flags),
        [0, 0, 2],
        `${codec}: two answers, then the end of the stream`,
      );
      assert.deepEqual(JSON.parse(ok[2]!.body.toString()), {}, `${codec}: ended without an error`);
      const refused = await rawStream(identity, codec, [own, other, own]);
      assert.deepEqual(
        refused.map((e) => e.flags),
        [0, 2],
        `${codec}: one answer, then the error ends the stream`,
      );
      ends.push(JSON.parse(refused[1]!.body.toString()));
    }
    assert.deepEqual(ends[0], ends[1], 'the same end-of-stream error either way');
    assert.deepEqual(ends[0], {
      error: { code: 'permission_denied', message: 'a host may only heartbeat itself' },
      metadata: { 'ward-error-code': ['ERR_ACCESS_DENIED'] },
    });
    assert.equal(await auth.nodes.tryGet('hs0-other'), undefined);
  });

  it('ends a stream with no certificate before reading it, and one with a message over 256 KiB', async () => {
    const anonymous = await rawExchange(undefined, 'proto', Buffer.from([0, 0, 0, 0, 9, 1, 2, 3]), false);
    assert.equal(anonymous[0]!.flags, 2);
    assert.equal(JSON.parse(anonymous[0]!.body.toString()).error.code, 'permission_denied');
    const [tooBig] = await rawExchange(
      await serviceIdentity(auth, 'hs0b', ['node']),
      'proto',
      envelopeHead(256 * 1024 + 1),
      false,
    );
    const big = JSON.parse(tooBig!.body.toString());
    assert.equal(big.error.code, 'resource_exhausted');
  });

  it('stores each heartbeat with an expiry and answers each, in order', async () => {
    const client = createAuthClient({ addr: api.addr, identity: await serviceIdentity(auth, 'hs1', ['node']) });
    const before = Date.now();
    const { answers, err } = await streamOf(
      client,
      [1, 2, 3].map((i) => ({ resource: { json: JSON.stringify(node('hs1', { beat: String(i) })) } })),
    );
    assert.equal(err, undefined);
    assert.equal(answers.length, 3);
    const stored = await auth.nodes.get('hs1');
    assert.equal(stored.metadata.labels?.beat, '3');
    assert.equal(stored.metadata.expires, answers[2]);
    assert.ok(Date.parse(answers[2]!) > before + 60_000, 'listed for NODE_TTL_MS after the beat');
  });

  it('refuses a heartbeat for another host, and stores nothing for it', async () => {
    const client = createAuthClient({ addr: api.addr, identity: await serviceIdentity(auth, 'hs2', ['node']) });
    const { answers, err } = await streamOf(client, [
      { resource: { json: JSON.stringify(node('hs2')) } },
      { resource: { json: JSON.stringify(node('hs-other')) } },
    ]);
    assert.equal(answers.length, 1);
    assert.equal(err?.code, Code.PermissionDenied);
    assert.match(err!.rawMessage, /may only heartbeat itself/);
    assert.equal(await auth.nodes.tryGet('hs-other'), undefined);
  });

  it('refuses a user certificate, a proxy sending a node, remove, and a resource that is not JSON', async () => {
    const keys = generateClientKeys('alice');
    const certs = await auth.issueUserCerts(await auth.users.get('alice'), keys, 600_000, 'test');
    const user = createAuthClient({
      addr: api.addr,
      identity: { keyPem: keys.tlsKey, certPem: certs.tlsCert, caPems: certs.tlsCAs },
    });
    const asUser = await streamOf(user, [{ resource: { json: JSON.stringify(node('alice')) } }]);
    assert.equal(asUser.err?.code, Code.PermissionDenied);
    assert.equal(await auth.nodes.tryGet('alice'), undefined);

    const proxy = createAuthClient({ addr: api.addr, identity: await serviceIdentity(auth, 'hs-proxy', ['proxy']) });
    const proxySendsNode = await streamOf(proxy, [{ resource: { json: JSON.stringify(node('hs-proxy')) } }]);
    assert.equal(proxySendsNode.err?.code, Code.InvalidArgument, 'a proxy heartbeats a proxy resource');
    assert.equal(await auth.nodes.tryGet('hs-proxy'), undefined);

    const client = createAuthClient({ addr: api.addr, identity: await serviceIdentity(auth, 'hs3', ['node']) });
    const remove = await streamOf(client, [{ resource: { json: JSON.stringify(node('hs3')) }, remove: true }]);
    assert.equal(remove.err?.code, Code.InvalidArgument);
    const notJSON = await streamOf(client, [{ resource: { json: '{"kind":' } }]);
    assert.match(notJSON.err!.rawMessage, /not valid JSON/);
    assert.equal(await auth.nodes.tryGet('hs3'), undefined);
  });

  it('refuses, on a stream still open, a message sent after the certificate ended', async () => {
    const client = createAuthClient({ addr: api.addr, identity: await shortLivedIdentity('hs4', ['node'], 1_500) });
    const { answers, err } = await streamOf(
      client,
      [
        { resource: { json: JSON.stringify(node('hs4', { n: '1' })) } },
        { resource: { json: JSON.stringify(node('hs4', { n: '2' })) } },
      ],
      2_000,
    );
    assert.equal(answers.length, 1);
    assert.equal(err?.code, Code.PermissionDenied);
    assert.match(err!.rawMessage, /expired/);
    assert.equal((await auth.nodes.get('hs4')).metadata.labels?.n, '1');
  });
});

describe('a host heartbeating (startHeartbeats)', () => {
  it('sends every heartbeat on one stream, and a changed presence at once', async () => {
    const { client, calls } = counted(
      createAuthClient({ addr: api.addr, identity: await serviceIdentity(auth, 'hb1', ['node']) }),
    );
    let labels = { v: '1' };
    const hb = await startHeartbeats({
      auth: client,
      presence: () => node('hb1', labels),
      log: quiet,
      intervalMs: 100,
    });
    try {
      assert.equal((await auth.nodes.get('hb1')).metadata.labels?.v, '1', 'stored before startHeartbeats resolves');
      const first = (await auth.nodes.get('hb1')).metadata.expires!;
      await sleep(350);
      assert.ok((await auth.nodes.get('hb1')).metadata.expires! > first, 'the interval beats moved the expiry');
      labels = { v: '2' };
      await hb.beat();
      assert.equal((await auth.nodes.get('hb1')).metadata.labels?.v, '2');
      assert.deepEqual(Object.fromEntries(calls), { heartbeatStream: 1 });
    } finally {
      hb.close();
    }
  });

  it('re-opens the stream after the auth server restarts, and sends its presence first', async () => {
    const other = await startTestAuthAPI();
    try {
      const identity = await serviceIdentity(other.auth, 'hb2', ['node']);
      const { client, calls } = counted(createAuthClient({ addr: other.addr, identity }));
      const { log, lines } = recordingLog();
      const hb = await startHeartbeats({ auth: client, presence: () => node('hb2'), log, retryFirstMs: 2_000 });
      try {
        await other.listener.close();
        await other.auth.nodes.delete('hb2');
        const restarted = await startAuthListener(other.auth, other.tls, other.addr, quiet);
        after(() => restarted.close());
        // The first retry comes within retryFirstMs (2 s here), and sends the presence without waiting for the
        // interval.
        for (let i = 0; i < 40 && !(await other.auth.nodes.tryGet('hb2')); i++) await sleep(100);
        assert.ok(await other.auth.nodes.tryGet('hb2'), `not heartbeated again; log:\n${lines.join('')}`);
        assert.equal(calls.get('heartbeatStream'), 2);
        assert.match(lines.join(''), /heartbeat stream broken; will reconnect/);
      } finally {
        hb.close();
      }
    } finally {
      await other.close();
    }
  });

  it('takes a stream whose answers stop for dead, and re-opens it at the next auth address', async () => {
    const relays = [await relayTo(api.addr), await relayTo(api.addr)];
    const { log, lines } = recordingLog();
    const client = createAuthClient({
      addr: relays.map((r) => r.addr).join(','),
      identity: await serviceIdentity(auth, 'hb5', ['node']),
    });
    const hb = await startHeartbeats({
      auth: client,
      presence: () => node('hb5'),
      log,
      answerTimeoutMs: 1_000,
      retryFirstMs: 2_000,
    });
    try {
      // The auth server behind the address in use hangs (or the network to it goes): nothing is refused, nothing
      // answers.
      const used = relays.find((r) => r.connections() > 0)!;
      used.freeze();
      await auth.nodes.delete('hb5');
      void hb.beat();
      for (let i = 0; i < 60 && !(await auth.nodes.tryGet('hb5')); i++) await sleep(100);
      assert.ok(await auth.nodes.tryGet('hb5'), `not heartbeated through the other address; log:\n${lines.join('')}`);
      assert.match(lines.join(''), /no answer to a heartbeat in 1 s.*heartbeat stream broken; will reconnect/);
    } finally {
      hb.close();
      for (const r of relays) r.close();
    }
  });

  it('moves to a renewed certificate: at once with reconnect(), or when the old one is refused', async () => {
    let identity = await shortLivedIdentity('hb3', ['node'], 2_500);
    const { client, calls } = counted(createAuthClient({ addr: api.addr, identity: () => identity }));
    let labels = { n: '1' };
    const { log, lines } = recordingLog();
    const hb = await startHeartbeats({ auth: client, presence: () => node('hb3', labels), log, retryFirstMs: 2_000 });
    try {
      // The renewed certificate outlives the next steps by seconds even on a loaded box; it ends later on purpose.
      const renewedEnds = Date.now() + 8_000;
      identity = await shortLivedIdentity('hb3', ['node'], 8_000);
      hb.reconnect();
      await sleep(3_000); // past the first certificate's end: only the renewed stream can still be answered
      labels = { n: '2' };
      await hb.beat();
      assert.equal((await auth.nodes.get('hb3')).metadata.labels?.n, '2', lines.join(''));
      assert.equal(calls.get('heartbeatStream'), 2);
      assert.doesNotMatch(lines.join(''), /broken/, 'a reconnect on purpose is not a failure');

      // Without reconnect(): the stream on the ended certificate is refused at the next beat, and re-opened with
      // the current one, which sends the presence again.
      identity = await serviceIdentity(auth, 'hb3', ['node']);
      await sleep(renewedEnds - Date.now() + 1_200); // certificates end on a whole second
      labels = { n: '3' };
      await hb.beat();
      for (let i = 0; i < 40 && (await auth.nodes.get('hb3')).metadata.labels?.n !== '3'; i++) await sleep(100);
      assert.equal((await auth.nodes.get('hb3')).metadata.labels?.n, '3');
      assert.match(lines.join(''), /expired.*heartbeat stream broken; will reconnect/);
    } finally {
      hb.close();
    }
  });

  it('falls back to one Heartbeat call per beat when the auth server has no HeartbeatStream', async () => {
    // An older auth server answers the unknown method with Unimplemented; this client is the real one except for that.
    const real = createAuthClient({ addr: api.addr, identity: await serviceIdentity(auth, 'hb4', ['node']) });
    const older = new Proxy(real, {
      get(target, prop) {
        if (prop === 'heartbeatStream') {
          return () => ({
            [Symbol.asyncIterator]: () => ({
              next: () => Promise.reject(new ConnectError('method not found', Code.Unimplemented)),
            }),
          });
        }
        return Reflect.get(target, prop) as unknown;
      },
    });
    const { client, calls } = counted(older);
    const hb = await startHeartbeats({ auth: client, presence: () => node('hb4'), log: quiet, intervalMs: 100 });
    try {
      assert.ok(await auth.nodes.tryGet('hb4'), 'stored by the fallback before startHeartbeats resolves');
      await sleep(350);
      assert.equal(calls.get('heartbeatStream'), 1, 'not tried again');
      assert.ok((calls.get('heartbeat') ?? 0) >= 3, `heartbeat calls: ${calls.get('heartbeat')}`);
    } finally {
      hb.close();
    }
  });
});
