// Runs every benchmark once, prints one table and writes bench/results.json. Kept under ~3 minutes on a
// 2-core machine: `npm run bench`. The SSH latency runs 100 connections per side here (--runs 200, the
// issue's figure, adds about 80 s).
import { writeFileSync } from 'node:fs';
import { benchAudit, auditOptions } from './audit.ts';
import { benchCerts, certsOptions } from './certs.ts';
import { printTable, type BenchResult } from './result.ts';
import { benchSSH, sshOptions } from './ssh.ts';

const argv = process.argv.slice(2);
const start = performance.now();
const ssh = sshOptions(argv);
if (!argv.includes('--runs')) ssh.runs = 100;
const results: BenchResult[] = [
  ...(await benchCerts(certsOptions(argv))),
  ...(await benchAudit(auditOptions(argv))),
  ...(await benchSSH(ssh)),
];
writeFileSync(new URL('./results.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
console.log('');
printTable(results);
console.log(`(whole run ${((performance.now() - start) / 1000).toFixed(0)} s; written to bench/results.json)`);
