// Certificate issuance rate of one auth server, against OpenSSH's own CA signing (ssh-keygen -s).
// Ward: N clients with an admin identity call GenerateUserCerts over the real mTLS Auth API; each call
// carries a fresh client key pair made beforehand (key generation is the client's cost, not timed).
// The clients run in a child process so they do not share the auth server's event loop; the in-process
// figure (AuthServer.issueUserCerts called directly) shows what the API layer costs.
// Run alone: node --import tsx bench/certs.ts [--clients 8] [--seconds 5] [--ssh-keygen-certs 200]
import { execFile as execFileCb } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pino from 'pino';
import { systemClock } from '../src/api/clock.ts';
import { createAuthClient } from '../src/api/client.ts';
import { generateClientKeys, type ClientKeys } from '../src/api/keys.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { generateTLSKey } from '../src/crypto/x509.ts';
import { startAuthListener } from '../src/auth/listener.ts';
import { AuthServer } from '../src/auth/server.ts';
import { percentile, result, type BenchResult } from './result.ts';

const execFile = promisify(execFileCb);
const TTL_MS = 3_600_000;

export interface CertsOptions {
  clients: number;
  seconds: number;
  sshKeygenCerts: number;
}

interface ClientJob {
  addr: string;
  identity: { keyPem: string; certPem: string; caPems: string[] };
  clients: number;
  seconds: number;
  keys: number;
}

interface ClientReport {
  done: number;
  elapsedMs: number;
  latenciesMs: number[];
  keygenMs: number;
}

function keyPool(n: number): ClientKeys[] {
  return Array.from({ length: n }, () => generateClientKeys('bench'));
}

/** Runs `clients` loops that each take the next unused key pair until the time or the keys run out. */
async function drive(
  clients: number,
  seconds: number,
  keys: ClientKeys[],
  call: (client: number, k: ClientKeys) => Promise<unknown>,
): Promise<{ done: number; elapsedMs: number; latenciesMs: number[] }> {
  const latenciesMs: number[] = [];
  let next = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (performance.now() < deadline && next < keys.length) {
        const k = keys[next++]!;
        const t = performance.now();
        await call(c, k);
        latenciesMs.push(performance.now() - t);
      }
    }),
  );
  return { done: latenciesMs.length, elapsedMs: performance.now() - start, latenciesMs };
}

/** Worker side: the API clients. */
async function runClients(job: ClientJob): Promise<ClientReport> {
  const t = performance.now();
  const keys = keyPool(job.keys);
  const keygenMs = performance.now() - t;
  const clients = Array.from({ length: job.clients }, () => createAuthClient({ addr: job.addr, identity: job.identity }));
  const req = (k: ClientKeys) => ({ user: 'bench', sshPublicKey: k.sshPublicKey, tlsPublicKey: k.tlsPublicKey, ttlSeconds: 3600 });
  // Warm-up: one call per client opens its TLS session and HTTP/2 connection outside the timed loop.
  await Promise.all(clients.map((c) => c.generateUserCerts(req(generateClientKeys('warmup')))));
  const r = await drive(job.clients, job.seconds, keys, (c, k) => clients[c]!.generateUserCerts(req(k)));
  return { ...r, keygenMs };
}

/** Runs the clients in a child process (`node --import tsx bench/certs.ts --client-job FILE`), bounded. */
async function inChild(job: ClientJob): Promise<ClientReport> {
  // Key generation, warm-up and the timed loop; on a loaded 2-core box key generation alone can take a while.
  const limitMs = (job.seconds + 60 + job.keys / 100) * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-certs-'));
  try {
    const jobFile = join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify(job), { mode: 0o600 });
    const { stdout } = await execFile(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--client-job', jobFile], {
      timeout: limitMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    return JSON.parse(stdout) as ClientReport;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** OpenSSH's CA signing: `ssh-keygen -s` once per key, `parallel` processes at a time (xargs -P). */
async function sshKeygenRate(count: number, parallel: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-sshkeygen-'));
  try {
    await execFile('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ca', '-f', join(dir, 'ca')]);
    const files: string[] = [];
    for (let i = 0; i < count; i++) {
      const f = join(dir, `k${i}.pub`);
      writeFileSync(f, generateClientKeys('bench').sshPublicKey + '\n');
      files.push(f);
    }
    writeFileSync(join(dir, 'list'), files.join('\n') + '\n');
    const t = performance.now();
    await execFile('bash', [
      '-c',
      `xargs -P ${parallel} -n 1 ssh-keygen -q -s "$1/ca" -I id -n login -V +1h < "$1/list"`,
      'bench',
      dir,
    ]);
    return count / ((performance.now() - t) / 1000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchCerts(opts: CertsOptions): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-certs-'));
  const log = pino({ level: 'silent' });
  const backend = SqliteBackend.open({ path: join(dir, 'ward.db') });
  try {
    const auth = await AuthServer.create({
      clusterName: 'bench',
      backend,
      clock: systemClock,
      log,
      lockout: { maxAttempts: 5, durationMs: 60_000 },
    });
    await auth.createUser({ name: 'bench', roles: ['access'], logins: ['bench', 'ubuntu'], password: 'correct horse battery', createdBy: 'bench' });
    const serviceIdentity = async (hostId: string, systemRoles: string[]) => {
      const key = await generateTLSKey();
      const { tlsCert, tlsCAs } = await auth.issueHostCerts({
        hostId, systemRoles, tlsPublicKey: key.publicKeyPem, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'],
        expires: new Date(Date.now() + TTL_MS),
      });
      return { keyPem: key.privateKeyPem, certPem: tlsCert, caPems: tlsCAs };
    };
    const listener = await startAuthListener(auth, await serviceIdentity('auth.bench', ['auth']), '127.0.0.1:0', log);
    const addr = `127.0.0.1:${listener.address.port}`;

    // In process: warm up, size the key pool from the warm-up rate, then time.
    const user = await auth.users.get('bench');
    const issue = (k: ClientKeys) => auth.issueUserCerts(user, k, TTL_MS, 'bench');
    const warm = await drive(opts.clients, 60, keyPool(200), (_c, k) => issue(k));
    const inSeconds = Math.min(3, opts.seconds);
    const estimate = warm.done / (warm.elapsedMs / 1000);
    const localKeys = keyPool(Math.ceil(estimate * inSeconds * 1.5) + 100);
    const cpu = process.cpuUsage();
    const local = await drive(opts.clients, inSeconds, localKeys, (_c, k) => issue(k));
    const used = process.cpuUsage(cpu);
    // CPU per issuance (main thread plus libuv pool) is steadier than the rate when the machine is shared.
    const cpuMs = (used.user + used.system) / 1000 / local.done;
    const localRate = local.done / (local.elapsedMs / 1000);

    // Over the Auth API, clients in a child process.
    const remote = await inChild({
      addr,
      identity: await serviceIdentity('admin.bench', ['admin']),
      clients: opts.clients,
      seconds: opts.seconds,
      keys: Math.ceil(localRate * opts.seconds * 1.3) + 100,
    });
    await listener.close();
    const apiRate = remote.done / (remote.elapsedMs / 1000);
    const sorted = remote.latenciesMs.sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    const localSorted = local.latenciesMs.sort((a, b) => a - b);

    const sshRate = await sshKeygenRate(opts.sshKeygenCerts, opts.clients);
    console.log(
      `certs: API ${apiRate.toFixed(0)}/s (${remote.done} in ${(remote.elapsedMs / 1000).toFixed(1)} s, ${opts.clients} clients, ` +
        `p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms); in-process ${localRate.toFixed(0)}/s ` +
        `(p50 ${percentile(localSorted, 50).toFixed(1)} ms, p99 ${percentile(localSorted, 99).toFixed(1)} ms, CPU ${cpuMs.toFixed(2)} ms/cert); ` +
        `ssh-keygen -s ${sshRate.toFixed(0)}/s (${opts.sshKeygenCerts} certs, ${opts.clients} processes)`,
    );
    const what = 'Ward = SSH cert + X.509 cert + audit event per issuance; reference = ssh-keygen -s (SSH cert only, one process per cert)';
    await backend.close();
    return [
      result(`cert issuance, Auth API, ${opts.clients} clients`, apiRate, sshRate, 'certs/s',
        `${what}; API p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`),
      result('cert issuance, in-process AuthServer.issueUserCerts', localRate, sshRate, 'certs/s', `${what}; ${cpuMs.toFixed(2)} ms CPU per issuance`),
      result('cert issuance CPU per cert, in-process', cpuMs, null, 'ms', 'process CPU (user+system) / issuances; no reference'),
      result(`cert issuance latency p50, Auth API`, p50, null, 'ms', 'no reference'),
      result(`cert issuance latency p99, Auth API`, p99, null, 'ms', 'no reference'),
    ];
  } finally {
    await backend.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

export function certsOptions(argv: string[]): CertsOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: { clients: { type: 'string' }, seconds: { type: 'string' }, 'ssh-keygen-certs': { type: 'string' } },
  });
  return {
    clients: Number(values.clients ?? 8),
    seconds: Number(values.seconds ?? 5),
    sshKeygenCerts: Number(values['ssh-keygen-certs'] ?? 200),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ args: process.argv.slice(2), strict: false, options: { 'client-job': { type: 'string' } } });
  const jobFile = values['client-job'];
  if (typeof jobFile === 'string') {
    process.stdout.write(JSON.stringify(await runClients(JSON.parse(readFileSync(jobFile, 'utf8')) as ClientJob)));
    process.exit(0);
  }
  const { printTable } = await import('./result.ts');
  printTable(await benchCerts(certsOptions(process.argv.slice(2))));
}
