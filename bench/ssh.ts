// SSH data path: unmodified OpenSSH `ssh` through Ward (ProxyCommand `wsh proxy ssh` -> proxy -> node),
// against the same `ssh` talking straight to a real OpenSSH sshd on loopback (run as root, temp dir), both
// logging in as BENCH_LOGIN, an OS user whose shell reads no startup files.
// Throughput: `ssh HOST 'cat /dev/zero' | head -c N > /dev/null`; latency: `ssh HOST true`, connect to exit.
// Both sides use OpenSSH's default algorithms; the negotiated cipher is printed for each.
// Run alone: node --import tsx bench/ssh.ts [--mb 1000] [--mb-small 500] [--runs 50]
//   [--ward-node-flags "--cpu-prof --cpu-prof-dir=/tmp/prof"]
import { execFile as execFileCb, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { percentile, result, type BenchResult } from './result.ts';
import { sampleTreeCpu } from './treecpu.ts';
import { proxyCommandFor, writeSSHConfig } from '../test/users.ts';

const execFile = promisify(execFileCb);
const REPO = resolve(import.meta.dirname, '..');

/**
 * The programs as bundles (the same esbuild step as `npm run build`), built once at the start of a run into
 * dist/bench/ and started directly. bin/NAME runs dist/NAME only while it is newer than every file under src/
 * and falls back to transpiling the sources (~0.4 s more per start) otherwise: in a tree others are editing,
 * that could switch in the middle of a run. The bundle is what an installed wsh runs, so it is what the
 * latencies should include.
 */
let built: Promise<void> | undefined;
export function program(name: 'ward' | 'wsh' | 'wctl'): string {
  return join(REPO, 'dist', 'bench', name, 'main.mjs');
}
export function buildPrograms(): Promise<void> {
  built ??= execFile(process.execPath, [join(REPO, 'scripts', 'bundle.mjs'), join(REPO, 'dist', 'bench')], {
    timeout: 120_000,
  }).then(() => undefined);
  return built;
}

const READY_TIMEOUT_MS = 30_000;

/**
 * The OS account both sides log in as: its own user whose shell is /bin/sh, created if missing. Why not root:
 * sshd and Ward both set SSH_CLIENT, so Debian's bash runs the account's ~/.bashrc even for `bash -c true`,
 * and a login to root then timed root's dotfiles (on the machine these figures come from, a pyenv init that
 * took ~150 ms per command, and with 200 sessions starting at once, bash processes queued on pyenv's lock for
 * a minute). dash reads no startup file for `sh -c`, so what is timed is the SSH path and the command.
 */
export const BENCH_LOGIN = 'wardbench';
let loginReady: Promise<void> | undefined;
export function ensureBenchLogin(): Promise<void> {
  loginReady ??= (async () => {
    const shell = await execFile('getent', ['passwd', BENCH_LOGIN]).then(
      (r) => r.stdout.trim().split(':')[6],
      () => undefined,
    );
    // Password '*': no password opens it, and unlike useradd's default '!' sshd does not take it for locked.
    if (shell === undefined) await execFile('useradd', ['-m', '-s', '/bin/sh', '-p', '*', BENCH_LOGIN]);
    else if (shell !== '/bin/sh')
      throw new Error(
        `the bench's OS user "${BENCH_LOGIN}" exists with shell ${shell}; it needs /bin/sh (usermod -s /bin/sh ` +
          `${BENCH_LOGIN})`,
      );
  })();
  return loginReady;
}

export interface SSHOptions {
  /** Megabytes (10^6 bytes) per throughput run. */
  mb: number;
  /** A second, smaller transfer (the issue's 500 MB figure); 0 to skip. */
  mbSmall: number;
  /** `ssh HOST true` runs per side. */
  runs: number;
  /** Extra node flags for the ward process (profiling). */
  wardNodeFlags: string[];
}

/** One side of the comparison: how to reach a shell on it with plain `ssh`. */
interface Target {
  /** ssh arguments up to and including the destination. */
  args: string[];
  env: NodeJS.ProcessEnv;
  /** The server process, for the CPU time of its tree (treecpu.ts: per-connection sshd, the cat). */
  serverPid: number;
  /** Ward only: the ProxyCommand, to run it under /usr/bin/time. */
  proxyCommand?: string;
}

export interface Ward {
  target: Target;
  proc: ChildProcess;
  /** The proxy's address, the logged-in user's key directory (wsh's layout) and the node's name. */
  proxy: string;
  keys: string;
  nodeName: string;
  stop(): Promise<void>;
}

function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', rej);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) res(out);
      else rej(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-1000)}`));
    });
  });
}

/**
 * `ward start` (auth + proxy + node) in `dir`, a user "bench" logged in with wsh, and an ssh config for the node.
 * With `tunnel`, the node has no listener: the proxy reaches it through its reverse tunnel (over loopback).
 */
export async function startWard(dir: string, nodeFlags: string[], opts: { tunnel?: boolean } = {}): Promise<Ward> {
  await Promise.all([buildPrograms(), ensureBenchLogin()]);
  const cfg = join(dir, 'ward.yaml');
  const data = join(dir, 'data');
  writeFileSync(
    cfg,
    [
      'version: v1',
      'ward:',
      '  log:',
      '    severity: warn',
      'auth_service:',
      // Not "bench": a user named like the cluster gets a TLS cert whose subject equals the CA's, which
      // OpenSSL then takes for self-signed and refuses (a Ward bug, reported separately).
      '  cluster_name: ward-bench',
      '  listen_addr: 127.0.0.1:0',
      'proxy_service:',
      '  listen_addr: 127.0.0.1:0',
      'ssh_service:',
      '  enabled: true',
      '  listen_addr: 127.0.0.1:0',
      ...(opts.tunnel ? ['  tunnel: true'] : []),
      '',
    ].join('\n'),
  );
  const proc = spawn(process.execPath, [...nodeFlags, program('ward'), 'start', '-c', cfg, '-d', data], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: dir },
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<void>((r) => proc.once('close', () => r()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    // SIGTERM: a graceful stop, so --cpu-prof gets to write its profile.
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!out.includes('\nNext:')) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`ward start did not come up:\n${out}\n${err.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const proxy = /proxy: +https:\/\/(\S+)/.exec(out)?.[1];
  const pin = /CA pin: +(sha256:[0-9a-f]{64})/.exec(out)?.[1];
  // A tunnelled node has no address of its own to print.
  if (!proxy || !pin || (!opts.tunnel && !/^ +node: +\S+$/m.test(out)))
    throw new Error(`unexpected ward start banner:\n${out}`);

  const wshHome = join(dir, 'wsh');
  mkdirSync(wshHome, { mode: 0o700 });
  const env = { ...process.env, HOME: dir, WSH_HOME: wshHome };
  const password = 'bench password for ssh';
  await sh(
    process.execPath,
    [
      program('wctl'),
      '-d',
      data,
      'users',
      'add',
      'bench',
      '--roles',
      'access',
      '--logins',
      BENCH_LOGIN,
      '--password-stdin',
    ],
    { env, input: password + '\n' },
  );
  await sh(
    process.execPath,
    [program('wsh'), 'login', '--proxy', proxy, '--user', 'bench', '--password-stdin', '--ca-pin', pin],
    { env, input: password + '\n' },
  );
  const keys = join(wshHome, 'keys', proxy.replace(/[^A-Za-z0-9.-]/g, '_'), 'bench');
  const sshConfig = writeSSHConfig(join(dir, 'ssh_config'), keys, program('wsh'));
  const proxyCommand = proxyCommandFor(program('wsh'));
  const nodeName = hostname().split('.')[0]!;
  return {
    target: { args: ['-F', sshConfig, `${BENCH_LOGIN}@${nodeName}`], env, serverPid: proc.pid!, proxyCommand },
    proc,
    proxy,
    keys,
    nodeName,
    stop,
  };
}

/** OpenSSH's sshd on a free loopback port, in `dir`, trusting one fresh key for BENCH_LOGIN. */
export interface Sshd {
  target: Target;
  port: number;
  /** The user's private key (OpenSSH format) and the server's host public key blob (base64). */
  keyPath: string;
  hostKey: string;
  stop(): void;
}

export async function startSshd(dir: string): Promise<Sshd> {
  await ensureBenchLogin();
  await execFile('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  await execFile('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
  // sshd reads authorized_keys as the user logging in, who cannot enter the caller's 0700 temp dir.
  const authorized = mkdtempSync(join(tmpdir(), 'ward-bench-authorized-'));
  chmodSync(authorized, 0o755);
  writeFileSync(join(authorized, 'keys'), readFileSync(join(dir, 'id.pub')), { mode: 0o644 });
  // A free port: bind 0, read it, release it; sshd binds it right after (a race we accept in a bench).
  const net = await import('node:net');
  const port = await new Promise<number>((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
  const cfg = join(dir, 'sshd_config');
  writeFileSync(
    cfg,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'StrictModes no',
      `AuthorizedKeysFile ${join(authorized, 'keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      // The interactive bench opens 200 sessions; the default (10:30:100) drops unauthenticated ones early.
      'MaxStartups 1000',
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true }); // privilege separation directory sshd insists on
  const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const deadline = Date.now() + 10_000;
  while (!err.includes('Server listening')) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`sshd did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const hostPub = readFileSync(join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\n`);
  const sshConfig = join(dir, 'ssh_config');
  writeFileSync(
    sshConfig,
    [
      'Host *',
      `  IdentityFile ${join(dir, 'id')}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${join(dir, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '',
    ].join('\n'),
  );
  return {
    target: {
      args: ['-F', sshConfig, '-p', String(port), `${BENCH_LOGIN}@127.0.0.1`],
      env: process.env,
      serverPid: proc.pid!,
    },
    port,
    keyPath: join(dir, 'id'),
    hostKey: hostPub.split(' ')[1]!,
    stop: () => {
      proc.kill('SIGTERM');
      rmSync(authorized, { recursive: true, force: true });
    },
  };
}

/** The cipher and MAC the two ends agreed on, from `ssh -v`. */
async function negotiated(t: Target): Promise<{ kex: string; cipher: string }> {
  const err = await new Promise<string>((res) => {
    execFileCb('ssh', ['-v', ...t.args, 'true'], { env: t.env }, (_e, _o, stderr) => res(String(stderr)));
  });
  const m = /kex: server->client cipher: (\S+) MAC: (\S+)/.exec(err);
  const kex = /kex: algorithm: (\S+)/.exec(err)?.[1] ?? 'unknown';
  return { kex, cipher: m ? (m[2] === '<implicit>' ? m[1]! : `${m[1]} + ${m[2]}`) : 'unknown' };
}

interface Transfer {
  mbps: number;
  /** CPU seconds per GB of the server side (ward start, or sshd), with the `cat` it ran. */
  serverCpuPerGB: number;
  /** Ward only: CPU seconds per GB of `wsh proxy ssh`. */
  wshCpuPerGB?: number;
}

/** MB/s (10^6 bytes) of `cat /dev/zero` on the far side, read by `head -c` here. */
async function throughput(t: Target, mb: number, dir: string): Promise<Transfer> {
  const bytes = Math.round(mb * 1e6);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const timing = join(dir, 'proxycommand.time');
  rmSync(timing, { force: true });
  // The ProxyCommand under /usr/bin/time, to see what the client-side node process costs. ssh sends its
  // ProxyCommand SIGHUP when it is done: ignored here (inherited by wsh, which exits on EOF anyway) so
  // that time lives to write its line.
  const wrapper = join(dir, 'timed-proxycommand');
  if (t.proxyCommand)
    writeFileSync(
      wrapper,
      `#!/bin/sh\ntrap '' HUP\nexec /usr/bin/time -o ${timing} -f '%U %S' ` +
        `${t.proxyCommand.replace(/%r@%h:%p$/, '"$1"')}\n`,
      { mode: 0o755 },
    );
  const args = t.proxyCommand ? ['-o', `ProxyCommand=${wrapper} %r@%h:%p`, ...t.args] : t.args;
  const cmd = `ssh ${args.map(q).join(' ')} 'cat /dev/zero' | head -c ${bytes} | wc -c`;
  const cpu = sampleTreeCpu(t.serverPid);
  const start = performance.now();
  const { stdout } = await execFile('bash', ['-c', cmd], { env: t.env, timeout: 600_000 });
  if (Number(stdout.trim()) !== bytes) throw new Error(`ssh transfer ended after ${stdout.trim()} of ${bytes} bytes`);
  const mbps = mb / ((performance.now() - start) / 1000);
  // ssh returns when its channel closes; give the server side a moment to finish and reap its children.
  await new Promise((r) => setTimeout(r, 500));
  const serverCpuPerGB = (cpu.stop() * 1000) / mb;
  if (!t.proxyCommand) return { mbps, serverCpuPerGB };
  // ssh has exited, but the ProxyCommand may still be writing its timing line.
  let wshCpu = NaN;
  for (let i = 0; i < 50 && Number.isNaN(wshCpu); i++) {
    try {
      const [u, s] = readFileSync(timing, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      wshCpu = u! + s!;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { mbps, serverCpuPerGB, wshCpuPerGB: (wshCpu * 1000) / mb };
}

/** Milliseconds of one `ssh HOST true`, from process start to exit. */
async function connectOnce(t: Target): Promise<number> {
  const start = performance.now();
  await execFile('ssh', [...t.args, 'true'], { env: t.env });
  return performance.now() - start;
}

/**
 * `runs` connections to each target, interleaved (ward, sshd, sshd with ward's key exchange, ward, ...), so that
 * a change in the machine's load during the minutes this takes hits every side alike. Sorted milliseconds each.
 */
async function connectLatency<K extends string>(
  targets: Record<K, Target>,
  runs: number,
): Promise<Record<K, number[]>> {
  const names = Object.keys(targets) as K[];
  const out = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < runs; i++) for (const n of names) out[n].push(await connectOnce(targets[n]));
  for (const n of names) out[n].sort((a, b) => a - b);
  return out;
}

export async function benchSSH(opts: SSHOptions): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-ssh-'));
  mkdirSync(join(dir, 'ward'));
  mkdirSync(join(dir, 'sshd'));
  mkdirSync(join(dir, 'tunnel'));
  let ward: Ward | undefined;
  let tunnelled: Ward | undefined;
  let sshd: Awaited<ReturnType<typeof startSshd>> | undefined;
  try {
    ward = await startWard(join(dir, 'ward'), opts.wardNodeFlags);
    sshd = await startSshd(join(dir, 'sshd'));
    const wardAlgs = await negotiated(ward.target);
    const sshdAlgs = await negotiated(sshd.target);
    const [wardCipher, sshdCipher] = [wardAlgs.cipher, sshdAlgs.cipher];
    console.log(`ssh: negotiated: ward node ${wardAlgs.kex}, ${wardCipher}; sshd ${sshdAlgs.kex}, ${sshdCipher}`);
    // Warm-up: one small transfer each (page cache, JIT in the Ward processes).
    await throughput(ward.target, 50, dir);
    await throughput(sshd.target, 50, dir);

    const out: BenchResult[] = [];
    const note =
      `reference = ssh -> OpenSSH sshd on loopback; ward = ssh with ProxyCommand wsh proxy ssh -> ` +
      `proxy (mTLS) -> node (ssh2); ciphers: ward ${wardCipher}, sshd ${sshdCipher}`;
    for (const mb of [opts.mb, opts.mbSmall].filter((m) => m > 0)) {
      const w = await throughput(ward.target, mb, dir);
      const r = await throughput(sshd.target, mb, dir);
      const cpu =
        `CPU s per GB: ward start (proxy + node + cat) ${w.serverCpuPerGB.toFixed(2)}, wsh proxy ssh ` +
        `${w.wshCpuPerGB!.toFixed(2)}; ` +
        `sshd (+ cat) ${r.serverCpuPerGB.toFixed(2)}`;
      console.log(
        `ssh: cat /dev/zero | head -c ${mb} MB: ward ${w.mbps.toFixed(0)} MB/s, sshd ${r.mbps.toFixed(0)} MB/s ` +
          `(${(w.mbps / r.mbps).toFixed(2)}x); ${cpu}`,
      );
      out.push(result(`ssh throughput, ${mb} MB cat /dev/zero`, w.mbps, r.mbps, 'MB/s', `${note}; ${cpu}`));
      // CPU per GB is a cost, so the ratio is reference / ward (above 1: Ward spends less).
      const cost = (name: string, wv: number, rv: number | null, what: string): BenchResult => {
        const r0 = result(name, wv, rv, 's/GB', what);
        return rv === null ? r0 : { ...r0, ratio: Math.round((rv / wv) * 100) / 100 };
      };
      out.push(
        cost(
          `ssh server CPU per GB, ${mb} MB`,
          w.serverCpuPerGB,
          r.serverCpuPerGB,
          'user+system CPU of ward start (proxy + node) vs sshd, each with the cat it ran, per 10^9 bytes; ratio ' +
            '= sshd / ward',
        ),
      );
      out.push(
        cost(
          `ssh client-side wsh proxy ssh CPU per GB, ${mb} MB`,
          w.wshCpuPerGB!,
          null,
          'the ProxyCommand (TLS to the proxy), which the direct path does not have; no reference',
        ),
      );
    }

    // OpenSSH pairs pick a post-quantum hybrid key exchange (sntrup761x25519) that Ward's node does not offer and
    // that costs tens of ms here, so sshd is also timed with the key exchange Ward's node negotiated: the
    // defaults are what users get, the same-exchange pair compares the rest of the path.
    // The same stream to a node with no listener, reached through its reverse tunnel (src/tunnel: TLS handshake,
    // then Ward's records). One process holds auth, proxy and node here, so both ends of the tunnel, the TLS from
    // wsh and the node's SSH share one thread; on separate machines each has its own.
    tunnelled = await startWard(join(dir, 'tunnel'), opts.wardNodeFlags, { tunnel: true });
    await throughput(tunnelled.target, 50, dir);
    {
      const t = await throughput(tunnelled.target, opts.mb, dir);
      const r = await throughput(sshd.target, opts.mb, dir);
      console.log(
        `ssh: through a reverse tunnel, ${opts.mb} MB: ward ${t.mbps.toFixed(0)} MB/s, sshd ${r.mbps.toFixed(0)} ` +
          `MB/s (${(t.mbps / r.mbps).toFixed(2)}x)`,
      );
      out.push(
        result(
          `ssh throughput through a reverse tunnel, ${opts.mb} MB`,
          t.mbps,
          r.mbps,
          'MB/s',
          `${note}, with the node behind its reverse tunnel; server CPU ${t.serverCpuPerGB.toFixed(2)} s/GB vs ` +
            `sshd ${r.serverCpuPerGB.toFixed(2)}`,
        ),
      );
    }

    const sameKex = { ...sshd.target, args: ['-o', `KexAlgorithms=${wardAlgs.kex}`, ...sshd.target.args] };
    const lat = await connectLatency(
      { ward: ward.target, sshd: sshd.target, sameKex, tunnel: tunnelled.target },
      opts.runs,
    );
    const p = (ms: number[]) => ({ p50: percentile(ms, 50), p99: percentile(ms, 99) });
    const [w, r, k] = [p(lat.ward), p(lat.sshd), p(lat.sameKex)];
    console.log(
      `ssh: connect + true, ${opts.runs} runs each, interleaved: ward p50 ${w.p50.toFixed(1)} ms, p99 ` +
        `${w.p99.toFixed(1)} ms; ` +
        `sshd (${sshdAlgs.kex}) p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms; ` +
        `sshd (${wardAlgs.kex}) p50 ${k.p50.toFixed(1)} ms, p99 ${k.p99.toFixed(1)} ms`,
    );
    // For a latency the ratio is reference / ward, so that above 1 still means Ward is faster.
    const latency = (name: string, wv: number, rv: number, what: string): BenchResult => ({
      ...result(name, wv, rv, 'ms', `${note}; ${what}`),
      ratio: Math.round((rv / wv) * 100) / 100,
    });
    const defaults = `OpenSSH's default key exchange on the sshd side (${sshdAlgs.kex}), Ward's node ${wardAlgs.kex}`;
    const same = `both sides ${wardAlgs.kex}`;
    out.push(latency(`ssh connect + true p50, ${opts.runs} runs`, w.p50, r.p50, defaults));
    out.push(latency(`ssh connect + true p99, ${opts.runs} runs`, w.p99, r.p99, defaults));
    out.push(latency(`ssh connect + true p50, same key exchange, ${opts.runs} runs`, w.p50, k.p50, same));
    out.push(latency(`ssh connect + true p99, same key exchange, ${opts.runs} runs`, w.p99, k.p99, same));
    const tl = p(lat.tunnel);
    console.log(
      `ssh: connect + true through a reverse tunnel: p50 ${tl.p50.toFixed(1)} ms, p99 ${tl.p99.toFixed(1)} ms`,
    );
    out.push(
      latency(
        `ssh connect + true p50 through a reverse tunnel, same key exchange, ${opts.runs} runs`,
        tl.p50,
        k.p50,
        same,
      ),
    );
    return out;
  } finally {
    sshd?.stop();
    await ward?.stop();
    await tunnelled?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function sshOptions(argv: string[]): SSHOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: {
      mb: { type: 'string' },
      'mb-small': { type: 'string' },
      runs: { type: 'string' },
      'ward-node-flags': { type: 'string' },
    },
  });
  return {
    mb: Number(values.mb ?? 1000),
    mbSmall: Number(values['mb-small'] ?? 500),
    runs: Number(values.runs ?? 50),
    wardNodeFlags: String(values['ward-node-flags'] ?? '')
      .split(' ')
      .filter(Boolean),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { printTable } = await import('./result.ts');
  printTable(await benchSSH(sshOptions(process.argv.slice(2))));
}
