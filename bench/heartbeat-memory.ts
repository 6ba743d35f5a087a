// The auth server's memory per open HeartbeatStream: an auth server (SQLite, its real mutual-TLS listener) in this
// process, N hosts in a child process, each with its own certificate and HTTP/2 connection. Measured with forced GC:
// RSS and heap after the N connections are open (one Ping each), then after each host also opened its heartbeat
// stream. The streams go either the way Ward's clients send them (protobuf: the listener's own path,
// src/auth/heartbeatstream.ts) or in JSON, which Connect's handler serves: the reference.
//
//   node --expose-gc --import tsx bench/heartbeat-memory.ts [N] [--json-codec]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import pino from 'pino';
import { createAuthClient, type TLSIdentity } from '../src/api/client.ts';
import { systemClock } from '../src/time/clock.ts';
import { AuthService } from '../src/api/gen/ward/auth/v1/auth_pb.ts';
import { startAuthListener } from '../src/auth/listener.ts';
import { AuthServer } from '../src/auth/server.ts';
import { authServerParts } from '../test/fixtures/authapi.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { generateTLSKey } from '../src/crypto/x509.ts';

interface Job {
  addr: string;
  hosts: Array<{ hostId: string; tls: TLSIdentity }>;
  json: boolean;
}

if (process.argv[2] === 'hosts') {
  const job = JSON.parse(readFileSync(process.argv[3]!, 'utf8')) as Job;
  const clients = job.hosts.map(({ hostId, tls }) => {
    const client = job.json
      ? createClient(
          AuthService,
          createConnectTransport({
            httpVersion: '2',
            baseUrl: `https://${job.addr}`,
            useBinaryFormat: false,
            nodeOptions: { key: tls.keyPem, cert: tls.certPem, ca: tls.caPems, checkServerIdentity: () => undefined },
          }),
        )
      : createAuthClient({ addr: job.addr, identity: tls, idleTimeoutMs: 3_600_000 });
    return { hostId, client };
  });
  for (let i = 0; i < clients.length; i += 100)
    await Promise.all(clients.slice(i, i + 100).map(({ client }) => client.ping({})));
  process.stdout.write('connected\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  let answered = 0;
  for (const { hostId, client } of clients) {
    const node = JSON.stringify({
      kind: 'node',
      version: 'v1',
      metadata: { name: hostId },
      spec: { hostname: hostId, addr: '', tunnel: true, version: '1' },
    });
    async function* beats() {
      yield { resource: { json: node } };
      await new Promise(() => {}); // the stream stays open, as a host's does between heartbeats
    }
    void (async () => {
      for await (const _ of client.heartbeatStream(beats(), { timeoutMs: 0 }))
        if (++answered === clients.length) process.stdout.write('streaming\n');
    })();
  }
  await new Promise(() => {});
}

const n = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 2000);
const json = process.argv.includes('--json-codec');
const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'ward-hbmem-'));
const backend = SqliteBackend.open({ path: join(dir, 'ward.db') });
const auth = await AuthServer.create(
  authServerParts({
    clusterName: 'bench',
    backend,
    clock: systemClock,
    log,
    lockout: { maxAttempts: 5, durationMs: 60_000 },
  }),
);
const key = await generateTLSKey();
const identity = async (hostId: string, systemRoles: string[]): Promise<TLSIdentity> => {
  // A node heartbeats only the host name its certificate names (with NAME.cluster), as a join issues it.
  const dnsNames = ['localhost', hostId, `${hostId}.bench`];
  const { tlsCert, tlsCAs } = await auth.issueHostCerts({
    hostId,
    systemRoles,
    tlsPublicKey: key.publicKeyPem,
    dnsNames,
    ipAddresses: ['127.0.0.1'],
    expires: new Date(Date.now() + 3_600_000),
  });
  return { keyPem: key.privateKeyPem, certPem: tlsCert, caPems: tlsCAs };
};
const listener = await startAuthListener(auth, await identity('auth.bench', ['auth']), '127.0.0.1:0', log);
const hosts = [];
for (let i = 0; i < n; i++) hosts.push({ hostId: `host-${i}`, tls: await identity(`host-${i}`, ['node']) });
writeFileSync(
  join(dir, 'job.json'),
  JSON.stringify({ addr: `127.0.0.1:${listener.address.port}`, hosts, json } satisfies Job),
);

const memory = async () => {
  await new Promise((r) => setTimeout(r, 2_000));
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss / 1024, heap: m.heapUsed / 1024 };
};
const before = await memory();
const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, 'hosts', join(dir, 'job.json')], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
let out = '';
const reached = (word: string) =>
  new Promise<void>((resolve) => {
    const check = () => out.includes(word) && resolve();
    child.stdout.on('data', (d) => {
      out += d;
      check();
    });
    check();
  });
await reached('connected');
const connected = await memory();
child.stdin.write('go\n');
await reached('streaming');
const streaming = await memory();
child.kill();
const per = (a: { rss: number; heap: number }, b: { rss: number; heap: number }) =>
  `${((b.rss - a.rss) / n).toFixed(1)} KiB RSS, ${((b.heap - a.heap) / n).toFixed(1)} KiB heap`;
console.log(`${n} hosts, streams in ${json ? "JSON (Connect's handler)" : "protobuf (the listener's own path)"}:`);
console.log(`  per connection: ${per(before, connected)}`);
console.log(`  per heartbeat stream on top: ${per(connected, streaming)}`);
await listener.close();
await backend.close();
process.exit(0);
