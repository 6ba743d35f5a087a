// End-to-end harness: starts the real `bin/ward` in a throwaway data dir and runs the real `bin/wctl`,
// `bin/wsh` and outside tools (ssh-keygen, openssl) against it, as an operator would. Every process it
// spawns is bounded by a timeout and killed by cleanup(), which a test file calls from `after`.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createAuthClient, type AuthClient, type TLSIdentity } from '../src/api/client.ts';

export const REPO = resolve(import.meta.dirname, '..');
export const BIN = join(REPO, 'bin');

/** Start-up (first start creates five CAs) must finish in this time. */
const READY_TIMEOUT_MS = 20_000;
const RUN_TIMEOUT_MS = 20_000;
/** After SIGTERM, a ward process gets this long to stop before SIGKILL. */
const STOP_GRACE_MS = 5_000;

export interface RunResult {
  /** Exit code; null when the process was killed (see timedOut). */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  stdin?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  cwd?: string;
}

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
/** Every Cluster made, started or not: cleanup() stops them all gracefully. */
const clusters = new Set<Cluster>();
/** Every node agent started: cleanup() stops them before the clusters they joined. */
const agents = new Set<NodeAgent>();

// Last resort if a test file dies before its `after` hook: no ward process outlives the test run.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** SIGTERM, then SIGKILL after STOP_GRACE_MS. Returns the exit code (null if it had to be killed). */
async function stopProcess(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  child.kill('SIGTERM');
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, STOP_GRACE_MS);
  const code = await exited;
  clearTimeout(timer);
  return killed ? null : code;
}

export function makeTempDir(prefix = 'ward-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** The environment of every spawned command: no inherited Ward settings, HOME in a temp dir, UTC times. */
function baseEnv(home: string, extra?: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(WARD_|WSH_)/.test(k) && !k.startsWith('NODE_TEST')) env[k] = v;
  }
  return { ...env, HOME: home, TZ: 'UTC', NO_COLOR: '1', ...extra };
}

/** Runs a command to completion (or kills it at the timeout) and returns what it printed. */
export function run(cmd: string, args: string[], opts: RunOptions & { home?: string } = {}): Promise<RunResult> {
  const home = opts.home ?? sharedHome();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? home,
      env: baseEnv(home, opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => undefined); // the command may exit without reading its input
    child.stdin.end(opts.stdin ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? RUN_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolvePromise({ code, stdout, stderr, timedOut });
    });
  });
}

let shared: string | undefined;
function sharedHome(): string {
  shared ??= makeTempDir('ward-e2e-home-');
  return shared;
}

export const ward = (args: string[], opts?: RunOptions & { home?: string }) => run(join(BIN, 'ward'), args, opts);

/** What a failed command must look like: a non-zero exit, one line of explanation, no stack trace. */
export function errorLines(r: RunResult): string[] {
  // `ward start` logs JSON lines (pino) to stderr before it fails; the explanation is the rest.
  return r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{"level"'));
}

export interface ClusterOptions {
  clusterName?: string;
  lockout?: { max_attempts?: number; duration?: string };
  /** proxy_service.rate_limits, per kind (sign_in, link, auth_connect): `{burst, per_minute}`. */
  rateLimits?: Record<string, { burst: number; per_minute: number }>;
  /** auth_service.rate_limits (join): `{burst, per_minute}`. */
  authRateLimits?: Record<string, { burst: number; per_minute: number }>;
  /** Run the home lab's Node Service too (on a free loopback port). */
  node?: boolean;
  /** auth_service.host_cert_ttl: a short one makes every host renew its certificates within the test. */
  hostCertTTL?: string;
  /** A whole ward.yaml to use instead of the generated one. */
  config?: string;
  /** Run `ward start` with this soft limit on open file descriptors (`ulimit -n`). */
  fdLimit?: number;
}

interface Banner {
  clusterName: string;
  authAddr: string;
  proxyAddr: string;
  caPin: string;
  /** The home lab node's SSH address, when the cluster runs one. */
  nodeAddr?: string;
}

/** One `ward start` process the harness runs: its output, its exit, and stopping or killing it. */
abstract class WardProcess {
  protected proc?: ChildProcess;
  protected exited?: Promise<number | null>;
  /** Set once the latest start's process has exited (-1 for a signal). */
  protected exitCode: number | undefined;
  protected stdoutText = '';
  protected stderrText = '';

  /** Everything the ward process (all its starts) wrote to stdout and to stderr, its log. */
  get stdout(): string {
    return this.stdoutText;
  }
  get log(): string {
    return this.stderrText;
  }

  /** Spawns `ward start ARGS` in `cwd`; returns where this start's output begins in `stdout`. */
  protected spawnWard(args: string[], cwd: string, fdLimit?: number): number {
    const from = this.stdoutText.length;
    const [cmd, argv] = fdLimit
      ? ['bash', ['-c', 'ulimit -n "$0" && exec "$@"', String(fdLimit), join(BIN, 'ward'), 'start', ...args]]
      : [join(BIN, 'ward'), ['start', ...args]];
    const child = spawn(cmd, argv, { cwd, env: baseEnv(cwd), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    this.proc = child;
    this.exitCode = undefined;
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.stdoutText += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderrText += s));
    this.exited = new Promise((res) =>
      child.once('close', (code) => {
        children.delete(child);
        this.exitCode = code ?? -1;
        res(code);
      }),
    );
    return from;
  }

  /** SIGTERM, then SIGKILL after a grace period. Returns the exit code (null if it had to be killed). */
  async stop(): Promise<number | null> {
    const child = this.proc;
    if (!child || !this.exited) return null;
    this.proc = undefined;
    return stopProcess(child, this.exited);
  }

  /** SIGKILL at once, as a crash: nothing in the process gets to clean up. */
  async kill(): Promise<void> {
    const child = this.proc;
    if (!child || !this.exited) return;
    this.proc = undefined;
    child.kill('SIGKILL');
    await this.exited;
  }
}

/** A running `ward start` (auth + proxy) in its own temp dir. */
export class Cluster extends WardProcess {
  readonly root: string;
  readonly dataDir: string;
  readonly configPath: string;
  private banner?: Banner;
  private admin?: { addr: string; client: AuthClient };
  /** What `wctl status` printed when it first answered after the latest start. */
  statusAtStart = '';

  constructor(readonly options: ClusterOptions = {}) {
    super();
    this.root = makeTempDir('ward-e2e-cluster-');
    this.dataDir = join(this.root, 'data');
    this.configPath = join(this.root, 'ward.yaml');
    // Port 0: the kernel picks a free loopback port at bind time, so there is no window in which
    // another process can take a port the harness chose. The real addresses come from the banner.
    writeFileSync(this.configPath, options.config ?? generatedConfig(options));
    clusters.add(this);
  }

  get clusterName(): string {
    return this.ready().clusterName;
  }
  get authAddr(): string {
    return this.ready().authAddr;
  }
  get proxyAddr(): string {
    return this.ready().proxyAddr;
  }
  get caPin(): string {
    return this.ready().caPin;
  }
  /** The home lab node's SSH address (`node: true`). */
  get nodeAddr(): string {
    const addr = this.ready().nodeAddr;
    if (!addr) throw new Error('this cluster runs no node (start it with node: true)');
    return addr;
  }
  /** The running ward process's id: tests read its /proc entry (open descriptors, memory). */
  get pid(): number {
    const pid = this.proc?.pid;
    if (pid === undefined) throw new Error('cluster is not running');
    return pid;
  }
  private ready(): Banner {
    if (!this.banner) throw new Error('cluster is not running');
    return this.banner;
  }

  async start(): Promise<void> {
    if (this.proc) throw new Error('cluster already running');
    this.banner = undefined;
    const startOffset = this.spawnWard(['-c', this.configPath, '-d', this.dataDir], this.root, this.options.fdLimit);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // Ready = the banner is printed (it comes after both listeners are up) and wctl status answers.
    while (Date.now() < deadline) {
      if (this.exitCode !== undefined) {
        this.proc = undefined;
        throw new Error(
          `ward start exited with ${this.exitCode} before it was ready:\n${this.stderrText.slice(-2000)}`,
        );
      }
      const banner = parseBanner(this.stdoutText.slice(startOffset));
      if (banner) {
        this.banner = banner;
        const status = await this.wctl(['status'], { timeoutMs: 5_000 });
        if (status.code === 0) {
          this.statusAtStart = status.stdout;
          return;
        }
      }
      await delay(50);
    }
    await this.stop();
    throw new Error(`ward start was not ready within ${READY_TIMEOUT_MS / 1000}s:\n${this.stderrText.slice(-2000)}`);
  }

  /** Stops the process and removes its temp dir (data dir, config, wsh homes). */
  async destroy(): Promise<number | null> {
    const code = await this.stop();
    clusters.delete(this);
    rmSync(this.root, { recursive: true, force: true });
    tempDirs.delete(this.root);
    return code;
  }

  /** Stops and starts again on the same data dir and config; returns the exit code of the stop. */
  async restart(): Promise<number | null> {
    const code = await this.stop();
    await this.start();
    return code;
  }

  /** wctl as the local administrator of this cluster (the identity under DATA_DIR/admin). */
  wctl(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(join(BIN, 'wctl'), ['-d', this.dataDir, ...args], { ...opts, home: this.root });
  }

  /** wctl with an identity file, through this cluster's proxy (or another address). */
  wctlAs(identityFile: string, args: string[], opts: RunOptions & { addr?: string } = {}): Promise<RunResult> {
    return run(join(BIN, 'wctl'), ['-i', identityFile, '--auth-server', opts.addr ?? this.proxyAddr, ...args], {
      ...opts,
      home: this.root,
    });
  }

  /** wsh with its state under `wshHome` (one per simulated user machine). */
  wsh(wshHome: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(join(BIN, 'wsh'), args, { ...opts, env: { WSH_HOME: wshHome, ...opts.env }, home: this.root });
  }

  /** A fresh WSH_HOME, as on a new laptop. */
  newWshHome(): string {
    const dir = join(this.root, `wsh-${Math.random().toString(36).slice(2)}`);
    mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /** The local admin identity `ward start` keeps in the data dir. */
  adminIdentity(): TLSIdentity {
    const admin = join(this.dataDir, 'admin');
    return {
      keyPem: readFileSync(join(admin, 'tls.key'), 'utf8'),
      certPem: readFileSync(join(admin, 'tls.crt'), 'utf8'),
      caPems: [readFileSync(join(admin, 'cas.pem'), 'utf8')],
    };
  }

  /** An Auth API client as the local admin, dialing the auth server directly (one per start). */
  adminClient(): AuthClient {
    if (this.admin?.addr !== this.authAddr) {
      this.admin = {
        addr: this.authAddr,
        client: createAuthClient({ addr: this.authAddr, identity: this.adminIdentity(), timeoutMs: 10_000 }),
      };
    }
    return this.admin.client;
  }

  /** An Auth API client with `identity` (or none), dialing `addr` (default: the auth server). */
  client(identity?: TLSIdentity, addr = this.authAddr): AuthClient {
    // Idle connections close within a second: a test's throwaway clients must not hold descriptors in
    // the ward process, where the hostile-input suite counts them.
    return createAuthClient({
      addr,
      identity,
      caPems: this.adminIdentity().caPems,
      timeoutMs: 10_000,
      idleTimeoutMs: 1_000,
    });
  }
}

/**
 * The sign-in and link limits of a test cluster that does not set its own: a test file signs in far more often from
 * 127.0.0.1 than a person does, and how fast it runs decides whether it meets the default limits. The limits are
 * tested where they are the point (test/security/bruteforce.test.ts, src/proxy/edgelimits.test.ts).
 */
const UNTHROTTLED_SIGN_IN = { sign_in: { burst: 1000, per_minute: 6000 }, link: { burst: 1000, per_minute: 6000 } };

function generatedConfig(o: ClusterOptions): string {
  const lockout = o.lockout
    ? `  lockout:\n${o.lockout.max_attempts ? `    max_attempts: ${o.lockout.max_attempts}\n` : ''}` +
      `${o.lockout.duration ? `    duration: ${o.lockout.duration}\n` : ''}`
    : '';
  return (
    [
      'version: v1',
      'ward:',
      '  log:',
      '    severity: info',
      'auth_service:',
      `  cluster_name: ${o.clusterName ?? 'e2e'}`,
      '  listen_addr: 127.0.0.1:0',
      o.hostCertTTL ? `  host_cert_ttl: ${o.hostCertTTL}` : '',
      lockout.trimEnd(),
      o.authRateLimits ? `  rate_limits: ${JSON.stringify(o.authRateLimits)}` : '',
      'proxy_service:',
      '  listen_addr: 127.0.0.1:0',
      `  rate_limits: ${JSON.stringify(o.rateLimits ?? UNTHROTTLED_SIGN_IN)}`,
      'ssh_service:',
      `  enabled: ${o.node ?? false}`,
      '  listen_addr: 127.0.0.1:0',
      '',
    ]
      .filter((l) => l !== '')
      .join('\n') + '\n'
  );
}

function parseBanner(text: string): Banner | undefined {
  if (!text.includes('\nNext:')) return undefined; // the banner is written in one piece
  const clusterName = /Ward is running: cluster "([^"]+)"/.exec(text)?.[1];
  const authAddr = /auth API: +(\S+)/.exec(text)?.[1];
  const proxyAddr = /proxy: +https:\/\/(\S+)/.exec(text)?.[1];
  const caPin = /CA pin: +(sha256:[0-9a-f]{64})/.exec(text)?.[1];
  const nodeAddr = /^ +node: +(\S+)$/m.exec(text)?.[1];
  if (!clusterName || !authAddr || !proxyAddr || !caPin) throw new Error(`unexpected ward start banner:\n${text}`);
  return { clusterName, authAddr, proxyAddr, caPin, nodeAddr };
}

/** A node agent: `ward start --roles node` joining a cluster with a token, in its own temp dir. */
export class NodeAgent extends WardProcess {
  readonly root: string;

  constructor(readonly name: string) {
    super();
    this.root = makeTempDir('ward-e2e-agent-');
  }
  /** The host id the agent got when it joined (kept in its data dir). */
  get hostId(): string {
    return JSON.parse(readFileSync(join(this.root, 'data', 'node', 'identity.json'), 'utf8')).hostId;
  }
  /** The `listening on HOST:PORT` address the agent printed last (listening mode only). */
  get addr(): string | undefined {
    return [...this.stdoutText.matchAll(/listening on (\S+)/g)].at(-1)?.[1];
  }

  /** Starts `ward start` with `args` (after -c/-d) and waits for "Ward node is running". */
  async start(
    args: string[],
    config = `ssh_service:\n  hostname: ${this.name}\n  listen_addr: 127.0.0.1:0\n`,
  ): Promise<void> {
    if (this.proc) throw new Error('agent already running');
    const configPath = join(this.root, 'ward.yaml');
    writeFileSync(configPath, config);
    // A restart: only what this start prints counts.
    const from = this.spawnWard(['-c', configPath, '-d', join(this.root, 'data'), ...args], this.root);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!/Ward node is running/.test(this.stdoutText.slice(from))) {
      if (this.exitCode !== undefined) {
        this.proc = undefined;
        throw new Error(
          `agent ${this.name} exited with ${this.exitCode} before it was ready:\n${this.stderrText.slice(-2000)}`,
        );
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(
          `agent ${this.name} was not ready within ${READY_TIMEOUT_MS / 1000}s:\n${this.stderrText.slice(-2000)}`,
        );
      }
      await delay(50);
    }
  }
}

/** Joins a node agent named `name` to `cluster` with a fresh node token; `args` e.g. --tunnel, --labels. */
export async function startAgent(
  cluster: Cluster,
  name: string,
  args: string[] = [],
  config?: string,
): Promise<NodeAgent> {
  const added = await cluster.wctl(['tokens', 'add', '--type', 'node']);
  const token = /--token (\S+)/.exec(added.stdout)?.[1];
  if (added.code !== 0 || !token) throw new Error(`wctl tokens add failed:\n${added.stdout}${added.stderr}`);
  const agent = new NodeAgent(name);
  agents.add(agent);
  await agent.start(
    ['--roles', 'node', '--token', token, '--auth-server', cluster.proxyAddr, '--ca-pin', cluster.caPin, ...args],
    config,
  );
  return agent;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const cluster = new Cluster(options);
  await cluster.start();
  return cluster;
}

/** Stops every cluster and command this harness started and removes its temp dirs. Call from `after`. */
export async function cleanup(): Promise<void> {
  await Promise.all([...agents].map((a) => a.stop()));
  agents.clear();
  await Promise.all([...clusters].map((c) => c.stop()));
  clusters.clear();
  for (const child of children) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
  shared = undefined;
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value (not undefined), bounded by `timeoutMs`. */
export async function poll<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** Reads the key, certificate and CA bundle `wctl auth sign --format tls --out PREFIX` wrote. */
export function readTLSIdentity(prefix: string): TLSIdentity {
  return {
    keyPem: readFileSync(`${prefix}.key`, 'utf8'),
    certPem: readFileSync(`${prefix}.crt`, 'utf8'),
    caPems: [readFileSync(`${prefix}.cas`, 'utf8')],
  };
}
