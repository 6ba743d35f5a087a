// The tunnel multiplexer: the pure frame codec, and sessions over real loopback sockets, including peers
// that break every rule. A hostile peer must cost us a closed connection, never a crash or an unbounded buffer.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import {
  FLAG_ACK,
  FrameDecoder,
  FrameType,
  HEADER_SIZE,
  MAX_DATA_FRAME,
  MAX_OPEN_PAYLOAD,
  MAX_WINDOW,
  MUX_VERSION,
  MuxProtocolError,
  ResetCode,
  decodeDialMeta,
  encodeDialMeta,
  encodeHeader,
  parseHeader,
  type FrameHeader,
} from './streammux.ts';
import { MuxSession, type MuxLimits, type MuxSessionOptions, type MuxStream } from './muxsession.ts';

type Event = { frame: FrameHeader; payload?: Buffer } | { data: number; bytes: Buffer };

function collect(): { decoder: FrameDecoder; events: Event[] } {
  const events: Event[] = [];
  const decoder = new FrameDecoder({
    frame: (frame, payload) => void events.push(payload ? { frame, payload } : { frame }),
    data: (id, bytes) => void events.push({ data: id, bytes: Buffer.from(bytes) }),
  });
  return { decoder, events };
}

function rawHeader(fields: { version?: number; type: number; flags?: number; stream: number; length: number }): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b[0] = fields.version ?? MUX_VERSION;
  b[1] = fields.type;
  b.writeUInt16BE(fields.flags ?? 0, 2);
  b.writeUInt32BE(fields.stream, 4);
  b.writeUInt32BE(fields.length, 8);
  return b;
}

describe('tunnel frame codec', () => {
  it('decodes frames split at every byte boundary, DATA payload passed through in order', () => {
    const payload = randomBytes(1000);
    const meta = encodeDialMeta({ target: 'localhost:3022', clientAddr: '192.0.2.7:50000' });
    const wire = Buffer.concat([
      encodeHeader(FrameType.HELLO, 0, MUX_VERSION),
      encodeHeader(FrameType.OPEN, 1, meta.length),
      meta,
      encodeHeader(FrameType.DATA, 1, payload.length),
      payload,
      encodeHeader(FrameType.PING, 0, 42, FLAG_ACK),
      encodeHeader(FrameType.WINDOW_UPDATE, 1, 65536),
      encodeHeader(FrameType.CLOSE, 1, 0),
    ]);
    for (const step of [1, 5, 12, 13, 700, wire.length]) {
      const { decoder, events } = collect();
      for (let i = 0; i < wire.length; i += step) decoder.push(wire.subarray(i, i + step));
      assert.ok(decoder.idle);
      const frames = events.flatMap((e) => ('frame' in e ? [e.frame.type] : []));
      // OPEN is reported at its header and again with its payload.
      assert.deepEqual(frames, [
        FrameType.HELLO,
        FrameType.OPEN,
        FrameType.OPEN,
        FrameType.DATA,
        FrameType.PING,
        FrameType.WINDOW_UPDATE,
        FrameType.CLOSE,
      ]);
      const open = events.find((e) => 'payload' in e && e.payload) as { payload: Buffer };
      assert.deepEqual(decodeDialMeta(open.payload), { target: 'localhost:3022', clientAddr: '192.0.2.7:50000' });
      const data = Buffer.concat(events.flatMap((e) => ('data' in e ? [e.bytes] : [])));
      assert.ok(data.equals(payload));
      const ping = events.find((e) => 'frame' in e && e.frame.type === FrameType.PING) as { frame: FrameHeader };
      assert.deepEqual(ping.frame, { type: FrameType.PING, flags: FLAG_ACK, streamId: 0, length: 42 });
    }
  });

  it('holds a truncated frame without reporting it, and at most a header of it', () => {
    const { decoder, events } = collect();
    decoder.push(encodeHeader(FrameType.WINDOW_UPDATE, 3, 10).subarray(0, 7));
    assert.deepEqual(events, []);
    assert.ok(!decoder.idle, 'a connection that ends here ended mid-frame');
  });

  it('refuses an oversized DATA or OPEN length at the header, before any payload is taken', () => {
    for (const [type, max] of [
      [FrameType.DATA, MAX_DATA_FRAME],
      [FrameType.OPEN, MAX_OPEN_PAYLOAD],
    ] as const) {
      const { decoder, events } = collect();
      assert.throws(() => decoder.push(rawHeader({ type, stream: 1, length: max + 1 })), MuxProtocolError);
      assert.deepEqual(events, []);
      assert.throws(() => decoder.push(Buffer.alloc(10)), /already failed/, 'a failed decoder takes nothing more');
    }
    assert.throws(() => parseHeader(rawHeader({ type: FrameType.DATA, stream: 1, length: 0xffffffff })), /exceeds/);
  });

  it('refuses unknown versions, types and flags, and frames on the wrong stream', () => {
    const bad = [
      rawHeader({ version: 2, type: FrameType.PING, stream: 0, length: 0 }),
      rawHeader({ type: 8, stream: 1, length: 0 }),
      rawHeader({ type: 255, stream: 1, length: 0 }),
      rawHeader({ type: FrameType.DATA, flags: FLAG_ACK, stream: 1, length: 0 }),
      rawHeader({ type: FrameType.PING, flags: 2, stream: 0, length: 0 }),
      rawHeader({ type: FrameType.PING, stream: 1, length: 0 }),
      rawHeader({ type: FrameType.HELLO, stream: 5, length: 1 }),
      rawHeader({ type: FrameType.DATA, stream: 0, length: 1 }),
      rawHeader({ type: FrameType.OPEN, stream: 0, length: 10 }),
      rawHeader({ type: FrameType.RESET, stream: 0, length: 0 }),
      rawHeader({ type: FrameType.WINDOW_UPDATE, stream: 1, length: 0 }),
      rawHeader({ type: FrameType.WINDOW_UPDATE, stream: 0, length: MAX_WINDOW + 1 }),
      rawHeader({ type: FrameType.ACCEPT, stream: 1, length: 4 }),
      rawHeader({ type: FrameType.CLOSE, stream: 1, length: 1 }),
    ];
    for (const h of bad) assert.throws(() => parseHeader(h), MuxProtocolError, h.toString('hex'));
    const { decoder } = collect();
    assert.throws(
      () => decoder.push(rawHeader({ type: FrameType.OPEN, stream: 1, length: 0 })),
      /without dial metadata/,
    );
  });

  it('refuses truncated or inconsistent dial metadata', () => {
    const good = encodeDialMeta({ target: 't:22', clientAddr: '1.2.3.4:5' });
    assert.throws(() => decodeDialMeta(good.subarray(0, 3)), /truncated/);
    assert.throws(() => decodeDialMeta(good.subarray(0, good.length - 1)), /mismatch|truncated/);
    assert.throws(() => decodeDialMeta(Buffer.concat([good, Buffer.from('x')])), /mismatch/);
    const lying = Buffer.from(good);
    lying.writeUInt16BE(0xffff, 0);
    assert.throws(() => decodeDialMeta(lying), /truncated/);
    assert.throws(() => encodeDialMeta({ target: 'x'.repeat(3000), clientAddr: 'y' }), /too long/);
  });
});

const small: MuxLimits = { streamWindow: 64 * 1024, sessionWindow: 256 * 1024, maxStreams: 8 };

async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [[accepted]] = (await Promise.all([once(server, 'connection'), once(client, 'connect')])) as [
    [net.Socket],
    unknown,
  ];
  server.close();
  for (const s of [client, accepted]) s.on('error', () => {});
  return [client, accepted];
}

interface Pair {
  opener: MuxSession;
  acceptor: MuxSession;
  incoming: Array<{ stream: MuxStream; target: string }>;
  close(): void;
}

async function sessionPair(limits: MuxLimits, onOpen?: MuxSessionOptions['onOpen']): Promise<Pair> {
  const [a, b] = await socketPair();
  const incoming: Pair['incoming'] = [];
  const pair = { incoming, close: () => void (a.destroy(), b.destroy()) } as Pair;
  let ready = 0;
  const readyBoth = new Promise<void>((resolve) => {
    const up = () => void (++ready === 2 && resolve());
    pair.opener = new MuxSession(a, { ...limits, role: 'opener', onReady: up });
    pair.acceptor = new MuxSession(b, {
      ...limits,
      role: 'acceptor',
      onReady: up,
      onOpen:
        onOpen ??
        ((stream, meta) => {
          stream.on('error', () => {});
          stream.accept();
          incoming.push({ stream, target: meta.target });
        }),
    });
  });
  await readyBoth;
  return pair;
}

async function drain(stream: Duplex): Promise<{ digest: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        cb();
      },
    }),
  );
  return { digest: hash.digest('hex'), bytes };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('tunnel multiplexer sessions', () => {
  let p: Pair;
  before(async () => {
    p = await sessionPair(small);
  });
  after(() => p.close());

  it('carries several streams both ways byte-identical through windows far smaller than the data', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const s = p.opener.open({ target: `t${i}:22`, clientAddr: '10.0.0.1:1' });
        await s.accepted();
        const far = p.incoming.find((x) => x.target === `t${i}:22`)!.stream;
        pipeline(far, far).catch(() => {}); // echo
        const payload = randomBytes(1024 * 1024 + i * 7);
        const back = drain(s);
        s.end(payload);
        const got = await back;
        return got.bytes === payload.length && got.digest === createHash('sha256').update(payload).digest('hex');
      }),
    );
    assert.deepEqual(results, Array(6).fill(true));
    await until(() => p.opener.streamCount === 0 && p.acceptor.streamCount === 0, 'finished streams to be forgotten');
  });

  it('half-closes: the far side sees the end and can still answer', async () => {
    const s = p.opener.open({ target: 'half:22', clientAddr: '10.0.0.1:1' });
    await s.accepted();
    const far = p.incoming.find((x) => x.target === 'half:22')!.stream;
    s.end('question');
    const got = await drain(far);
    assert.equal(got.bytes, 8);
    const answer = drain(s);
    far.end('answer!');
    assert.equal((await answer).bytes, 7);
  });

  it('keeps a slow reader’s buffer within its window while the writer is held back', async () => {
    const s = p.opener.open({ target: 'slow:22', clientAddr: '10.0.0.1:1' });
    await s.accepted();
    const far = p.incoming.find((x) => x.target === 'slow:22')!.stream;
    far.pause();
    let acked = 0;
    const chunk = Buffer.alloc(16 * 1024);
    for (let i = 0; i < 64; i++) s.write(chunk, () => void (acked += chunk.length));
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(far.readableLength <= small.streamWindow, `receiver holds ${far.readableLength} bytes`);
    assert.ok(acked <= small.streamWindow + chunk.length, `writer got ${acked} bytes acknowledged`);
    // Reading lets the rest through.
    const rest = drain(far);
    s.end();
    assert.equal((await rest).bytes, 64 * chunk.length);
    s.destroy();
  });

  it('answers PINGs', async () => {
    p.opener.ping();
    assert.ok(p.opener.pingOutstanding);
    await until(() => !p.opener.pingOutstanding, 'the PING ACK');
  });

  it('refuses streams past the cap with a reset, and the session carries on', async () => {
    await until(() => p.opener.streamCount === 0 && p.acceptor.streamCount === 0, 'earlier streams to go');
    const held: MuxStream[] = [];
    for (let i = 0; i < small.maxStreams; i++) {
      const s = p.opener.open({ target: `cap${i}:22`, clientAddr: '10.0.0.1:1' });
      s.on('error', () => {});
      await s.accepted();
      held.push(s);
    }
    assert.throws(() => p.opener.open({ target: 'over:22', clientAddr: '10.0.0.1:1' }), /maximum/);
    for (const s of held) s.destroy();
    await until(() => p.acceptor.streamCount === 0, 'the far side to drop the reset streams');
    const s = p.opener.open({ target: 'after:22', clientAddr: '10.0.0.1:1' });
    await s.accepted();
    s.destroy();
  });

  it('tells the opener when the acceptor refuses a stream', async () => {
    const q = await sessionPair(small, (stream) => stream.refuse(ResetCode.REFUSED));
    try {
      const s = q.opener.open({ target: 'no:22', clientAddr: '10.0.0.1:1' });
      await assert.rejects(s.accepted(), { code: 'ERR_TUNNEL_STREAM_RESET', reason: ResetCode.REFUSED });
      assert.ok(s.isReset);
      await until(() => q.opener.streamCount === 0 && q.acceptor.streamCount === 0, 'both sides to forget it');
    } finally {
      q.close();
    }
  });

  it('closes every stream when the connection goes', async () => {
    const q = await sessionPair(small);
    const s = q.opener.open({ target: 'x:22', clientAddr: '10.0.0.1:1' });
    s.on('error', () => {});
    await s.accepted();
    const closed = once(s, 'close');
    q.acceptor.destroy();
    await closed;
    assert.ok(q.opener.isClosed);
    assert.throws(() => q.opener.open({ target: 'y:22', clientAddr: '1.2.3.4:5' }), /closing/);
    q.close();
  });
});

describe('tunnel multiplexer against a hostile peer', () => {
  /** An acceptor session on one end; the test writes raw bytes from the other and sees what happens. */
  async function hostile(frames: Buffer[], role: 'opener' | 'acceptor' = 'acceptor') {
    const [raw, theirs] = await socketPair();
    let closeErr: Error | undefined;
    const closed = new Promise<void>((resolve) => {
      const session = new MuxSession(theirs, {
        ...small,
        role,
        onOpen: (s) => {
          s.on('error', () => {});
          s.accept();
        },
        onClose: (err) => {
          closeErr = err;
          resolve();
        },
      });
      void session;
    });
    raw.write(encodeHeader(FrameType.HELLO, 0, MUX_VERSION));
    for (const f of frames) raw.write(f);
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('open'), 500)),
    ]);
    raw.destroy();
    theirs.destroy();
    return { outcome, err: closeErr };
  }
  const open = (id: number) => {
    const meta = encodeDialMeta({ target: 't:22', clientAddr: '1.2.3.4:5' });
    return Buffer.concat([encodeHeader(FrameType.OPEN, id, meta.length), meta]);
  };

  const cases: Array<[string, Buffer[], RegExp, ('opener' | 'acceptor')?]> = [
    ['a first frame that is not HELLO', [], /HELLO/],
    ['DATA on a stream never opened', [encodeHeader(FrameType.DATA, 7, 3), Buffer.from('abc')], /never opened/],
    ['a stream id used twice', [open(1), open(1)], /reuses/],
    ['an even or decreasing stream id', [open(3), open(1)], /reuses/],
    [
      'DATA beyond the stream window',
      [
        open(1),
        ...Array.from({ length: 2 }, () => [encodeHeader(FrameType.DATA, 1, 40_000), Buffer.alloc(40_000)]).flat(),
      ],
      /window/,
    ],
    ['credit that overflows a window', [open(1), encodeHeader(FrameType.WINDOW_UPDATE, 1, MAX_WINDOW)], /overflow/],
    ['credit that overflows the session window', [encodeHeader(FrameType.WINDOW_UPDATE, 0, MAX_WINDOW)], /overflow/],
    ['an unknown frame type', [rawHeader({ type: 9, stream: 1, length: 0 })], /unknown frame type/],
    ['an oversized frame length', [rawHeader({ type: FrameType.DATA, stream: 1, length: 0x7fffffff })], /exceeds/],
    [
      'DATA after CLOSE',
      [open(1), encodeHeader(FrameType.CLOSE, 1, 0), encodeHeader(FrameType.DATA, 1, 1), Buffer.from('x')],
      /after CLOSE/,
    ],
    ['a second HELLO', [encodeHeader(FrameType.HELLO, 0, MUX_VERSION)], /second HELLO/],
    ['an OPEN sent to the proxy', [open(1)], /OPEN sent to the opener/, 'opener'],
    ['an ACCEPT sent to the agent', [open(1), encodeHeader(FrameType.ACCEPT, 1, 0)], /ACCEPT sent to the acceptor/],
    ['malformed dial metadata', [encodeHeader(FrameType.OPEN, 1, 5), Buffer.from([0, 9, 1, 2, 3])], /truncated/],
  ];
  for (const [what, frames, reason, role] of cases) {
    it(`drops the connection on ${what}`, async () => {
      // The HELLO-first case sends its own first frame: strip ours by sending a PING before HELLO.
      const r =
        what.includes('HELLO') && what.startsWith('a first')
          ? await hostileRaw([encodeHeader(FrameType.PING, 0, 1)])
          : await hostile(frames, role);
      assert.equal(r.outcome, 'closed');
      assert.match(r.err?.message ?? '', reason);
    });
  }

  async function hostileRaw(bytes: Buffer[]) {
    const [raw, theirs] = await socketPair();
    let closeErr: Error | undefined;
    const closed = new Promise<void>((resolve) => {
      new MuxSession(theirs, { ...small, role: 'acceptor', onClose: (err) => ((closeErr = err), resolve()) });
    });
    for (const b of bytes) raw.write(b);
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('open'), 500)),
    ]);
    raw.destroy();
    theirs.destroy();
    return { outcome, err: closeErr };
  }

  it('tolerates frames for a stream it has already reset (they were in flight)', async () => {
    const r = await hostile([
      open(1),
      encodeHeader(FrameType.RESET, 1, ResetCode.CANCEL),
      encodeHeader(FrameType.DATA, 1, 3),
      Buffer.from('abc'),
      encodeHeader(FrameType.WINDOW_UPDATE, 1, 100),
      encodeHeader(FrameType.CLOSE, 1, 0),
    ]);
    assert.equal(r.outcome, 'open');
  });

  it('resets streams past its cap but keeps the connection', async () => {
    const r = await hostile(Array.from({ length: small.maxStreams + 3 }, (_, i) => open(2 * i + 1)));
    assert.equal(r.outcome, 'open');
  });

  it('holds no more than a header of a peer that sends a frame a byte at a time and stops', async () => {
    const [raw, theirs] = await socketPair();
    const session = new MuxSession(theirs, { ...small, role: 'acceptor' });
    raw.write(encodeHeader(FrameType.HELLO, 0, MUX_VERSION));
    const h = encodeHeader(FrameType.DATA, 1, 10);
    for (const byte of h.subarray(0, 11)) raw.write(Buffer.from([byte]));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!session.isClosed);
    raw.destroy();
    await until(() => session.isClosed, 'the session to see the close');
  });
});
