// Runs every benchmark once, prints one table, writes bench/results.json and bench/ratios.svg:
// `npm run bench` (about 3-4 minutes on a 2-core machine). The SSH latency runs 200 connections per side, as
// the issue asks; `--runs 50` shortens it.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { benchAudit, auditOptions } from './audit.ts';
import { benchCerts, certsOptions } from './certs.ts';
import { ratiosSVG } from './chart.ts';
import { benchInteractive, interactiveOptions } from './interactive.ts';
import { benchLs, lsOptions } from './ls.ts';
import { benchRecording } from './recording.ts';
import { machine, printTable, type BenchResult } from './result.ts';
import { benchSSH, sshOptions } from './ssh.ts';

/**
 * Runs a benchmark in a child process of its own and reads its results (the last line of its stdout, with --json).
 * For one whose both ends share a process: after the benches before it, this process's heap made the tunnel's
 * figures 0.35-0.53x of TLS where the same code alone does 0.73-0.78x.
 */
function inChild(script: string, argv: string[]): BenchResult[] {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', new URL(script, import.meta.url).pathname, ...argv, '--json'],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = out.trim().split('\n');
  for (const line of lines.slice(0, -1)) console.error(line);
  return JSON.parse(lines.at(-1)!) as BenchResult[];
}

const argv = process.argv.slice(2);
const start = performance.now();
const ssh = sshOptions(argv);
if (!argv.includes('--runs')) ssh.runs = 200;
const where = machine();
const results: BenchResult[] = [
  ...(await benchCerts(certsOptions(argv))),
  ...(await benchAudit(auditOptions(argv))),
  ...(await benchSSH(ssh)),
  ...inChild('./tunnel.ts', argv),
  ...(await benchInteractive(interactiveOptions(argv))),
  ...(await benchRecording({ mb: 100 })),
  ...(await benchLs(lsOptions(argv))),
];
writeFileSync(new URL('./results.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
writeFileSync(
  new URL('./ratios.svg', import.meta.url),
  ratiosSVG(results, `Ward vs reference, ${new Date().toISOString().slice(0, 10)}, ${where}, node ${process.version}`),
);
console.log('');
printTable(results);
console.log(
  `(whole run ${((performance.now() - start) / 1000).toFixed(0)} s; written to bench/results.json and ` +
    `bench/ratios.svg)`,
);
