// Certificate issuance rate of one auth server, against OpenSSH's own CA signing (ssh-keygen -s).
// Ward: N clients with an admin identity call GenerateUserCerts over the real mTLS Auth API; each call
// carries a fresh client key pair made beforehand (key generation is the client's cost, not timed).
// The clients run in a child process so they do not share the auth server's event loop; the in-process
// figure (AuthServer.issueUserCerts called directly) shows what the API layer costs, and Ping by the same
// clients what an empty call over it costs. A login signs two certificates (SSH and X.509), so certificates/s
// is twice logins/s; ssh-keygen signs one per run.
// Run alone: node --import tsx bench/certs.ts [--clients 8] [--seconds 5] [--ssh-keygen-certs 200]
import { execFile as execFileCb } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pino from 'pino';
import { systemClock } from '../src/time/clock.ts';
import { createAuthClient } from '../src/api/client.ts';
import { generateClientKeys, type ClientKeys } from '../src/crypto/clientkeys.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { generateTLSKey } from '../src/crypto/x509.ts';
import { startAuthListener } from '../src/auth/listener.ts';
import { AuthServer } from '../src/auth/server.ts';
import { authServerParts } from '../test/fixtures/authapi.ts';
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
  /** `login`: GenerateUserCerts with the next key pair; `ping`: Ping, the keys only count the calls. */
  method: 'login' | 'ping';
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
  const keys = job.method === 'login' ? keyPool(job.keys) : new Array<ClientKeys>(job.keys);
  const keygenMs = performance.now() - t;
  const clients = Array.from({ length: job.clients }, () =>
    createAuthClient({ addr: job.addr, identity: job.identity }),
  );
  const req = (k: ClientKeys) => ({
    user: 'bench',
    sshPublicKey: k.sshPublicKey,
    tlsPublicKey: k.tlsPublicKey,
    ttlSeconds: 3600,
  });
  // Warm-up: one call per client opens its TLS session and HTTP/2 connection outside the timed loop.
  await Promise.all(clients.map((c) => c.generateUserCerts(req(generateClientKeys('warmup')))));
  process.stderr.write(TIMING);
  const r = await drive(job.clients, job.seconds, keys, (c, k) =>
    job.method === 'login' ? clients[c]!.generateUserCerts(req(k)) : clients[c]!.ping({}),
  );
  return { ...r, keygenMs };
}

/** The child writes this line to stderr as its timed loop begins. */
const TIMING = 'timing\n';

/**
 * Runs the clients in a child process (`node --import tsx bench/certs.ts --client-job FILE`), bounded;
 * `onStart` runs when the child's timed loop begins (after its key generation and warm-up).
 */
async function inChild(job: ClientJob, onStart: () => void): Promise<ClientReport> {
  // Key generation, warm-up and the timed loop; on a loaded 2-core box key generation alone can take a while.
  // execFile refuses a timeout that is not an integer (ERR_OUT_OF_RANGE), and keys / 100 rarely is one.
  const limitMs = Math.ceil((job.seconds + 60 + job.keys / 100) * 1000);
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-certs-'));
  try {
    const jobFile = join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify(job), { mode: 0o600 });
    const run = execFile(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--client-job', jobFile],
      {
        timeout: limitMs,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    let stderr = '';
    run.child.stderr?.on('data', (d: Buffer) => {
      if (!stderr.includes(TIMING) && (stderr += d).includes(TIMING)) onStart();
    });
    return JSON.parse((await run).stdout) as ClientReport;
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
    const auth = await AuthServer.create(
      authServerParts({
        clusterName: 'bench',
        backend,
        clock: systemClock,
        log,
        lockout: { maxAttempts: 5, durationMs: 60_000 },
      }),
    );
    await auth.createUser({
      name: 'bench',
      roles: ['access'],
      logins: ['bench', 'ubuntu'],
      password: 'correct horse battery',
      createdBy: 'bench',
    });
    const serviceIdentity = async (hostId: string, systemRoles: string[]) => {
      const key = await generateTLSKey();
      const { tlsCert, tlsCAs } = await auth.issueHostCerts({
        hostId,
        systemRoles,
        tlsPublicKey: key.publicKeyPem,
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
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

    // Over the Auth API, clients in a child process; this process is then only the server, so its CPU is the server's.
    const identity = await serviceIdentity('admin.bench', ['admin']);
    const overAPI = async (method: ClientJob['method'], keys: number) => {
      let cpu = process.cpuUsage();
      const report = await inChild(
        { addr, identity, clients: opts.clients, seconds: opts.seconds, keys, method },
        () => {
          cpu = process.cpuUsage();
        },
      );
      const used = process.cpuUsage(cpu);
      return {
        ...report,
        rate: report.done / (report.elapsedMs / 1000),
        serverCpuMs: (used.user + used.system) / 1000 / report.done,
      };
    };
    const remote = await overAPI('login', Math.ceil(localRate * opts.seconds * 1.3) + 100);
    const ping = await overAPI('ping', Math.ceil(localRate * opts.seconds * 3) + 1000);
    await listener.close();
    const apiRate = remote.rate;
    const sorted = remote.latenciesMs.sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    const localSorted = local.latenciesMs.sort((a, b) => a - b);

    const sshRate = await sshKeygenRate(opts.sshKeygenCerts, opts.clients);
    console.log(
      `logins: API ${apiRate.toFixed(0)}/s (${remote.done} in ${(remote.elapsedMs / 1000).toFixed(1)} s, ` +
        `${opts.clients} clients, ` +
        `p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, server CPU ${remote.serverCpuMs.toFixed(2)} ms/login); ` +
        `Ping ${ping.rate.toFixed(0)}/s (server CPU ${ping.serverCpuMs.toFixed(2)} ms/call); in-process ` +
        `${localRate.toFixed(0)}/s ` +
        `(p50 ${percentile(localSorted, 50).toFixed(1)} ms, p99 ${percentile(localSorted, 99).toFixed(1)} ms, ` +
        `CPU ${cpuMs.toFixed(2)} ms/login); ` +
        `ssh-keygen -s ${sshRate.toFixed(0)} certs/s (${opts.sshKeygenCerts} certs, ${opts.clients} processes)`,
    );
    const what = 'a login = SSH cert + X.509 cert + audit event; reference = ssh-keygen -s (one SSH cert per process)';
    await backend.close();
    return [
      result(
        `certificates signed over the Auth API, ${opts.clients} clients`,
        2 * apiRate,
        sshRate,
        'certs/s',
        `${what}; 2 x ${apiRate.toFixed(0)} logins/s`,
      ),
      result(
        `logins over the Auth API (GenerateUserCerts), ${opts.clients} clients`,
        apiRate,
        null,
        'logins/s',
        `API p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; no reference`,
      ),
      result(
        'certificates signed in process (AuthServer.issueUserCerts)',
        2 * localRate,
        sshRate,
        'certs/s',
        `${what}; 2 x ${localRate.toFixed(0)} logins/s`,
      ),
      result(
        'login CPU, in process',
        cpuMs,
        null,
        'ms',
        'process CPU (user+system) per login (two certificates); no reference',
      ),
      result(
        'login server CPU, Auth API',
        remote.serverCpuMs,
        null,
        'ms',
        'the auth process (TLS, HTTP/2, Connect, issuing, audit) per login; no reference',
      ),
      result(
        `Ping over the Auth API, ${opts.clients} clients`,
        ping.rate,
        null,
        'calls/s',
        `an empty call by the same clients: the API stack's own ceiling on this machine; server CPU ` +
          `${ping.serverCpuMs.toFixed(2)} ms per call`,
      ),
      result(`login latency p50, Auth API`, p50, null, 'ms', 'no reference'),
      result(`login latency p99, Auth API`, p99, null, 'ms', 'no reference'),
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
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: false,
    options: { 'client-job': { type: 'string' } },
  });
  const jobFile = values['client-job'];
  if (typeof jobFile === 'string') {
    const report = JSON.stringify(await runClients(JSON.parse(readFileSync(jobFile, 'utf8')) as ClientJob));
    // Exit once the report is out: a pipe takes a large one in several writes.
    process.stdout.write(report, () => process.exit(0));
  }
  const { printTable } = await import('./result.ts');
  printTable(await benchCerts(certsOptions(process.argv.slice(2))));
}
