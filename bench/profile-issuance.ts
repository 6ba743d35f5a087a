// The in-process issuance loop alone, for profiling:
//   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-issuance.ts
// (8 concurrent callers, 1,000 timed issuances after 200 warm-up ones; prints the rate).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { systemClock } from '../src/time/clock.ts';
import { generateClientKeys } from '../src/crypto/clientkeys.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { AuthServer } from '../src/auth/server.ts';
import { authServerParts } from '../test/fixtures/authapi.ts';
const backend = SqliteBackend.open({ path: join(mkdtempSync(join(tmpdir(), 'wp-')), 'w.db') });
const auth = await AuthServer.create(
  authServerParts({
    clusterName: 'bench',
    backend,
    clock: systemClock,
    log: pino({ level: 'silent' }),
    lockout: { maxAttempts: 5, durationMs: 60000 },
  }),
);
await auth.createUser({
  name: 'bench',
  roles: ['access'],
  logins: ['bench'],
  password: 'correct horse battery',
  createdBy: 'b',
});
const user = await auth.users.get('bench');
const keys = Array.from({ length: 1200 }, () => generateClientKeys('b'));
for (let i = 0; i < 200; i++) await auth.issueUserCerts(user, keys[i]!, 3600000, 'b');
const t = performance.now();
const cpu = process.cpuUsage();
let n = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (n < 1000) {
      const k = keys[200 + n++]!;
      await auth.issueUserCerts(user, k, 3600000, 'b');
    }
  }),
);
const used = process.cpuUsage(cpu);
// CPU time per issuance (all threads of this process) is steadier than the rate on a shared machine.
console.log(
  'rate',
  (1000 / ((performance.now() - t) / 1000)).toFixed(0),
  '/s; CPU',
  ((used.user + used.system) / 1000 / 1000).toFixed(2),
  'ms per issuance',
);
await backend.close();
