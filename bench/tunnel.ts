// The reverse tunnel's data path against what its bytes travelled in before: a Node TLS 1.3 connection.
// - Ward: a real tunnel over loopback (createTunnelServer behind a net listener, startTunnelClient dialling it:
//   TLS handshake, then records.ts and the multiplexer), one stream dialled through it.
// - Reference: a mutual TLS 1.3 connection over loopback between the same certificates, no multiplexer.
// Both ends run in this process, so CPU per GiB counts both. Also the two AEADs Node offers, per 64 KiB record,
// which is why the records are AES-256-GCM.
// Run alone: node --import tsx bench/tunnel.ts [--mib 512] [--round-trips 5000]
import { createCipheriv, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createTLSCA } from '../src/crypto/x509.ts';
import { startTunnelClient } from '../src/tunnel/client.ts';
import { createTunnelServer } from '../src/tunnel/server.ts';
import { hostCert } from './hostcert.ts';
import { printTable, result, type BenchResult } from './result.ts';

export interface TunnelOptions {
  mib: number;
  roundTrips: number;
}

const MiB = 1024 * 1024;
const MESSAGE = 64;

/** Far side: 'sink' reads all and ends when the writer ends; 'echo' sends back what it reads. */
function serve(stream: Duplex, mode: string): void {
  stream.on('error', () => undefined);
  if (mode === 'sink') {
    stream.on('data', () => undefined);
    stream.once('end', () => stream.end());
  } else stream.pipe(stream);
}

/** Writes `mib` MiB and waits for the far side to end: MiB/s and CPU seconds per GiB (both ends). */
async function oneWay(stream: Duplex, mib: number): Promise<{ mibps: number; cpuPerGiB: number }> {
  const chunk = randomBytes(MiB);
  const ended = once(stream, 'end');
  stream.resume();
  const cpu = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < mib; i++) if (!stream.write(chunk)) await once(stream, 'drain');
  stream.end();
  await ended;
  const seconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  return { mibps: mib / seconds, cpuPerGiB: ((used.user + used.system) / 1e6) * (1024 / mib) };
}

/** `n` 64-byte messages, each sent when the echo of the one before is back: microseconds per round trip. */
async function pingPong(stream: Duplex, n: number): Promise<number> {
  const message = randomBytes(MESSAGE);
  let got = 0;
  let next: (() => void) | undefined;
  stream.on('data', (d: Buffer) => {
    got += d.length;
    if (got >= MESSAGE) {
      got -= MESSAGE;
      next?.();
    }
  });
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const back = new Promise<void>((resolve) => (next = resolve));
    stream.write(message);
    await back;
  }
  return ((performance.now() - t) * 1000) / n;
}

/** Seconds one AEAD takes to seal `n` records of `size` bytes, each with its own cipher object as records.ts does. */
function seal(cipher: 'aes-256-gcm' | 'chacha20-poly1305', size: number, n: number): number {
  const key = randomBytes(32);
  const record = randomBytes(size);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const nonce = Buffer.alloc(12);
    nonce.writeUInt32BE(i, 8);
    const c =
      cipher === 'aes-256-gcm'
        ? createCipheriv(cipher, key, nonce, { authTagLength: 16 })
        : createCipheriv(cipher, key, nonce, { authTagLength: 16 });
    c.setAAD(Buffer.alloc(4));
    c.update(record);
    c.final();
    c.getAuthTag();
  }
  return (performance.now() - t) / 1000;
}

export async function benchTunnel(opts: TunnelOptions): Promise<BenchResult[]> {
  const log = pino({ level: 'silent' });
  const ca = await createTLSCA({ clusterName: 'bench', now: new Date() });
  const [proxyCert, nodeCert] = [await hostCert(ca, 'proxy', ['proxy']), await hostCert(ca, 'node-1', ['node'])];

  // Ward: the tunnel as a proxy and an agent run it.
  const tunnels = createTunnelServer({
    tls: { keyPem: proxyCert.keyPem, certChainPem: proxyCert.certPem + ca.certPem, caPems: [ca.certPem] },
    log,
  });
  const listener = net.createServer((s) => tunnels.handle(s.on('error', () => undefined)));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const agent = startTunnelClient({
    proxyAddrs: () => [`127.0.0.1:${(listener.address() as net.AddressInfo).port}`],
    tls: { ...nodeCert, caPems: [ca.certPem] },
    onConnection: (stream, meta) => serve(stream, meta.target),
    log,
  });
  while (!tunnels.agents().includes('node-1')) await new Promise((r) => setTimeout(r, 20));
  const wardStream = (mode: string) => tunnels.dial('node-1', { clientAddr: '127.0.0.1:1', target: mode });

  // Reference: mutual TLS 1.3 between the same certificates.
  const tlsServer = tls.createServer(
    {
      key: proxyCert.keyPem,
      cert: proxyCert.certPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (s) =>
      s.once('data', (first: Buffer) => {
        const mode = first.toString('latin1', 0, 4) === 'sink' ? 'sink' : 'echo';
        if (mode === 'echo') s.write(first);
        serve(s, mode);
      }),
  );
  tlsServer.listen(0, '127.0.0.1');
  await once(tlsServer, 'listening');
  const tlsStream = async (mode: string): Promise<Duplex> => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: (tlsServer.address() as net.AddressInfo).port,
      key: nodeCert.keyPem,
      cert: nodeCert.certPem,
      ca: [ca.certPem],
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
    });
    s.setNoDelay(true);
    await once(s, 'secureConnect');
    // The mode word, answered with a 4-byte echo so both sides start from a clean stream.
    s.write(mode === 'sink' ? 'sink' : 'echo');
    if (mode !== 'sink') await once(s, 'data');
    return s;
  };

  try {
    // Warm-up, then the measured runs, Ward and TLS alternating.
    await oneWay(await wardStream('sink'), 32);
    await oneWay(await tlsStream('sink'), 32);
    const w = await oneWay(await wardStream('sink'), opts.mib);
    const r = await oneWay(await tlsStream('sink'), opts.mib);
    const wardEcho = await wardStream('echo');
    const tlsEcho = await tlsStream('echo');
    await pingPong(wardEcho, 200);
    const wRtt = await pingPong(wardEcho, opts.roundTrips);
    const rRtt = await pingPong(tlsEcho, opts.roundTrips);
    wardEcho.destroy();
    tlsEcho.destroy();
    const big = 64 * 1024;
    const [aes, chacha] = (['aes-256-gcm', 'chacha20-poly1305'] as const).map(
      (c) => (2000 * big) / MiB / seal(c, big, 2000),
    );
    const [aesSmall, chachaSmall] = (['aes-256-gcm', 'chacha20-poly1305'] as const).map(
      (c) => (seal(c, MESSAGE, 20_000) * 1e6) / 20_000,
    );
    console.log(
      `tunnel: ${opts.mib} MiB one way: ward ${w.mibps.toFixed(0)} MiB/s (${w.cpuPerGiB.toFixed(2)} CPU s/GiB), ` +
        `TLS ${r.mibps.toFixed(0)} MiB/s ` +
        `(${r.cpuPerGiB.toFixed(2)}); ${MESSAGE}-byte round trip: ward ${wRtt.toFixed(0)} µs, TLS ` +
        `${rRtt.toFixed(0)} µs; ` +
        `AEAD, 64 KiB records: AES-256-GCM ${aes!.toFixed(0)} MiB/s, ChaCha20-Poly1305 ${chacha!.toFixed(0)} MiB/s; ` +
        `per ${MESSAGE}-byte record: ${aesSmall!.toFixed(1)} vs ${chachaSmall!.toFixed(1)} µs`,
    );
    const what =
      'reference = the same bytes over a mutual TLS 1.3 connection (what a tunnel carried them in before), no ' +
      'multiplexer; both ends in one process';
    const cost = (name: string, wv: number, rv: number, unit: string, note: string): BenchResult => ({
      ...result(name, wv, rv, unit, note),
      ratio: Math.round((rv / wv) * 100) / 100,
    });
    return [
      result(
        `tunnel throughput, ${opts.mib} MiB one way`,
        w.mibps,
        r.mibps,
        'MiB/s',
        `${what}; ward = records.ts + the multiplexer over loopback TCP`,
      ),
      cost('tunnel CPU per GiB, both ends', w.cpuPerGiB, r.cpuPerGiB, 's/GiB', `${what}; ratio = TLS / ward`),
      cost(
        `tunnel round trip, ${MESSAGE}-byte messages`,
        wRtt,
        rRtt,
        'µs',
        `${what}; ${opts.roundTrips} round trips; ratio = TLS / ward`,
      ),
      result(
        'record AEAD, 64 KiB records',
        aes!,
        chacha!,
        'MiB/s',
        'AES-256-GCM (what the records use) vs ChaCha20-Poly1305, Node crypto, one core',
      ),
      cost(
        `record AEAD, ${MESSAGE}-byte records`,
        aesSmall!,
        chachaSmall!,
        'µs',
        'time to seal one record, a cipher object each as records.ts makes; AES-256-GCM vs ChaCha20-Poly1305; ' +
          'ratio = ChaCha / AES',
      ),
    ];
  } finally {
    await agent.close();
    await tunnels.close();
    listener.close();
    tlsServer.close();
  }
}

export function tunnelOptions(argv: string[]): TunnelOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: { mib: { type: 'string' }, 'round-trips': { type: 'string' } },
  });
  return { mib: Number(values.mib ?? 512), roundTrips: Number(values['round-trips'] ?? 5000) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const results = await benchTunnel(tunnelOptions(process.argv.slice(2)));
  // --json: for bench/run.ts, which runs this in a process of its own.
  if (process.argv.includes('--json')) console.log(JSON.stringify(results));
  else printTable(results);
  process.exit(0);
}
