// The hostile-input suite's yardstick: a ward process that survives an attack still runs, still serves
// a real client, and holds no more file descriptors or memory than before, once the dust settles. Every
// security test file takes a reading before its attacks and compares after them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { delay, type Cluster } from '../harness.ts';

export interface Vitals {
  fds: number;
  rssKiB: number;
}

export function readVitals(pid: number): Vitals {
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  assert.ok(rss, `no VmRSS for pid ${pid}`);
  return { fds, rssKiB: Number(rss) };
}

/** The process is alive (signal 0 reaches it) and is the one the cluster started. */
export function assertAlive(cluster: Cluster): void {
  assert.doesNotThrow(() => process.kill(cluster.pid, 0), 'the ward process is gone');
}

/**
 * Waits until the open descriptors are back to `before` (plus `slackFds`: pools and caches may keep a
 * few), and checks resident memory grew by at most `maxRssGrowthMiB`. Fails with both readings.
 */
export async function assertSettled(
  cluster: Cluster,
  before: Vitals,
  opts: { slackFds?: number; maxRssGrowthMiB?: number; timeoutMs?: number } = {},
): Promise<Vitals> {
  const { slackFds = 8, maxRssGrowthMiB = 96, timeoutMs = 15_000 } = opts;
  assertAlive(cluster);
  const deadline = Date.now() + timeoutMs;
  let now = readVitals(cluster.pid);
  while (now.fds > before.fds + slackFds && Date.now() < deadline) {
    await delay(200);
    now = readVitals(cluster.pid);
  }
  assert.ok(now.fds <= before.fds + slackFds, `file descriptors leaked: ${before.fds} before, ${now.fds} after`);
  const growthMiB = (now.rssKiB - before.rssKiB) / 1024;
  assert.ok(
    growthMiB <= maxRssGrowthMiB,
    `resident memory grew by ${growthMiB.toFixed(1)} MiB (${before.rssKiB} → ${now.rssKiB} KiB)`,
  );
  return now;
}

function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

export interface CloseResult {
  /** Milliseconds from connect until the server closed the connection (or the limit, when it did not). */
  ms: number;
  closed: boolean;
  /** What the server wrote back, at most the first 64 KiB. */
  reply: Buffer;
}

/**
 * Connects to `addr`, writes `data` (chunk by chunk, `gapMs` apart), then waits up to `limitMs` for the
 * server to close. Never throws for a reset: a reset is a close.
 */
export function sendAndAwaitClose(
  addr: string,
  data: Buffer | Buffer[],
  limitMs: number,
  gapMs = 0,
): Promise<CloseResult> {
  const { host, port } = splitAddr(addr);
  const chunks = Array.isArray(data) ? data : [data];
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ host, port });
    const reply: Buffer[] = [];
    let replyLength = 0;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ms: Date.now() - started, closed, reply: Buffer.concat(reply) });
    };
    const timer = setTimeout(() => finish(false), limitMs);
    socket.on('data', (d: Buffer) => {
      if (replyLength < 65_536) {
        reply.push(d);
        replyLength += d.length;
      }
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.once('connect', async () => {
      for (const chunk of chunks) {
        if (done) return;
        socket.write(chunk);
        if (gapMs) await delay(gapMs);
      }
    });
  });
}

/** The first bytes a real Node TLS client sends (its ClientHello record) for these options. */
export function captureClientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      sock.once('data', (d: Buffer) => {
        resolve(d);
        sock.destroy();
        server.close();
      });
    });
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      tls.connect({ ...opts, port, host: '127.0.0.1', rejectUnauthorized: false }).on('error', () => undefined);
    });
  });
}
