// `wsh ls` over many nodes: a real cluster (`ward start`, auth + proxy, SQLite), N node resources written as
// heartbeats would write them, and a user who may see them all. Times the whole `wsh ls` command (process start
// to exit, as a user waits for it; the bundled wsh, as installed), wsh's start-up alone, and the listing alone
// from a warm process through the proxy.
//
//   node --import tsx bench/ls.ts [--nodes 10000] [--ls-runs 9] [--cpu-prof-dir DIR]
//
// The nodes are resources only (no agents behind them): the listing does not depend on whether an agent is
// connected. bench/agents.ts measures the same listing with 10,000 real tunnels held open and heartbeating.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createAuthClient } from '../src/api/client.ts';
import { listAllResources } from '../src/api/list.ts';
import { loadProfile } from '../src/cli/wsh/profile.ts';
import { cleanup, makeTempDir, run, startCluster, type Cluster } from '../test/harness.ts';
import { addUser } from '../test/users.ts';
import { result, type BenchResult } from './result.ts';
import { buildPrograms, program } from './ssh.ts';

export interface LsOptions {
  nodes: number;
  runs: number;
  /** Profile one more (untimed) `wsh ls` into this directory. */
  cpuProfDir?: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function writeNodes(cluster: Cluster, n: number): Promise<void> {
  const admin = cluster.adminClient();
  const expires = new Date(Date.now() + 3_600_000).toISOString();
  for (let i = 0; i < n; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, (_, k) => {
        const at = i + k;
        const node = {
          kind: 'node',
          version: 'v1',
          metadata: { name: randomUUID(), labels: { env: at % 3 ? 'prod' : 'staging', rack: `r${at % 40}` }, expires },
          spec: { hostname: `host-${String(at).padStart(5, '0')}`, addr: '', tunnel: true, version: '0.1.0' },
        };
        return admin.upsertResource({ resource: { json: JSON.stringify(node) }, overwrite: true });
      }),
    );
  }
}

export async function benchLs(opts: LsOptions): Promise<BenchResult[]> {
  await buildPrograms();
  const cluster = await startCluster();
  try {
    await writeNodes(cluster, opts.nodes);
    const user = await addUser(cluster, makeTempDir('ward-bench-ls-'), 'lister', 'access');
    const wsh = (args: string[], execArgv: string[] = []) =>
      run(process.execPath, [...execArgv, program('wsh'), ...args], {
        env: { WSH_HOME: user.wshHome },
        home: cluster.root,
      });
    const timed = async (args: string[]) => {
      const t = performance.now();
      const r = await wsh(args);
      if (r.code !== 0) throw new Error(`wsh ${args.join(' ')} failed: ${r.stderr}`);
      return { ms: performance.now() - t, lines: r.stdout.trim().split('\n').length };
    };
    // The first listing fills the auth server's listing cache; it is reported apart.
    const first = await timed(['ls']);
    if (first.lines !== opts.nodes + 2) throw new Error(`wsh ls printed ${first.lines} lines for ${opts.nodes} nodes`);
    const lsMs: number[] = [];
    const startMs: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      lsMs.push((await timed(['ls'])).ms);
      startMs.push((await timed(['--version'])).ms);
    }
    // The listing alone, from this (warm) process with the user's credentials, through the proxy as wsh does.
    process.env.WSH_HOME = user.wshHome;
    const { profile, creds } = loadProfile();
    const client = createAuthClient({
      addr: profile.proxy,
      identity: { keyPem: creds.tlsKey, certPem: creds.tlsCert, caPems: creds.tlsCAs },
      timeoutMs: 60_000,
    });
    const apiMs: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const t = performance.now();
      const nodes = await listAllResources(client, 'node');
      apiMs.push(performance.now() - t);
      if (nodes.length !== opts.nodes) throw new Error(`listed ${nodes.length} nodes, expected ${opts.nodes}`);
    }
    if (opts.cpuProfDir) await wsh(['ls'], ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`]);
    const p50 = median(lsMs);
    console.error(
      `ls: wsh ls over ${opts.nodes} nodes p50 ${p50.toFixed(0)} ms (runs ` +
        `${lsMs.map((x) => x.toFixed(0)).join(' ')}; first ${first.ms.toFixed(0)} ms); ` +
        `wsh start-up p50 ${median(startMs).toFixed(0)} ms; listing from a warm process p50 ` +
        `${median(apiMs).toFixed(0)} ms`,
    );
    const note =
      `target < 300 ms; ${opts.nodes} nodes, ${opts.runs} runs after a first one ` +
      `(${first.ms.toFixed(0)} ms) that fills the auth server's listing cache`;
    return [
      result(`wsh ls over ${opts.nodes} nodes, p50`, p50, null, 'ms', note),
      result(
        'wsh start-up alone (wsh --version), p50',
        median(startMs),
        null,
        'ms',
        'the fixed part of every wsh command',
      ),
      result(
        `listing ${opts.nodes} nodes from a warm process, p50`,
        median(apiMs),
        null,
        'ms',
        'ListResources through the proxy, with the schema check of each node',
      ),
    ];
  } finally {
    await cleanup();
  }
}

export function lsOptions(argv: string[]): LsOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: { nodes: { type: 'string' }, 'ls-runs': { type: 'string' }, 'cpu-prof-dir': { type: 'string' } },
  });
  const cpuProfDir = values['cpu-prof-dir'];
  return {
    nodes: Number(values.nodes ?? 10_000),
    runs: Number(values['ls-runs'] ?? 9),
    ...(typeof cpuProfDir === 'string' ? { cpuProfDir } : {}),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { printTable } = await import('./result.ts');
  printTable(await benchLs(lsOptions(process.argv.slice(2))));
}
