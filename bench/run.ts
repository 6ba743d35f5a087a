// Runs every benchmark once, prints one table and writes bench/results.json. Kept under a minute on a
// 2-core machine so it can run next to the test suite: `npm run bench`.
import { writeFileSync } from 'node:fs';
import { benchAudit, auditOptions } from './audit.ts';
import { benchCerts, certsOptions } from './certs.ts';
import { printTable, type BenchResult } from './result.ts';

const argv = process.argv.slice(2);
const start = performance.now();
const results: BenchResult[] = [...(await benchCerts(certsOptions(argv))), ...(await benchAudit(auditOptions(argv)))];
writeFileSync(new URL('./results.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
console.log('');
printTable(results);
console.log(`(whole run ${((performance.now() - start) / 1000).toFixed(0)} s; written to bench/results.json)`);
