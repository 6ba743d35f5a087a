// `wsh ls` over many nodes: a real cluster (`ward start`, auth + proxy, SQLite), N node resources written
// as heartbeats would write them, and a user who may see them all. Times the whole `wsh ls` command (process
// start to exit, as a user waits for it) and the ListResources call alone through the proxy.
//
//   node --import tsx bench/ls.ts [--nodes 10000] [--runs 7]
//
// The nodes are resources only (no agents behind them): listing does not depend on whether an agent is
// connected. bench/agents.ts measures the same listing with 10,000 real tunnels held open.
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { addUser } from '../test/users.ts';
import { BIN, cleanup, makeTempDir, run, startCluster } from '../test/harness.ts';
import { join } from 'node:path';
import { createAuthClient } from '../src/api/client.ts';
import { listAllResources } from '../src/api/list.ts';
import { loadProfile } from '../src/cli/wsh/profile.ts';

const { values: args } = parseArgs({
  options: { nodes: { type: 'string', default: '10000' }, runs: { type: 'string', default: '7' }, 'cpu-prof-dir': { type: 'string' } },
});
const N = Number(args.nodes), RUNS = Number(args.runs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const cluster = await startCluster();
try {
  const admin = cluster.adminClient();
  const expires = new Date(Date.now() + 3_600_000).toISOString();
  const t0 = performance.now();
  for (let i = 0; i < N; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, N - i) }, (_, k) => {
      const n = i + k;
      const node = {
        kind: 'node', version: 'v1',
        metadata: { name: randomUUID(), labels: { env: n % 3 ? 'prod' : 'staging', rack: `r${n % 40}` }, expires },
        spec: { hostname: `host-${String(n).padStart(5, '0')}`, addr: '', tunnel: true, version: '0.1.0' },
      };
      return admin.upsertResource({ resource: { json: JSON.stringify(node) }, overwrite: true });
    }));
  }
  console.error(`${N} nodes written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const user = await addUser(cluster, makeTempDir('ward-bench-ls-'), 'lister', 'access');
  const lsMs: number[] = [];
  let lines = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const r = await cluster.wsh(user.wshHome, ['ls']);
    lsMs.push(performance.now() - t);
    if (r.code !== 0) throw new Error(`wsh ls failed: ${r.stderr}`);
    lines = r.stdout.trim().split('\n').length;
  }
  const version = await cluster.wsh(user.wshHome, ['--version']);
  const startMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await cluster.wsh(user.wshHome, ['--version']);
    startMs.push(performance.now() - t);
  }
  // The listing alone, from this (warm) process with the user's credentials, through the proxy as wsh does.
  process.env.WSH_HOME = user.wshHome;
  const { profile, creds } = loadProfile();
  const client = createAuthClient({ addr: profile.proxy, identity: { keyPem: creds.tlsKey, certPem: creds.tlsCert, caPems: creds.tlsCAs }, timeoutMs: 60_000 });
  const apiMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const nodes = await listAllResources(client, 'node');
    apiMs.push(performance.now() - t);
    if (nodes.length !== N) throw new Error(`listed ${nodes.length} nodes, expected ${N}`);
  }
  // One more run with a CPU profile of the wsh process, when asked (not timed).
  const profDir = args['cpu-prof-dir'];
  if (profDir) await run(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, join(BIN, 'wsh'), 'ls'], { env: { WSH_HOME: user.wshHome }, home: cluster.root });
  console.log(`wsh ls over ${N} nodes: p50 ${median(lsMs).toFixed(0)} ms (runs ${lsMs.map((x) => x.toFixed(0)).join(' ')}), ${lines} lines`);
  console.log(`  of which: wsh start-up (wsh --version) p50 ${median(startMs).toFixed(0)} ms${version.code ? ' (failed)' : ''}; the listing from a warm process (ListResources pages + schema checks) p50 ${median(apiMs).toFixed(0)} ms`);
} finally {
  await cleanup();
}
