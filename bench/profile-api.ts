// The Auth API's own CPU cost per GenerateUserCerts: the auth server (SQLite file backend, real HTTP/2 mTLS
// listener) in this process, 8 API clients in a child process, so the server's process CPU is its own.
// Profile the server with: node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-api.ts
// (SECS=4 by default; the client writes "done N rate R/s client CPU ..." and this adds the server's CPU).
// CLIENT_PROF_DIR=DIR profiles the client process too (NODE_OPTIONS may not carry --cpu-prof).
import pino from 'pino';
import { AuthServer } from '../src/auth/server.ts';
import { authServerParts } from '../test/fixtures/authapi.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { createAuthClient } from '../src/api/client.ts';
import { generateClientKeys } from '../src/crypto/clientkeys.ts';
import { generateTLSKey } from '../src/crypto/x509.ts';
import { join } from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { startAuthListener } from '../src/auth/listener.ts';
import { systemClock } from '../src/time/clock.ts';
import { tmpdir } from 'node:os';

async function client(): Promise<void> {
  const job = JSON.parse(readFileSync(process.argv[3]!, 'utf8'));
  const N = 8,
    SECONDS = Number(process.env.SECS ?? 4);
  const keys = Array.from({ length: Number(process.env.KEYS ?? 4000) }, () => generateClientKeys('b'));
  const clients = Array.from({ length: N }, () => createAuthClient({ addr: job.addr, identity: job.identity }));
  const req = (k: ReturnType<typeof generateClientKeys>) => ({
    user: 'bench',
    sshPublicKey: k.sshPublicKey,
    tlsPublicKey: k.tlsPublicKey,
    ttlSeconds: 3600,
  });
  await Promise.all(clients.map((c) => c.generateUserCerts(req(generateClientKeys('w')))));
  process.stdout.write('START');
  let next = 0;
  const t = performance.now();
  const end = t + SECONDS * 1000;
  const cpu = process.cpuUsage();
  await Promise.all(
    clients.map(async (c) => {
      while (performance.now() < end && next < keys.length) {
        if (process.env.METHOD === 'ping') {
          next++;
          await c.ping({});
        } else await c.generateUserCerts(req(keys[next++]!));
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  console.log(
    `done ${next} rate ${(next / ((performance.now() - t) / 1000)).toFixed(0)}/s client CPU ` +
      `${((used.user + used.system) / 1000 / next).toFixed(3)} ms per call`,
  );
  process.exit(0);
}

function clientProfFlags(): string[] {
  const dir = process.env.CLIENT_PROF_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

async function server(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wapi-'));
  const log = pino({ level: 'silent' });
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
  await auth.createUser({
    name: 'bench',
    roles: ['access'],
    logins: ['bench'],
    password: 'correct horse battery',
    createdBy: 'b',
  });
  const ident = async (hostId: string, roles: string[]) => {
    const key = await generateTLSKey();
    const { tlsCert, tlsCAs } = await auth.issueHostCerts({
      hostId,
      systemRoles: roles,
      tlsPublicKey: key.publicKeyPem,
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      expires: new Date(Date.now() + 3600e3),
    });
    return { keyPem: key.privateKeyPem, certPem: tlsCert, caPems: tlsCAs };
  };
  const listener = await startAuthListener(auth, await ident('auth.bench', ['auth']), '127.0.0.1:0', log);
  writeFileSync(
    join(dir, 'job.json'),
    JSON.stringify({ addr: `127.0.0.1:${listener.address.port}`, identity: await ident('admin.bench', ['admin']) }),
  );
  const child = spawn(
    process.execPath,
    [...clientProfFlags(), '--import', 'tsx', import.meta.filename, 'client', join(dir, 'job.json')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    if (out.includes('START')) {
      out = out.replace('START', '');
      cpu = process.cpuUsage();
    }
  });
  let cpu = process.cpuUsage();
  await new Promise((r) => child.once('close', r));
  const used = process.cpuUsage(cpu);
  const n = Number(/done (\d+)/.exec(out)![1]);
  console.log(out.trim(), `| server CPU ${((used.user + used.system) / 1000 / n).toFixed(3)} ms per call`);
  await listener.close();
  await backend.close();
}

await (process.argv[2] === 'client' ? client() : server());
