// Reverse tunnels end to end on loopback: a real agent dials a tiny proxy (net listener -> handle()), the
// proxy dials streams back over the agent's tunnel (records.ts, muxsession.ts), with certificates from x509.ts.
import assert from 'node:assert/strict';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { pino, type Logger } from 'pino';
import { createTLSCA, generateTLSKey, issueTLSCert } from '../crypto/x509.ts';
import { startTunnelClient, type TunnelClient } from './client.ts';
import { createTunnelServer, type TunnelServer } from './server.ts';

const now = new Date();
const silent = pino({ level: 'silent' });

async function hostCert(
  ca: { certPem: string; keyPem: string },
  hostId: string,
  systemRoles: string[],
  cluster = 'example',
) {
  const key = await generateTLSKey();
  const certPem = await issueTLSCert({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    publicKeyPem: key.publicKeyPem,
    identity: { username: hostId, roles: [], logins: [], cluster, expires: '', kind: 'host', hostId, systemRoles },
    notAfter: new Date(now.getTime() + 3_600_000),
    now,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'both',
  });
  return { keyPem: key.privateKeyPem, certPem };
}

/** A logger whose lines the test can read. */
function capturingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) }), lines };
}

interface TinyProxy {
  tunnels: TunnelServer;
  port: number;
  accepted: number;
  close(): Promise<void>;
}

/** Stands in for the mux: every accepted socket goes straight to the tunnel server. */
async function startTinyProxy(
  tlsCfg: { keyPem: string; certChainPem: string; caPems: string[] },
  opts: {
    port?: number;
    log?: Logger;
    onAgent?: (hostId: string, up: boolean) => void;
    maxHandshakes?: number;
    busy?: () => boolean;
    maxStreamsPerUser?: number;
  } = {},
): Promise<TinyProxy> {
  const { log = silent, onAgent, maxHandshakes, busy, maxStreamsPerUser } = opts;
  const tunnels = createTunnelServer({ tls: tlsCfg, log, onAgent, maxHandshakes, busy, maxStreamsPerUser });
  const sockets = new Set<net.Socket>();
  const proxy: TinyProxy = {
    tunnels,
    port: 0,
    accepted: 0,
    async close() {
      await tunnels.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => listener.close(r));
    },
  };
  const listener = net.createServer((socket) => {
    proxy.accepted++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    tunnels.handle(socket);
  });
  listener.listen(opts.port ?? 0, '127.0.0.1');
  await once(listener, 'listening');
  proxy.port = (listener.address() as net.AddressInfo).port;
  return proxy;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function echo(stream: Duplex): void {
  pipeline(stream, stream).catch(() => {});
}

async function sha256Of(stream: Duplex): Promise<{ digest: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        cb();
      },
    }),
  );
  return { digest: hash.digest('hex'), bytes };
}

describe('reverse tunnel', () => {
  let ca: { certPem: string; keyPem: string };
  let proxyTLS: { keyPem: string; certChainPem: string; caPems: string[] };
  let agentTLS: { keyPem: string; certPem: string; caPems: string[] };
  let proxy: TinyProxy;
  let agent: TunnelClient;
  const opened: { target: string; clientAddr: string }[] = [];

  before(async () => {
    ca = await createTLSCA({ clusterName: 'example', now });
    const p = await hostCert(ca, 'proxy-1', ['proxy']);
    proxyTLS = { keyPem: p.keyPem, certChainPem: p.certPem + ca.certPem, caPems: [ca.certPem] };
    const a = await hostCert(ca, 'node-1', ['node']);
    agentTLS = { ...a, caPems: [ca.certPem] };
    proxy = await startTinyProxy(proxyTLS);
    agent = startTunnelClient({
      proxyAddrs: () => [`127.0.0.1:${proxy.port}`],
      tls: agentTLS,
      onConnection: (stream, meta) => {
        opened.push(meta);
        echo(stream);
      },
      log: silent,
      backoff: { minMs: 50, maxMs: 500 },
    });
    await waitFor('the tunnel', () => proxy.tunnels.agents().includes('node-1') && agent.connected().length === 1);
  });

  after(async () => {
    await agent.close();
    await proxy.close();
  });

  it('carries 100 MB both ways byte-identical through a dialed stream', async () => {
    const stream = await proxy.tunnels.dial('node-1', { clientAddr: '192.0.2.7:50000', target: 'localhost:3022' });
    assert.deepEqual(opened.at(-1), { clientAddr: '192.0.2.7:50000', target: 'localhost:3022' });
    const total = 100 * 1024 * 1024;
    const sent = createHash('sha256');
    const started = process.hrtime.bigint();
    const received = sha256Of(stream);
    async function* source() {
      for (let n = 0; n < total; n += 1024 * 1024) {
        const chunk = randomBytes(1024 * 1024);
        sent.update(chunk);
        yield chunk;
      }
    }
    // The echo sends back what it reads: the stream's end (half-close) travels through and back.
    await pipeline(source(), stream);
    const got = await received;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    assert.equal(got.bytes, total);
    assert.equal(got.digest, sent.digest('hex'));
    console.log(
      `# tunnel echo: ${total / 1024 / 1024} MiB each way in ${seconds.toFixed(2)} s = ` +
        `${(total / 1024 / 1024 / seconds).toFixed(0)} MiB/s`,
    );
  });

  it('carries several concurrent streams without mixing them up', async () => {
    const results = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const stream = await proxy.tunnels.dial('node-1', { clientAddr: `10.0.0.${i}:1`, target: `t${i}:22` });
        const payload = randomBytes(256 * 1024 + i);
        const received = sha256Of(stream);
        stream.end(payload);
        const got = await received;
        return got.digest === createHash('sha256').update(payload).digest('hex') && got.bytes === payload.length;
      }),
    );
    assert.deepEqual(results, Array(16).fill(true));
  });

  it('answers a dial to an unknown host with NotFound', async () => {
    await assert.rejects(proxy.tunnels.dial('node-404', { clientAddr: '1.2.3.4:5', target: 'x:22' }), {
      name: 'NotFound',
      code: 'ERR_NOT_FOUND',
      message: 'no tunnel to node node-404',
    });
  });

  it('refuses dial metadata that could not travel as a header', async () => {
    await assert.rejects(proxy.tunnels.dial('node-1', { clientAddr: '1.2.3.4:5', target: 'x\r\nevil: 1' }), {
      code: 'ERR_BAD_PARAMETER',
    });
  });

  it('honours an abort signal while waiting for the agent', async () => {
    const ac = new AbortController();
    ac.abort(new Error('caller gave up'));
    await assert.rejects(
      proxy.tunnels.dial('node-1', { clientAddr: '1.2.3.4:5', target: 'x:22' }, ac.signal),
      /caller gave up/,
    );
  });

  it(
    "refuses a user's stream past their limit on one tunnel in one line, " + 'while another user still gets through',
    async () => {
      const limited = await startTinyProxy(proxyTLS, { maxStreamsPerUser: 3 });
      // Streams the agent takes and never answers on: SSH connections that never authenticate.
      const silentAgent = startTunnelClient({
        proxyAddrs: () => [`127.0.0.1:${limited.port}`],
        tls: agentTLS,
        onConnection: (stream) => void stream.resume(),
        log: silent,
        backoff: { minMs: 50, maxMs: 500 },
      });
      try {
        await waitFor('the tunnel', () => limited.tunnels.agents().includes('node-1'));
        const dial = (user: string) =>
          limited.tunnels.dial('node-1', { clientAddr: '192.0.2.1:1', target: 'localhost:3022', user });
        const held = await Promise.all([dial('mallory'), dial('mallory'), dial('mallory')]);
        await assert.rejects(dial('mallory'), {
          name: 'LimitExceeded',
          code: 'ERR_LIMIT_EXCEEDED',
          message: 'you have 3 connections open to node node-1, the most one user may have: close some first',
        });
        const other = await dial('alice');
        other.destroy();
        // A stream that ends gives its place back.
        const closed = once(held[0]!, 'close');
        held[0]!.destroy();
        await closed;
        (await dial('mallory')).destroy();
        for (const s of held) s.destroy();
      } finally {
        await silentAgent.close();
        await limited.close();
      }
    },
  );

  it('reconnects after the proxy is closed and restarted on the same port', async () => {
    const port = proxy.port;
    const before = proxy.tunnels;
    await proxy.close();
    assert.deepEqual(before.agents(), []);
    await waitFor('the agent to notice', () => agent.connected().length === 0);
    proxy = await startTinyProxy(proxyTLS, { port });
    const t0 = Date.now();
    await waitFor(
      'the tunnel to come back',
      () => proxy.tunnels.agents().includes('node-1') && agent.connected().length === 1,
      5000,
    );
    console.log(`# reconnected in ${Date.now() - t0} ms`);
    const stream = await proxy.tunnels.dial('node-1', { clientAddr: '1.2.3.4:5', target: 'x:22' });
    const received = sha256Of(stream);
    stream.end('hello again');
    assert.equal((await received).bytes, 11);
  });

  it('replaces an older session of the same agent with the newest', async () => {
    const events: string[] = [];
    const p2 = await startTinyProxy(proxyTLS, {
      onAgent: (hostId, up) => events.push(`${hostId} ${up ? 'up' : 'down'}`),
    });
    const served: string[] = [];
    const start = (name: string) =>
      startTunnelClient({
        proxyAddrs: () => [`127.0.0.1:${p2.port}`],
        tls: agentTLS,
        onConnection: (stream) => {
          served.push(name);
          echo(stream);
        },
        log: silent,
        // Long enough that the replaced agent does not come back during the test.
        backoff: { minMs: 30_000, maxMs: 30_000 },
      });
    const first = start('first');
    const second = { agent: undefined as TunnelClient | undefined };
    try {
      await waitFor('the first session', () => first.connected().length === 1);
      second.agent = start('second');
      await waitFor('the second session', () => second.agent!.connected().length === 1);
      // The old session got GOAWAY and, carrying no streams, closed.
      await waitFor('the first session to close', () => first.connected().length === 0);
      const stream = await p2.tunnels.dial('node-1', { clientAddr: '1.2.3.4:5', target: 'x:22' });
      stream.end();
      await sha256Of(stream);
      assert.deepEqual(served, ['second']);
      assert.deepEqual(p2.tunnels.agents(), ['node-1']);
      assert.deepEqual(events, ['node-1 up', 'node-1 up'], 'a replaced session does not report the host down');
    } finally {
      await first.close();
      await second.agent?.close();
      await p2.close();
    }
  });

  it(
    'moves to renewed certificates: the proxy presents its new one, the agent re-dials with its own, ' +
      'open streams finish',
    async () => {
      const { log, lines } = capturingLog();
      const p3 = await startTinyProxy(proxyTLS, { log });
      let mine = agentTLS;
      const a = startTunnelClient({
        proxyAddrs: () => [`127.0.0.1:${p3.port}`],
        tls: () => mine,
        onConnection: echo,
        log: silent,
        backoff: { minMs: 50, maxMs: 500 },
      });
      const peerCert = async (maxVersion?: tls.SecureVersion) => {
        const t = tls.connect({
          host: '127.0.0.1',
          port: p3.port,
          ALPNProtocols: ['ward-reversetunnel'],
          maxVersion,
          key: agentTLS.keyPem,
          cert: agentTLS.certPem,
          ca: agentTLS.caPems,
          checkServerIdentity: () => undefined,
        });
        try {
          // once() rejects on 'error': a refused handshake comes back as its message.
          const outcome = await once(t, 'secureConnect').then(
            () => 'ok',
            (e: Error) => e.message,
          );
          return outcome === 'ok' ? t.getPeerCertificate().fingerprint256 : `refused: ${outcome}`;
        } finally {
          t.destroy();
        }
      };
      try {
        await waitFor('the tunnel', () => a.connected().length === 1);
        const held = await p3.tunnels.dial('node-1', { clientAddr: '192.0.2.7:50010', target: 'localhost:3022' });
        const heldBack = sha256Of(held);
        held.write('before ');
        const renewedProxy = await hostCert(ca, 'proxy-1', ['proxy']);
        p3.tunnels.setTLS({
          keyPem: renewedProxy.keyPem,
          certChainPem: renewedProxy.certPem + ca.certPem,
          caPems: [ca.certPem],
        });
        assert.equal(
          await peerCert(),
          new X509Certificate(renewedProxy.certPem).fingerprint256,
          'new handshakes get the renewed proxy certificate',
        );
        assert.match(await peerCert('TLSv1.2'), /^refused/, 'and still only TLS 1.3');
        const accepted = p3.accepted;
        mine = { ...(await hostCert(ca, 'node-1', ['node'])), caPems: [ca.certPem] };
        a.renew();
        await waitFor('the new tunnel to replace the old', () => lines.some((l) => l.includes('"replaced":true')));
        assert.equal(p3.accepted, accepted + 1, 'one new connection');
        assert.deepEqual(a.connected(), [`127.0.0.1:${p3.port}`]);
        const fresh = await p3.tunnels.dial('node-1', { clientAddr: '192.0.2.7:50011', target: 'localhost:3022' });
        const freshBack = sha256Of(fresh);
        fresh.end('new tunnel');
        assert.equal((await freshBack).bytes, 'new tunnel'.length);
        held.end('and after');
        assert.equal((await heldBack).bytes, 'before and after'.length, 'the stream on the old tunnel finished');
      } finally {
        await a.close();
        await p3.close();
      }
    },
  );

  it('keeps a working tunnel when a new connection of the same host never gets past the switch', async () => {
    // A stream held open keeps the working tunnel from ending (and its agent from simply reconnecting).
    const held = await proxy.tunnels.dial('node-1', { clientAddr: '192.0.2.7:50002', target: 'localhost:3022' });
    held.resume();
    // The host's own certificate, so the proxy accepts the handshake; then nothing: no SWITCH, no HELLO.
    const t = tls.connect({
      host: '127.0.0.1',
      port: proxy.port,
      ALPNProtocols: ['ward-reversetunnel'],
      minVersion: 'TLSv1.3',
      key: agentTLS.keyPem,
      cert: agentTLS.certPem,
      ca: agentTLS.caPems,
      checkServerIdentity: () => undefined,
    });
    t.on('error', () => undefined);
    await once(t, 'secureConnect');
    await new Promise((r) => setTimeout(r, 200));
    try {
      const stream = await proxy.tunnels.dial('node-1', { clientAddr: '192.0.2.7:50003', target: 'localhost:3022' });
      const back = sha256Of(stream);
      stream.end('still the working tunnel');
      assert.equal((await back).bytes, 'still the working tunnel'.length);
    } finally {
      t.destroy();
      held.destroy();
    }
  });

  /** A proxy whose two handshake slots are held by connections that never say anything (until the 10 s timeout). */
  async function proxyWithSlotsHeld(busy: boolean) {
    const { log, lines } = capturingLog();
    const limited = await startTinyProxy(proxyTLS, { log, maxHandshakes: 2, busy: () => busy });
    const holders = await Promise.all(
      [0, 1].map(async () => {
        const s = net.connect(limited.port, '127.0.0.1');
        s.on('error', () => undefined);
        await once(s, 'connect');
        return s;
      }),
    );
    await waitFor('two handshakes in progress', () => limited.tunnels.handshakesInProgress() === 2);
    const other = await hostCert(ca, 'node-shed', ['node']);
    const agent = startTunnelClient({
      proxyAddrs: () => [`127.0.0.1:${limited.port}`],
      tls: { ...other, caPems: [ca.certPem] },
      onConnection: echo,
      log: silent,
      backoff: { minMs: 20, maxMs: 50 },
    });
    return {
      limited,
      holders,
      agent,
      lines,
      async close() {
        await agent.close();
        for (const h of holders) h.destroy();
        await limited.close();
      },
    };
  }

  it(
    'while busy, closes connections past its handshake limit at once, ' + 'and takes the agent once a slot is free',
    async () => {
      const t = await proxyWithSlotsHeld(true);
      try {
        await waitFor('the agent to be turned away a few times', () => t.limited.accepted >= 2 + 3);
        assert.deepEqual(t.limited.tunnels.agents(), []);
        assert.equal(t.limited.tunnels.handshakesInProgress(), 2, 'a shed connection never counts as a handshake');
        assert.equal(
          t.lines.filter((l) => l.includes('proxy busy with tunnel handshakes')).length,
          1,
          'said once, not per connection',
        );
        for (const h of t.holders) h.destroy();
        await waitFor(
          'the agent, once a slot is free',
          () => t.limited.tunnels.agents().includes('node-shed') && t.agent.connected().length === 1,
        );
        assert.equal(t.limited.tunnels.handshakesInProgress(), 0, 'a tunnel that is up no longer counts');
      } finally {
        await t.close();
      }
    },
  );

  it('does not let stalled handshakes lock agents out of a proxy that is not busy', async () => {
    const t = await proxyWithSlotsHeld(false);
    try {
      await waitFor(
        'the agent, past the stalled handshakes',
        () => t.limited.tunnels.agents().includes('node-shed') && t.agent.connected().length === 1,
      );
      assert.equal(t.limited.tunnels.handshakesInProgress(), 2, 'the stalled ones are still there');
      assert.equal(t.lines.filter((l) => l.includes('proxy busy')).length, 0);
    } finally {
      await t.close();
    }
  });

  it('ends the streams of an agent that closes', async () => {
    const other = await hostCert(ca, 'node-2', ['node']);
    const a2 = startTunnelClient({
      proxyAddrs: () => [`127.0.0.1:${proxy.port}`],
      tls: { ...other, caPems: [ca.certPem] },
      onConnection: echo,
      log: silent,
    });
    await waitFor('node-2', () => proxy.tunnels.agents().includes('node-2'));
    const stream = await proxy.tunnels.dial('node-2', { clientAddr: '1.2.3.4:5', target: 'x:22' });
    stream.on('error', () => {});
    const closed = once(stream, 'close');
    await a2.close();
    await closed;
    assert.ok(stream.destroyed);
    await waitFor('node-2 to leave', () => !proxy.tunnels.agents().includes('node-2'));
    await assert.rejects(proxy.tunnels.dial('node-2', { clientAddr: '1.2.3.4:5', target: 'x:22' }), {
      code: 'ERR_NOT_FOUND',
    });
  });

  it('drops and re-dials a tunnel whose proxy stops answering PINGs', async () => {
    // A relay between agent and proxy that can go silent, like a NAT that forgot the flow.
    let stalled = false;
    const pairs: net.Socket[][] = [];
    const relay = net.createServer((inbound) => {
      const outbound = net.connect(proxy.port, '127.0.0.1');
      const pair = [inbound, outbound];
      pairs.push(pair);
      for (const s of pair) s.on('error', () => {});
      inbound.on('data', (d) => void (stalled || outbound.write(d)));
      outbound.on('data', (d) => void (stalled || inbound.write(d)));
      inbound.once('close', () => outbound.destroy());
      outbound.once('close', () => inbound.destroy());
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    const other = await hostCert(ca, 'node-3', ['node']);
    const { log, lines } = capturingLog();
    const a = startTunnelClient({
      proxyAddrs: () => [`127.0.0.1:${(relay.address() as net.AddressInfo).port}`],
      tls: { ...other, caPems: [ca.certPem] },
      onConnection: echo,
      log,
      backoff: { minMs: 20, maxMs: 100 },
      keepalive: { intervalMs: 100, timeoutMs: 200 },
    });
    try {
      await waitFor('node-3', () => a.connected().length === 1);
      stalled = true;
      await waitFor('the keepalive to fire', () => lines.some((l) => l.includes('tunnel keepalive timed out')), 3000);
      stalled = false;
      await waitFor('a fresh tunnel', () => a.connected().length === 1 && pairs.length >= 2, 3000);
    } finally {
      await a.close();
      for (const pair of pairs) for (const s of pair) s.destroy();
      await new Promise((r) => relay.close(r));
    }
  });

  it('refuses an agent whose certificate comes from a foreign CA', async () => {
    const foreign = await createTLSCA({ clusterName: 'example', now });
    const impostor = await hostCert(foreign, 'node-evil', ['node']);
    const proxyLog = capturingLog();
    const p2 = await startTinyProxy(proxyTLS, { log: proxyLog.log });
    const agentLog = capturingLog();
    const bad = startTunnelClient({
      proxyAddrs: () => [`127.0.0.1:${p2.port}`],
      tls: { ...impostor, caPems: [ca.certPem] },
      onConnection: echo,
      log: agentLog.log,
      backoff: { minMs: 20, maxMs: 50 },
    });
    try {
      await waitFor('two attempts', () => p2.accepted >= 2);
      await waitFor('the proxy to log the refusal', () =>
        proxyLog.lines.some((l) => l.includes('refused in TLS handshake')),
      );
      assert.deepEqual(p2.tunnels.agents(), []);
      assert.deepEqual(bad.connected(), []);
      await waitFor('the agent to log the refusal', () =>
        agentLog.lines.some((l) => l.includes('proxy closed the connection before accepting the tunnel')),
      );
    } finally {
      await bad.close();
      await p2.close();
    }
  });

  it('refuses (as an agent) a proxy whose certificate lacks the proxy role', async () => {
    const fake = await hostCert(ca, 'not-a-proxy', ['node']);
    const fakeProxy = await startTinyProxy({
      keyPem: fake.keyPem,
      certChainPem: fake.certPem + ca.certPem,
      caPems: [ca.certPem],
    });
    const { log, lines } = capturingLog();
    const reached: string[] = [];
    const a = startTunnelClient({
      proxyAddrs: () => [`127.0.0.1:${fakeProxy.port}`],
      tls: agentTLS,
      onConnection: (stream) => {
        reached.push('stream');
        echo(stream);
      },
      log,
      backoff: { minMs: 20, maxMs: 50 },
    });
    try {
      await waitFor(
        'the refusal',
        () => lines.some((l) => l.includes('proxy certificate lacks the proxy role')) && fakeProxy.accepted >= 2,
      );
      assert.deepEqual(a.connected(), []);
      // Nothing it opens reaches the agent.
      await waitFor('the fake proxy to lose the agent', () => fakeProxy.tunnels.agents().length === 0);
      assert.deepEqual(reached, []);
    } finally {
      await a.close();
      await fakeProxy.close();
    }
  });

  it('refuses a proxy of another cluster signed by the same CA', async () => {
    const other = await hostCert(ca, 'proxy-x', ['proxy'], 'elsewhere');
    const otherProxy = await startTinyProxy({
      keyPem: other.keyPem,
      certChainPem: other.certPem + ca.certPem,
      caPems: [ca.certPem],
    });
    const { log, lines } = capturingLog();
    const a = startTunnelClient({
      proxyAddrs: () => [`127.0.0.1:${otherProxy.port}`],
      tls: agentTLS,
      onConnection: echo,
      log,
      backoff: { minMs: 20, maxMs: 50 },
    });
    try {
      await waitFor('the refusal', () => lines.some((l) => l.includes('proxy belongs to cluster elsewhere')));
      assert.deepEqual(a.connected(), []);
    } finally {
      await a.close();
      await otherProxy.close();
    }
  });
});
