// Scale: N simulated agents in this one process against a real auth server and a real standalone proxy
// (two `ward start` processes on one SQLite backend). Each simulated agent has its own host id and TLS host
// certificate, keeps its own reverse tunnel to the proxy and heartbeats its node resource every 20 s over
// its own mTLS connection to the auth server, as a real node does. One real tunnelled node (`ward start
// --roles node --tunnel`) is the target of `wsh ssh`.
//
//   node --import tsx bench/agents.ts [--counts 100,1000,10000] [--dir DIR] [--auth-via-proxy] [--restart-proxy]
//   [--restart-auth] [--hold]
//     ["--proxy-node-flags=--cpu-prof --cpu-prof-dir=DIR"]   (flags for the proxy processes; note the "=")
//
// Measured at each count: the proxy's RSS per tunnel (against the proxy with the one real node), `wsh ls`
// wall time over all nodes, `wsh ssh NODE true` wall time, and the heartbeat load: what the agents sent
// per second, its latency and failures, and the auth process's CPU. With --restart-proxy, after the last count
// the proxy is stopped and started again on its address, and every agent dials it again at once, as after an
// upgrade: how long until the tunnels are all back, what that costs the proxy, and `wsh ssh` meanwhile.
// --restart-auth does the same to the auth server: how long until every agent's heartbeats are answered again.
//
// Certificates: issuing 10,000 over the Auth API would take minutes, so they are minted in-process with
// the cluster's own CA (AuthServer.issueHostCerts on the bench's backend) before the auth process starts,
// and kept in DIR with the data (re-runs reuse both). The simulated agents share one key pair: the key
// is not what is measured, each still has its own certificate and host id.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createAuthClient, type AuthClient } from '../src/api/client.ts';
import { systemClock } from '../src/time/clock.ts';
import { VERSION } from '../src/api/version.ts';
import { AuthServer } from '../src/auth/server.ts';
import { authServerParts } from '../test/fixtures/authapi.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { generateTLSKey } from '../src/crypto/x509.ts';
import { startTunnelClient, type TunnelClient } from '../src/tunnel/client.ts';
import { HEARTBEAT_INTERVAL_MS, startHeartbeats } from '../src/host/heartbeats.ts';
import type { Node } from '../src/api/types.ts';
import { BENCH_LOGIN, ensureBenchLogin } from './ssh.ts';

const { values: args } = parseArgs({
  options: {
    counts: { type: 'string', default: '100,1000,10000' },
    dir: { type: 'string', default: join(tmpdir(), 'ward-bench-agents') },
    'ssh-runs': { type: 'string', default: '10' },
    /** Keep the cluster and the agents running after the last count, to look at it by hand (Ctrl-C ends it). */
    hold: { type: 'boolean', default: false },
    /** The simulated agents reach the auth server through the proxy (ALPN ward-auth), as tunnelled nodes behind NAT do.
     */
    'auth-via-proxy': { type: 'boolean', default: false },
    /** After the last count, restart the proxy and time the reconnection of every agent. */
    'restart-proxy': { type: 'boolean', default: false },
    /** After the last count (and the proxy restart), restart the auth server and time every agent's heartbeats coming
     * back. */
    'restart-auth': { type: 'boolean', default: false },
    /** Node flags for the proxy processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof". */
    'proxy-node-flags': { type: 'string', default: '' },
  },
});
const counts = args.counts!.split(',').map(Number);
const maxCount = Math.max(...counts);
const DIR = resolve(args.dir!);
const BIN = resolve(import.meta.dirname, '..', 'bin');
const CLUSTER = 'ward-agents';
const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (s: string) => process.stderr.write(s + '\n');

interface AgentCert {
  hostId: string;
  certPem: string;
}
interface CertCache {
  caPem: string;
  keyPem: string;
  certs: AgentCert[];
}

/** Mints (or loads) `n` host certificates with the cluster CA, before the auth process opens the database. */
async function agentCerts(n: number): Promise<CertCache> {
  // v2: certificates name their simulator's host name (agent-certs.json, from before, does not).
  const file = join(DIR, 'agent-certs-v2.json');
  const cached: CertCache | undefined = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
  if (cached && cached.certs.length >= n) return cached;
  const backend = await SqliteBackend.open({ path: join(DIR, 'data', 'ward.db') });
  try {
    const auth = await AuthServer.create(
      authServerParts({
        clusterName: CLUSTER,
        backend,
        clock: systemClock,
        log,
        lockout: { maxAttempts: 5, durationMs: 900_000 },
      }),
    );
    const key = cached ? { privateKeyPem: cached.keyPem, publicKeyPem: '' } : await generateTLSKey();
    const publicKeyPem = cached
      ? (await import('node:crypto')).createPublicKey(cached.keyPem).export({ type: 'spki', format: 'pem' }).toString()
      : key.publicKeyPem;
    const certs = cached?.certs ?? [];
    const expires = new Date(Date.now() + 7 * 86_400_000);
    let caPem = cached?.caPem ?? '';
    const t0 = performance.now();
    for (let i = certs.length; i < n; i++) {
      const hostId = randomUUID();
      // Simulator i heartbeats host name sim-i: a node may heartbeat only the host name its certificate names.
      const dnsNames = [`sim-${i}`, `sim-${i}.${CLUSTER}`];
      const issued = await auth.issueHostCerts({
        hostId,
        systemRoles: ['node'],
        tlsPublicKey: publicKeyPem,
        dnsNames,
        ipAddresses: [],
        expires,
      });
      caPem = issued.tlsCAs.join('');
      certs.push({ hostId, certPem: issued.tlsCert });
    }
    say(
      `minted ${n - (cached?.certs.length ?? 0)} host certificates in ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const out = { caPem, keyPem: key.privateKeyPem, certs };
    writeFileSync(file, JSON.stringify(out));
    return out;
  } finally {
    await backend.close();
  }
}

/** A `ward start` child; resolves once stdout matches `ready`. */
async function startWard(
  name: string,
  config: string,
  extra: string[],
  ready: RegExp,
  nodeFlags: string[] = [],
): Promise<{ proc: ChildProcess; out: () => string }> {
  const dir = join(DIR, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ward.yaml'), config);
  let out = '';
  let err = '';
  const proc = spawn(
    process.execPath,
    [
      ...nodeFlags,
      join(BIN, 'ward'),
      'start',
      '-c',
      join(dir, 'ward.yaml'),
      '-d',
      name === 'auth' ? join(DIR, 'data') : join(dir, 'data'),
      ...extra,
    ],
    {
      env: { ...process.env, HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-4000)));
  proc.stderr!.pipe(createWriteStream(join(dir, 'ward.log')));
  children.push(proc);
  const deadline = Date.now() + 60_000;
  while (!ready.test(out)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start:\n${err}`);
    await sleep(50);
  }
  return { proc, out: () => out };
}
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(1));

const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
/** user+system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15, in clock ticks). */
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

function run(
  cmd: string,
  argv: string[],
  env: Record<string, string>,
  stdin?: string,
): { ms: number; out: string; code: number } {
  const t0 = performance.now();
  try {
    const out = execFileSync(cmd, argv, {
      env: { ...process.env, ...env },
      input: stdin,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      timeout: 60_000,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return { ms: performance.now() - t0, out, code: 0 };
  } catch (err) {
    const e = err as { status?: number; stderr?: string };
    return { ms: performance.now() - t0, out: e.stderr ?? '', code: e.status ?? 1 };
  }
}
/** `wsh ls` runs per measurement: its wall time on two shared cores moves by ±50 ms from run to run. */
const LS_RUNS = 9;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;

// --- simulated agents (in worker processes: 10,000 agents hold 20,000 sockets, past one process's fd limit) ---
const PER_WORKER = 4000;
/** `answered`: simulated agents with a heartbeat answered since the last reset; `errors`: failures by message. */
interface SimStats {
  connected: number;
  sent: number;
  failed: number;
  latencies: number[];
  answered: number;
  errors: Record<string, number>;
}
if (process.env.BENCH_SIMS) {
  const { from, proxyAddr, authAddr } = JSON.parse(process.env.BENCH_SIMS) as {
    from: number;
    proxyAddr: string;
    authAddr: string;
  };
  const certs = JSON.parse(readFileSync(join(DIR, 'agent-certs-v2.json'), 'utf8')) as CertCache;
  const tunnels: TunnelClient[] = [];
  const hb = { sent: 0, failed: 0, latencies: [] as number[] };
  const answered = new Set<number>();
  let errors: Record<string, number> = {};
  // Why streams break: the heartbeat client logs the cause (its answers' errors only say the stream ended).
  const hbLog = pino(
    { level: 'warn' },
    {
      write(line: string) {
        const { msg, err } = JSON.parse(line) as { msg?: string; err?: string };
        const what = `${msg ?? ''}: ${String(err ?? '').slice(0, 100)}`;
        errors[what] = (errors[what] ?? 0) + 1;
      },
    },
  );
  const startSim = (i: number) => {
    const { hostId, certPem } = certs.certs[i]!;
    const tls = { keyPem: certs.keyPem, certPem, caPems: [certs.caPem] };
    // A node's own reconnect backoff (startTunnelClient's defaults), so that --restart-proxy sees a real fleet's storm.
    tunnels.push(startTunnelClient({ proxyAddrs: () => [proxyAddr], tls, onConnection: (s) => s.destroy(), log }));
    const client: AuthClient = createAuthClient({ addr: authAddr, identity: tls, timeoutMs: 30_000 });
    const node: Node = {
      kind: 'node',
      version: 'v1',
      metadata: { name: hostId, labels: { bench: 'agents' } },
      spec: { hostname: `sim-${i}`, addr: '', tunnel: true, version: VERSION },
    };
    const onAnswer = (ms: number, err?: Error) => {
      hb.sent++;
      if (err) {
        hb.failed++;
        const what = err.message.slice(0, 80);
        errors[what] = (errors[what] ?? 0) + 1;
      } else {
        hb.latencies.push(ms);
        answered.add(i);
      }
    };
    // Spread over the interval, as a fleet that started at different times; each keeps one stream, as a node does.
    setTimeout(
      () => void startHeartbeats({ auth: client, presence: () => node, log: hbLog, onAnswer }),
      Math.random() * HEARTBEAT_INTERVAL_MS,
    );
  };
  process.on('message', async (m: { count?: number; stats?: boolean; reset?: boolean }) => {
    if (m.count !== undefined) {
      for (let i = tunnels.length; i < m.count; i++) {
        startSim(from + i);
        // Pace the dials so the proxy's accept queue and the shared CPU keep up.
        if (i % 100 === 99) await sleep(30);
      }
    }
    if (m.stats) {
      const stats: SimStats = {
        connected: tunnels.filter((t) => t.connected().length > 0).length,
        ...hb,
        answered: answered.size,
        errors,
      };
      process.send!(stats);
    }
    // After the answer: the window that follows starts from zero.
    if (m.reset) {
      Object.assign(hb, { sent: 0, failed: 0, latencies: [] });
      answered.clear();
      errors = {};
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true });
  await new Promise(() => {});
}

// --- set-up ---------------------------------------------------------------------------------------
mkdirSync(join(DIR, 'data'), { recursive: true });
// Mints (or reuses) the host certificates into agent-certs-v2.json, which each simulator process reads.
await agentCerts(maxCount);
const startAuth = (listen: string) =>
  startWard(
    'auth',
    `version: v1\nauth_service:\n  cluster_name: ${CLUSTER}\n  listen_addr: ${listen}\nproxy_service: {enabled: ` +
      `false}\nssh_service: {enabled: false}\n`,
    [],
    /Next:/,
  );
let auth = await startAuth('127.0.0.1:0');
const authAddr = /auth API: +(\S+)/.exec(auth.out())![1]!;
const caPin = /CA pin: +(\S+)/.exec(auth.out())![1]!;
const wctl = (argv: string[], stdin?: string) =>
  run(join(BIN, 'wctl'), ['-d', join(DIR, 'data'), ...argv], { HOME: DIR }, stdin);
const token = (type: string) => /--token (\S+)/.exec(wctl(['tokens', 'add', '--type', type]).out)![1]!;
const proxyToken = token('proxy');
// The simulated hosts all come from 127.0.0.1, where a real fleet has many addresses: the per-address limit on
// connections to the auth API (proxy_service.rate_limits) would otherwise pace their reconnections.
const PROXY_LIMITS = '  rate_limits: {auth_connect: {burst: 1000000, per_minute: 6000000}}\n';
const startProxy = (listen: string) =>
  startWard(
    'proxy',
    `version: v1\nproxy_service:\n  listen_addr: ${listen}\n${PROXY_LIMITS}`,
    ['--roles', 'proxy', '--token', proxyToken, '--auth-server', authAddr, '--ca-pin', caPin],
    /Ward proxy is running/,
    args['proxy-node-flags']!.split(' ').filter(Boolean),
  );
let proxy = await startProxy('127.0.0.1:0');
const proxyAddr = /https:\/\/(\S+)/.exec(proxy.out())![1]!;
// The real node joins afresh every run (its data dir would otherwise keep an identity and name from before).
const realNode = `real-${Date.now().toString(36)}`;
rmSync(join(DIR, 'node'), { recursive: true, force: true });
await startWard(
  'node',
  `version: v1\nssh_service:\n  hostname: ${realNode}\n`,
  ['--roles', 'node', '--tunnel', '--token', token('node'), '--auth-server', proxyAddr, '--ca-pin', caPin],
  /Ward node is running/,
);
wctl(['users', 'rm', 'bench']);
// The login the SSH benches use: a shell that reads no dotfiles, so `wsh ssh ... true` times Ward, not ~/.bashrc.
await ensureBenchLogin();
wctl(['users', 'add', 'bench', '--roles', 'access', '--logins', BENCH_LOGIN, '--password-stdin'], 'a long password\n');
const wshEnv = { WSH_HOME: join(DIR, 'wsh'), HOME: DIR };
// wsh as users run it: the prebuilt bundle (bin/wsh falls back to transpiling the sources whenever any
// source file is newer than dist/, as it is while others edit the tree). Built here so the timings are
// the bundle's; its ProxyCommand is the same bundle.
const REPO = resolve(import.meta.dirname, '..');
execFileSync(process.execPath, [join(REPO, 'scripts/bundle.mjs'), join(REPO, 'dist/bench-agents'), 'wsh']);
const WSH = join(REPO, 'dist/bench-agents/wsh/main.mjs');
const wsh = (argv: string[], stdin?: string) => run(process.execPath, [WSH, ...argv], wshEnv, stdin);
const login = wsh(
  ['login', '--proxy', proxyAddr, '--user', 'bench', '--password-stdin', '--ca-pin', caPin],
  'a long password\n',
);
if (login.code !== 0) throw new Error(`wsh login failed: ${login.out}`);
for (let i = 0; wsh(['ssh', `${BENCH_LOGIN}@${realNode}`, 'true']).code !== 0; i++) {
  if (i === 50) throw new Error('wsh ssh to the real node never succeeded');
  await sleep(200);
}
// The same listing `wsh ls` makes (ListResources through the proxy as the user), timed without the CLI's
// start-up, which on this shared machine is most of the wall time and does not grow with the cluster.
wctl(['auth', 'sign', '--user', 'bench', '--format', 'tls', '--out', join(DIR, 'bench-user')]);
const userClient = createAuthClient({
  addr: proxyAddr,
  identity: {
    keyPem: readFileSync(join(DIR, 'bench-user.key'), 'utf8'),
    certPem: readFileSync(join(DIR, 'bench-user.crt'), 'utf8'),
    caPems: [readFileSync(join(DIR, 'bench-user.cas'), 'utf8')],
  },
  timeoutMs: 60_000,
});
async function listNodesMs(): Promise<number> {
  const t0 = performance.now();
  let startAfter = '';
  do {
    const page = await userClient.listResources({ kind: 'node', limit: 10_000, startAfter, packed: true });
    startAfter = page.nextKey;
  } while (startAfter);
  return performance.now() - t0;
}

// --- the parent's view of the simulated agents ---------------------------------------------------------
const workers: ChildProcess[] = [];
async function startSims(n: number): Promise<void> {
  while (workers.length * PER_WORKER < n) {
    const w = fork(new URL(import.meta.url).pathname, process.argv.slice(2), {
      execArgv: ['--import', 'tsx'],
      env: {
        ...process.env,
        BENCH_SIMS: JSON.stringify({
          from: workers.length * PER_WORKER,
          proxyAddr,
          authAddr: args['auth-via-proxy'] ? proxyAddr : authAddr,
        }),
      },
    });
    children.push(w);
    await once(w, 'message');
    workers.push(w);
  }
  workers.forEach((w, k) => w.send({ count: Math.max(0, Math.min(PER_WORKER, n - k * PER_WORKER)) }));
}
function mergeCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}
/** The most frequent errors, as `count x message`. */
const topErrors = (errors: Record<string, number>) =>
  Object.entries(errors)
    .sort((x, y) => y[1] - x[1])
    .slice(0, 5)
    .map(([m, c]) => `${c} x ${m}`)
    .join('; ');
async function simStats(reset = false): Promise<SimStats> {
  const all = await Promise.all(
    workers.map(async (w) => {
      w.send({ stats: true, reset });
      return (await once(w, 'message'))[0] as SimStats;
    }),
  );
  return all.reduce(
    (a, b) => ({
      connected: a.connected + b.connected,
      sent: a.sent + b.sent,
      failed: a.failed + b.failed,
      latencies: a.latencies.concat(b.latencies),
      answered: a.answered + b.answered,
      errors: mergeCounts(a.errors, b.errors),
    }),
    { connected: 0, sent: 0, failed: 0, latencies: [], answered: 0, errors: {} },
  );
}

async function nodeCount(): Promise<number> {
  const r = wsh(['ls', '--format', 'json']);
  return r.code === 0 ? JSON.parse(r.out).length : -1;
}

async function measure(label: number) {
  const api: number[] = [];
  for (let i = 0; i < 5; i++) api.push(await listNodesMs());
  const ls = Array.from({ length: LS_RUNS }, () => wsh(['ls']).ms);
  const sshRuns = Number(args['ssh-runs']);
  const ssh = Array.from({ length: sshRuns }, () => wsh(['ssh', `${BENCH_LOGIN}@${realNode}`, 'true']));
  return {
    label,
    apiListMs: median(api),
    lsMs: median(ls),
    lsRuns: ls.map(Math.round),
    sshMs: median(ssh.map((s) => s.ms)),
    sshFailures: ssh.filter((s) => s.code !== 0).length,
  };
}

const results: Array<Record<string, number | string>> = [];
await sleep(10_000);
const base = { rss: rssKiB(proxy.proc.pid!), ...(await measure(1)) };
say(
  `baseline (1 real node): proxy RSS ${(base.rss / 1024).toFixed(1)} MiB, wsh ls ${base.lsMs.toFixed(0)} ms, wsh ` +
    `ssh ${base.sshMs.toFixed(0)} ms`,
);
results.push({
  agents: 1,
  proxy_rss_mib: +(base.rss / 1024).toFixed(1),
  kib_per_tunnel: '-',
  list_api_ms: Math.round(base.apiListMs),
  wsh_ls_ms: Math.round(base.lsMs),
  wsh_ssh_ms: Math.round(base.sshMs),
});

let prev = { rss: base.rss, n: 1 };
for (const n of counts) {
  const t0 = performance.now();
  await startSims(n);
  const deadline = Date.now() + 600_000;
  while ((await simStats()).connected < n && Date.now() < deadline) await sleep(1000);
  const upMs = performance.now() - t0;
  // Every agent has heartbeated at least once within one interval after it started.
  const listDeadline = Date.now() + HEARTBEAT_INTERVAL_MS * 3;
  let listed = await nodeCount();
  while (listed < n + 1 && Date.now() < listDeadline) {
    await sleep(2000);
    listed = await nodeCount();
  }
  // Heartbeat load over one steady interval.
  await simStats(true);
  // What each part costs while the cluster idles: the load `wsh ls` and `wsh ssh` then share the cores with.
  const cpuOf = () => ({
    auth: cpuSeconds(auth.proc.pid!),
    proxy: cpuSeconds(proxy.proc.pid!),
    sims: workers.reduce((sum, w) => sum + cpuSeconds(w.pid!), 0),
  });
  const cpu0 = cpuOf();
  const w0 = performance.now();
  await sleep(HEARTBEAT_INTERVAL_MS);
  const hb = await simStats(true);
  const window = (performance.now() - w0) / 1000;
  const cpu1 = cpuOf();
  const cores = (k: keyof typeof cpu0) => +((cpu1[k] - cpu0[k]) / window).toFixed(2);
  const rss = rssKiB(proxy.proc.pid!);
  const m = await measure(n);
  // The same `wsh ls` with the simulators stopped (SIGSTOP): their tunnels, connections and nodes stay, their
  // heartbeats and pings pause for these few seconds (well inside the nodes' 90 s and the pings' timeouts). What
  // `wsh ls` loses to the heartbeat load is the difference.
  for (const w of workers) w.kill('SIGSTOP');
  await sleep(1_000);
  const lsPaused = median(Array.from({ length: LS_RUNS }, () => wsh(['ls']).ms));
  for (const w of workers) w.kill('SIGCONT');
  const row = {
    agents: n,
    tunnels_up: hb.connected,
    listed,
    connect_s: +(upMs / 1000).toFixed(1),
    proxy_rss_mib: +(rss / 1024).toFixed(1),
    auth_rss_mib: +(rssKiB(auth.proc.pid!) / 1024).toFixed(1),
    kib_per_tunnel: +((rss - base.rss) / n).toFixed(1),
    // The proxy's RSS wobbles by tens of MiB with garbage collection (its start-up garbage is often still
    // there at the baseline), so the growth from the previous count is the steadier per-agent figure.
    kib_per_agent_marginal: +((rss - prev.rss) / (n - prev.n)).toFixed(1),
    list_api_ms: Math.round(m.apiListMs),
    wsh_ls_ms: Math.round(m.lsMs),
    wsh_ls_runs_ms: m.lsRuns.join(' '),
    wsh_ls_heartbeats_paused_ms: Math.round(lsPaused),
    wsh_ssh_ms: Math.round(m.sshMs),
    ssh_failures: m.sshFailures,
    heartbeats_per_s: +(hb.sent / window).toFixed(1),
    heartbeat_failures: hb.failed,
    heartbeat_p50_ms: Math.round(pct(hb.latencies, 0.5)),
    heartbeat_p99_ms: Math.round(pct(hb.latencies, 0.99)),
    auth_cpu_cores: cores('auth'),
    proxy_cpu_cores: cores('proxy'),
    simulators_cpu_cores: cores('sims'),
  };
  results.push(row);
  prev = { rss, n };
  say(JSON.stringify(row));
}

type Ward = Awaited<ReturnType<typeof startWard>>;

/**
 * Stops a server (SIGTERM), starts it again with `start`, and polls every ~500 ms how many of the `n` agents are
 * `back()`, running `during()` (a user's command, timed) between polls. Returns the times at which 50/90/99/100% were
 * back, the new server's CPU meanwhile in cores, and the polls' command timings.
 */
async function restartAndTime(
  old: Ward,
  start: () => Promise<Ward>,
  n: number,
  back: () => Promise<number>,
  during: () => { ms: number; code: number },
) {
  const stopped = performance.now();
  old.proc.kill('SIGTERM');
  await once(old.proc, 'exit');
  const stopMs = performance.now() - stopped;
  const t0 = performance.now();
  const server = await start();
  const startMs = performance.now() - t0;
  const cpuStart = cpuSeconds(server.proc.pid!);
  const at: Record<number, number> = {};
  const timings: string[] = [];
  const deadline = Date.now() + 600_000;
  let count = await back();
  for (;;) {
    const s = (performance.now() - t0) / 1000;
    for (const pct of [50, 90, 99, 100]) if (at[pct] === undefined && count >= (n * pct) / 100) at[pct] = s;
    if (count >= n || Date.now() > deadline) break;
    const r = during();
    timings.push(`${s.toFixed(1)}s:${r.code === 0 ? Math.round(r.ms) : 'failed'}`);
    await sleep(500);
    count = await back();
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    server,
    fields: {
      agents: n,
      back: count,
      stop_ms: Math.round(stopMs),
      start_ms: Math.round(startMs),
      back_50pct_s: +(at[50] ?? NaN).toFixed(1),
      back_90pct_s: +(at[90] ?? NaN).toFixed(1),
      back_99pct_s: +(at[99] ?? NaN).toFixed(1),
      back_all_s: +(at[100] ?? NaN).toFixed(1),
      cpu_cores: +((cpuSeconds(server.proc.pid!) - cpuStart) / seconds).toFixed(2),
      rss_mib: +(rssKiB(server.proc.pid!) / 1024).toFixed(1),
    },
    timings: timings.join(' '),
  };
}

if (args['restart-proxy']) {
  // Every agent has lost its tunnel and dials again with its own backoff; back = tunnels up.
  const r = await restartAndTime(
    proxy,
    () => startProxy(proxyAddr),
    maxCount,
    async () => (await simStats()).connected,
    () => wsh(['ssh', `${BENCH_LOGIN}@${realNode}`, 'true']),
  );
  proxy = r.server;
  const row = { event: 'proxy restart', ...r.fields, wsh_ssh_during: r.timings };
  say(JSON.stringify(row));
  results.push(row);
}

if (args['restart-auth']) {
  // Every agent's heartbeat stream breaks and is re-opened with the node's own backoff; back = agents with a
  // heartbeat answered since the restart.
  await simStats(true);
  let last: SimStats | undefined;
  const r = await restartAndTime(
    auth,
    () => startAuth(authAddr),
    maxCount,
    async () => (last = await simStats()).answered,
    () => wsh(['ls']),
  );
  auth = r.server;
  const row = {
    event: 'auth restart',
    ...r.fields,
    heartbeat_failures: last?.failed ?? 0,
    heartbeat_errors: topErrors(last?.errors ?? {}),
    wsh_ls_during: r.timings,
  };
  say(JSON.stringify(row));
  results.push(row);
}

console.log(
  JSON.stringify(
    {
      machine: `${(await import('node:os')).cpus().length} cores`,
      node: process.version,
      date: new Date().toISOString(),
      results,
    },
    null,
    1,
  ),
);
if (args.hold) {
  say(
    `holding the cluster (Ctrl-C ends it): WSH_HOME=${wshEnv.WSH_HOME} HOME=${wshEnv.HOME} node ${WSH} ls; auth ` +
      `pid ${auth.proc.pid}, proxy pid ${proxy.proc.pid}`,
  );
  await new Promise(() => {});
}
for (const c of children) c.kill('SIGTERM');
process.exit(0);
