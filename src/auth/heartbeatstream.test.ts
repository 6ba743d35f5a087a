// The HeartbeatStream server's own reading and writing (heartbeatstream.ts) against hostile or broken hosts, on a
// real HTTP/2 server and client: what a host that stops reading, stops mid-message or falls silent costs it. Who may
// heartbeat, and what is stored, are host/heartbeats.test.ts's, against the real listener.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { after, describe, it } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import { HeartbeatRequestSchema } from '../api/gen/ward/auth/v1/auth_pb.ts';
import { serveHeartbeatStream, type HeartbeatStreamOptions } from './heartbeatstream.ts';

const servers: http2.Http2Server[] = [];
const sessions: http2.ServerHttp2Session[] = [];
after(() => {
  sessions.forEach((s) => s.destroy());
  servers.forEach((s) => s.close());
});

/** A server answering every message at once; counts the answers it made. */
async function serve(opts: Partial<HeartbeatStreamOptions> = {}): Promise<{ url: string; answered: () => number }> {
  let answered = 0;
  const server = http2.createServer((req, res) =>
    serveHeartbeatStream(req, res, req.socket as TLSSocket, {
      admit: async () => {},
      answer: async () => (answered++, { expires: new Date(Date.now() + 90_000).toISOString() }),
      toRPCError: (err) => ConnectError.from(err),
      maxMessageBytes: 64 * 1024,
      idleMs: 60_000,
      ...opts,
    }),
  );
  servers.push(server);
  server.on('session', (session) => sessions.push(session));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, answered: () => answered };
}

const message = () => {
  const body = Buffer.from(
    toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { resource: { json: '{"kind":"node"}' } })),
  );
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
};

/** The end-of-stream envelope's JSON from a whole answer. */
function endOf(all: Buffer): { error?: { code: string; message: string } } {
  for (let at = 0; at < all.length; ) {
    const length = all.readUInt32BE(at + 1);
    if (all[at] === 2) return JSON.parse(all.subarray(at + 5, at + 5 + length).toString());
    at += 5 + length;
  }
  throw new Error('no end of stream');
}

async function answerOf(stream: http2.ClientHttp2Stream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('HeartbeatStream server, against hostile hosts', () => {
  it('stops reading a host that does not read its answers, rather than queueing them', async () => {
    const { url, answered } = await serve();
    // A stream window of 512 bytes that the client never opens further: the answers stop leaving after ~10, and
    // the server holds at most its stream's write buffer (16 KiB, ~500 answers) and MAX_PENDING more.
    const session = http2.connect(url, { settings: { initialWindowSize: 512 } });
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/ward.auth.v1.AuthService/HeartbeatStream',
        'content-type': 'application/connect+proto',
      });
      stream.pause();
      const one = message();
      for (let i = 0; i < 5_000; i++) stream.write(one);
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(answered() < 1_000, `answered ${answered()} of 5,000 while none were read`);
      stream.resume(); // reading again lets the rest through
      stream.end();
      const end = endOf(await answerOf(stream));
      assert.equal(end.error, undefined);
      assert.equal(answered(), 5_000);
    } finally {
      session.close();
    }
  });

  it('refuses a message over its limit, or with flags, on its header, before holding its body', async () => {
    const { url } = await serve();
    const session = http2.connect(url);
    try {
      for (const [head, code] of [
        [[0, 0, 1, 0, 1], 'resource_exhausted'],
        [[1, 0, 0, 0, 200], 'invalid_argument'],
        [[2, 0, 0, 0, 3], 'invalid_argument'],
      ] as const) {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/ward.auth.v1.AuthService/HeartbeatStream',
          'content-type': 'application/connect+proto',
        });
        stream.write(Buffer.from(head)); // the request stays open, with none of the body sent
        assert.equal(endOf(await answerOf(stream)).error?.code, code, JSON.stringify(head));
      }
    } finally {
      session.close();
    }
  });

  it(
    'reads a message that arrives a byte at a time, and ends a stream silent for too long, or stopped ' +
      'inside a message',
    async () => {
      const { url, answered } = await serve({ idleMs: 300 });
      const session = http2.connect(url);
      try {
        const slow = session.request({
          ':method': 'POST',
          ':path': '/ward.auth.v1.AuthService/HeartbeatStream',
          'content-type': 'application/connect+proto',
        });
        for (const byte of message()) slow.write(Buffer.from([byte]));
        const half = message().subarray(0, 9);
        slow.write(half); // and then nothing more
        const started = Date.now();
        const end = endOf(await answerOf(slow));
        assert.equal(answered(), 1);
        assert.equal(end.error?.code, 'deadline_exceeded');
        assert.ok(Date.now() - started < 3_000);
        const silent = session.request({
          ':method': 'POST',
          ':path': '/ward.auth.v1.AuthService/HeartbeatStream',
          'content-type': 'application/connect+proto',
        });
        assert.match(String(endOf(await answerOf(silent)).error?.message), /no heartbeat for 0.3 s/);
      } finally {
        session.close();
      }
    },
  );
});
