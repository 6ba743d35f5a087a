// The tunnel's record layer (records.ts) between two real TLS 1.3 ends over loopback TCP, directly and through
// a man in the middle that changes, replays, drops, reflects or injects records after the switch.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createTLSCA, generateTLSKey, issueTLSCert } from '../crypto/x509.ts';
import { RecordChannel, SWITCH } from './records.ts';

let secureContext: tls.SecureContext;
let caPem: string;

before(async () => {
  const now = new Date();
  const ca = await createTLSCA({ clusterName: 'records', now });
  const key = await generateTLSKey();
  const certPem = await issueTLSCert({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    publicKeyPem: key.publicKeyPem,
    identity: {
      username: 'proxy',
      roles: [],
      logins: [],
      cluster: 'records',
      expires: '',
      kind: 'host',
      hostId: 'proxy',
      systemRoles: ['proxy'],
    },
    notAfter: new Date(now.getTime() + 3_600_000),
    now,
    usage: 'both',
  });
  caPem = ca.certPem;
  secureContext = tls.createSecureContext({ key: key.privateKeyPem, cert: certPem, minVersion: 'TLSv1.3' });
});

interface End {
  channel: RecordChannel;
  error: Promise<Error | undefined>;
}

function watch(channel: RecordChannel): End {
  return {
    channel,
    // Resolves with the error the channel closed with, if any.
    error: new Promise((resolve) => {
      let seen: Error | undefined;
      channel.on('error', (err) => (seen = err));
      channel.once('close', () => resolve(seen));
    }),
  };
}

/** A server that runs the handshake on each connection and switches; the tunnel server also checks the agent's
 * certificate. */
async function startServer(
  onChannel: (end: End) => void,
  switchTimeoutMs = 10_000,
  recordsPerKey?: number,
): Promise<net.Server> {
  const server = net.createServer((raw) => {
    const channel = new RecordChannel(raw, { switchTimeoutMs, recordsPerKey });
    const end = watch(channel);
    const t = new tls.TLSSocket(channel.transport!, { isServer: true, secureContext });
    t.on('error', () => channel.destroy());
    t.once('secure', () => channel.switchFromTLS(t, 'server'));
    onChannel(end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function dialChannel(port: number, recordsPerKey?: number): Promise<End> {
  const raw = net.connect({ host: '127.0.0.1', port });
  const channel = new RecordChannel(raw, { switchTimeoutMs: 10_000, recordsPerKey });
  const end = watch(channel);
  const t = tls.connect({
    socket: channel.transport!,
    ca: caPem,
    minVersion: 'TLSv1.3',
    checkServerIdentity: () => undefined,
  });
  t.on('error', (err) => channel.destroy(err));
  return new Promise((resolve, reject) => {
    t.once('secureConnect', () => {
      channel.switchFromTLS(t, 'client');
      resolve(end);
    });
    channel.once('close', () => reject(new Error('closed during the handshake')));
  });
}

const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;
const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The first `n` bytes the channel reads. (A tunnel has no half-close: the multiplexer ends streams itself.) */
function read(channel: RecordChannel, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    channel.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if ((got += chunk.length) >= n) resolve(Buffer.concat(chunks));
    });
    channel.once('close', () => reject(new Error(`closed after ${got} of ${n} bytes`)));
  });
}

type Unit = { kind: 'tls' | 'record'; bytes: Buffer };
type Direction = 'toServer' | 'toClient';
/** Rewrites what goes through: return the units to send instead of `unit` (index counts records only). */
type Tamper = (dir: Direction, index: number, unit: Unit, sendTo: (dir: Direction, b: Buffer) => void) => Buffer[];

/** A TCP relay that splits each direction into TLS records and tunnel records, so a test can act on one. */
async function startMiddle(target: number, tamper: Tamper): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    const sock = { toServer: upstream, toClient: client };
    const sendTo = (dir: Direction, b: Buffer) => sock[dir].write(b);
    for (const [from, dir] of [
      [client, 'toServer'],
      [upstream, 'toClient'],
    ] as const) {
      let buf = Buffer.alloc(0);
      let records = 0;
      from.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          const record = buf[0] === 0;
          const need = record
            ? buf.length >= 4
              ? 4 + buf.readUIntBE(1, 3)
              : Infinity
            : buf.length >= 5
              ? 5 + buf.readUInt16BE(3)
              : Infinity;
          if (buf.length < need) break;
          const unit: Unit = { kind: record ? 'record' : 'tls', bytes: buf.subarray(0, need) };
          buf = buf.subarray(need);
          const out = record ? tamper(dir, records++, unit, sendTo) : [unit.bytes];
          for (const b of out) sock[dir].write(b);
        }
      });
      from.on('close', () => (dir === 'toServer' ? upstream : client).destroy());
      from.on('error', () => {});
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

describe('tunnel record layer', () => {
  const servers: net.Server[] = [];
  after(() => servers.forEach((s) => s.close()));

  it('carries bytes both ways after the switch, with TLS gone', async () => {
    const size = 3 * 1024 * 1024 + 17;
    let serverEnd!: End;
    const server = await startServer((end) => {
      serverEnd = end;
      // Echo: what the client sends comes back through both record layers.
      end.channel.pipe(end.channel);
    });
    servers.push(server);
    const client = await dialChannel(portOf(server));
    const data = randomBytes(size);
    const back = read(client.channel, size);
    // Odd-sized writes, some bigger than one record.
    for (let at = 0; at < size; at += 200_003) client.channel.write(data.subarray(at, at + 200_003));
    const got = await back;
    assert.equal(digest(got), digest(data));
    assert.ok(client.channel.switched && serverEnd.channel.switched);
    assert.equal(client.channel.transport, null);
    client.channel.destroy();
    assert.equal(await client.error, undefined);
  });

  it('reassembles records and TLS that arrive in pieces of any size', async () => {
    const server = await startServer((end) => end.channel.pipe(end.channel));
    // A relay that cuts everything, both ways and from the first byte, into pieces of 1 to 1,500 bytes, each
    // written on its own turn of the event loop.
    let seed = 7;
    const piece = () => 1 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 1500);
    const trickle = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: portOf(server) });
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        let queue = Promise.resolve();
        from.on('data', (chunk: Buffer) => {
          queue = queue.then(async () => {
            for (let at = 0; at < chunk.length; ) {
              const n = piece();
              to.write(chunk.subarray(at, at + n));
              at += n;
              await new Promise((r) => setImmediate(r));
            }
          });
        });
        from.on('close', () => void queue.then(() => to.destroy()));
        from.on('error', () => {});
      }
    });
    trickle.listen(0, '127.0.0.1');
    await once(trickle, 'listening');
    servers.push(server, trickle);
    const client = await dialChannel(portOf(trickle));
    const data = randomBytes(1024 * 1024);
    const back = read(client.channel, data.length);
    client.channel.write(data);
    assert.equal(digest(await back), digest(data));
    client.channel.destroy();
  });

  it('holds records that arrive before the handshake is checked, and starts with the right one', async () => {
    // The client writes at once after switching; the server reads only after its own checks.
    const server = await startServer((end) => end.channel.pipe(end.channel));
    servers.push(server);
    const client = await dialChannel(portOf(server));
    client.channel.write(Buffer.from('first words'));
    assert.equal((await read(client.channel, 11)).toString(), 'first words');
    client.channel.destroy();
  });

  it("takes a peer's last handshake messages, its SWITCH and its first records arriving in one piece", async () => {
    const server = await startServer((end) => end.channel.pipe(end.channel));
    // A relay that passes the client's ClientHello, then holds what the client sends until its first record is
    // in, and writes all of it at once: the Finished must be handled before the records right behind it are met.
    const relay = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: portOf(server) });
      let held = Buffer.alloc(0);
      let helloPassed = false;
      let flushed = false;
      client.on('data', (chunk: Buffer) => {
        if (flushed) return void upstream.write(chunk);
        held = Buffer.concat([held, chunk]);
        for (let at = 0; at < held.length; ) {
          if (held[at] === 0) {
            flushed = true;
            return void upstream.write(held);
          }
          if (at + 5 > held.length) return;
          const end = at + 5 + held.readUInt16BE(at + 3);
          if (end > held.length) return;
          if (!helloPassed) {
            helloPassed = true;
            upstream.write(held.subarray(0, end));
            held = held.subarray(end);
            at = 0;
          } else at = end;
        }
      });
      upstream.on('data', (chunk: Buffer) => client.write(chunk));
      for (const s of [client, upstream]) {
        s.on('close', () => (s === client ? upstream : client).destroy());
        s.on('error', () => {});
      }
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    servers.push(server, relay);
    const client = await dialChannel(portOf(relay));
    client.channel.write(Buffer.from('all at once'));
    assert.equal((await read(client.channel, 11)).toString(), 'all at once');
    client.channel.destroy();
  });

  it('closes at once on records sent before the TLS handshake is done, holding none of them', async () => {
    let accepted!: (end: End) => void;
    const serverEnd = new Promise<End>((resolve) => (accepted = resolve));
    const server = await startServer((end) => accepted(end));
    servers.push(server);
    // A real TLS client whose ClientHello is followed at once by 64 KiB that look like records.
    const raw = net.connect({ host: '127.0.0.1', port: portOf(server) });
    raw.on('error', () => {});
    const rawClosed = new Promise((resolve) => raw.once('close', resolve));
    const record = Buffer.concat([Buffer.from([0, 1, 0, 0x10]), randomBytes(0x10010)]);
    let first = true;
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        raw.write(chunk, () => cb());
        if (first) raw.write(record);
        first = false;
      },
    });
    raw.on('data', (d: Buffer) => socket.push(d));
    raw.on('close', () => socket.destroy());
    const t = tls.connect({ socket, ca: caPem, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    t.on('error', () => {});
    const started = Date.now();
    assert.match(String((await (await serverEnd).error)?.message), /record before its TLS handshake was done/);
    assert.ok(Date.now() - started < 2_000, 'closed at once, not at the 10 s handshake timeout');
    await rawClosed;
    assert.equal((await serverEnd).channel.switched, false);
  });

  it('delivers all the peer sent before it closed, then ends; a close inside a record is an error', async () => {
    const size = 300_000;
    const data = randomBytes(size);
    const server = await startServer((end) => end.channel.end(data));
    servers.push(server);
    const client = await dialChannel(portOf(server));
    const chunks: Buffer[] = [];
    client.channel.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((resolve, reject) => {
      client.channel.once('end', resolve);
      client.channel.once('close', () => reject(new Error('closed without ending')));
    });
    assert.equal(digest(Buffer.concat(chunks)), digest(data));

    // A relay that passes the first 100 bytes of the server's first record and nothing after, then closes.
    const cutter = await startMiddle(portOf(server), (dir, i, unit) =>
      dir === 'toServer' ? [unit.bytes] : i === 0 ? [unit.bytes.subarray(0, 100)] : [],
    );
    servers.push(cutter);
    const cut = await dialChannel(portOf(cutter));
    cut.channel.resume();
    assert.match(String((await cut.error)?.message), /ended inside a record/);
  });

  it('moves both directions to a new key every so many records, in step', async () => {
    const exchange = async (serverEvery: number, clientEvery: number) => {
      let serverEnd!: End;
      const server = await startServer(
        (end) => {
          serverEnd = end;
          end.channel.pipe(end.channel);
        },
        10_000,
        serverEvery,
      );
      servers.push(server);
      const client = await dialChannel(portOf(server), clientEvery);
      const back = read(client.channel, 10).catch(() => Buffer.alloc(0));
      // One record per write: the writes are a turn of the event loop apart, so none are batched.
      for (let n = 0; n < 10; n++) {
        client.channel.write(Buffer.from([n]));
        await new Promise((r) => setImmediate(r));
      }
      const got = await back;
      client.channel.destroy();
      return { got, serverError: await serverEnd.error };
    };
    const inStep = await exchange(3, 3);
    assert.deepEqual([...inStep.got], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // An end that does not move on at the same record fails exactly there: the new key is really used.
    const outOfStep = await exchange(3, 4);
    assert.match(String(outOfStep.serverError?.message), /record failed authentication/);
    assert.ok(outOfStep.got.length < 10);
  });

  const tampered = async (
    tamper: Tamper,
  ): Promise<{ server: Error | undefined; client: Error | undefined; serverGot: Buffer }> => {
    let serverEnd!: End;
    const serverGot: Buffer[] = [];
    const server = await startServer((end) => {
      serverEnd = end;
      end.channel.on('data', (d: Buffer) => serverGot.push(d));
      // The server's first record goes out after the client's first one has passed the middle.
      end.channel.once('data', () => end.channel.write('srv'));
    });
    const middle = await startMiddle(portOf(server), tamper);
    servers.push(server, middle);
    const client = await dialChannel(portOf(middle));
    client.channel.on('data', () => {});
    client.channel.write(Buffer.from('one'));
    client.channel.write(Buffer.from('two'));
    const [serverErr, clientErr] = await Promise.all([serverEnd.error, client.error]);
    return { server: serverErr, client: clientErr, serverGot: Buffer.concat(serverGot) };
  };

  it('refuses a record changed in flight', async () => {
    const r = await tampered((dir, i, unit) => {
      if (dir !== 'toServer' || i !== 0) return [unit.bytes];
      const b = Buffer.from(unit.bytes);
      b[6]! ^= 1;
      return [b];
    });
    assert.match(String(r.server?.message), /record failed authentication/);
    assert.equal(r.serverGot.length, 0);
  });

  it('refuses a replayed record', async () => {
    const r = await tampered((dir, i, unit) =>
      dir === 'toServer' && i === 0 ? [unit.bytes, unit.bytes] : [unit.bytes],
    );
    assert.match(String(r.server?.message), /record failed authentication/);
    assert.equal(r.serverGot.toString(), 'one');
  });

  it('refuses a stream with a record dropped', async () => {
    const r = await tampered((dir, i, unit) => (dir === 'toServer' && i === 0 ? [] : [unit.bytes]));
    assert.match(String(r.server?.message), /record failed authentication/);
    assert.equal(r.serverGot.length, 0);
  });

  it("refuses a client's record reflected back to it (each direction has its own key)", async () => {
    let first: Buffer | undefined;
    const r = await tampered((dir, i, unit) => {
      if (dir === 'toServer' && i === 0) first = unit.bytes;
      return dir === 'toClient' && i === 0 ? [first!] : [unit.bytes];
    });
    assert.match(String(r.client?.message), /record failed authentication/);
  });

  it('refuses a TLS record or an oversized record after the switch', async () => {
    const tlsRecord = Buffer.from([23, 3, 3, 0, 4, 1, 2, 3, 4]);
    let r = await tampered((dir, i, unit) => (dir === 'toServer' && i === 0 ? [tlsRecord, unit.bytes] : [unit.bytes]));
    assert.match(String(r.server?.message), /TLS after its switch|bad record header/);
    r = await tampered((dir, i, unit) =>
      dir === 'toServer' && i === 0 ? [Buffer.from([0, 0xff, 0xff, 0xff])] : [unit.bytes],
    );
    assert.match(String(r.server?.message), /bad record length/);
  });

  it('closes on a TLS header after the switch that announces bytes never sent, wherever it lands', {
    timeout: 20_000,
  }, async () => {
    // Just behind the SWITCH, it may reach the server before TLS has decrypted the SWITCH: it must not be
    // left waiting for the rest of its record (that hung a tunnel for ever), whichever comes first.
    const header = Buffer.from([23, 3, 3, 0x40, 0x00]);
    for (let i = 0; i < 10; i++) {
      const r = await tampered((dir, n, unit) => (dir === 'toServer' && n === 0 ? [header, unit.bytes] : [unit.bytes]));
      assert.match(String(r.server?.message), /TLS after its switch/);
    }
  });

  it('refuses a peer that sends data over TLS instead of switching (an older agent)', async () => {
    let serverEnd!: End;
    const server = await startServer((end) => (serverEnd = end));
    servers.push(server);
    const t = tls.connect({
      host: '127.0.0.1',
      port: portOf(server),
      ca: caPem,
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
    });
    t.on('error', () => {});
    await once(t, 'secureConnect');
    t.write(Buffer.concat([Buffer.from('x'), SWITCH]));
    assert.match(String((await serverEnd.error)?.message), /instead of switching/);
  });

  it('drops a peer that sends more than it may before its switch', async () => {
    let serverEnd!: End;
    const server = await startServer((end) => (serverEnd = end));
    servers.push(server);
    // A real handshake, then no SWITCH: only bytes that look like records, 300 KiB of them.
    const raw = net.connect({ host: '127.0.0.1', port: portOf(server) });
    const channel = new RecordChannel(raw, { switchTimeoutMs: 10_000 });
    channel.on('error', () => {});
    const t = tls.connect({
      socket: channel.transport!,
      ca: caPem,
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
    });
    t.on('error', () => {});
    await once(t, 'secureConnect');
    const record = Buffer.concat([Buffer.from([0, 0, 0x40, 0x10]), randomBytes(0x4010)]);
    for (let i = 0; i < 20; i++) raw.write(record);
    assert.match(String((await serverEnd.error)?.message), /too much before its switch/);
    channel.destroy();
  });

  it('closes on random bytes injected after the switch, every time, without throwing', async () => {
    const errors: string[] = [];
    for (let i = 0; i < 30; i++) {
      let junk = randomBytes(1 + ((i * 37) % 300));
      junk[0] = 1 + (junk[0]! % 255); // not a record mark: the header is what fails
      if (i % 3 === 0) {
        // A whole, well-formed record of random bytes: the tag is what fails.
        const body = randomBytes(16 + ((i * 13) % 200));
        junk = Buffer.concat([Buffer.from([0, 0, body.length >> 8, body.length & 0xff]), body]);
      }
      const r = await tampered((dir, n, unit) => (dir === 'toServer' && n === 0 ? [junk, unit.bytes] : [unit.bytes]));
      errors.push(String(r.server?.message));
    }
    for (const e of errors) assert.match(e, /record|TLS|first byte|ended/, e);
  });

  it('refuses a record before any TLS, and a peer that never finishes the switch', async () => {
    const ends: End[] = [];
    const server = await startServer((end) => ends.push(end), 300);
    servers.push(server);
    const junk = net.connect({ host: '127.0.0.1', port: portOf(server) });
    junk.on('error', () => {});
    junk.write(Buffer.from([0, 0, 0, 20]));
    const silent = net.connect({ host: '127.0.0.1', port: portOf(server) });
    silent.on('error', () => {});
    await once(silent, 'connect');
    const started = Date.now();
    while (ends.length < 2) await new Promise((r) => setTimeout(r, 10));
    const errors = (await Promise.all(ends.map((e) => e.error))).map((e) => String(e?.message)).sort();
    assert.match(errors[0]!, /record before any TLS/);
    assert.match(errors[1]!, /handshake timed out/);
    assert.ok(Date.now() - started < 5000);
    junk.destroy();
    silent.destroy();
  });
});
