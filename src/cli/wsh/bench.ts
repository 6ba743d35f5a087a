// `wsh bench`: opens SSH sessions to a node at a fixed rate through the proxy, as Teleport's `tsh bench`,
// and prints the latency percentiles and the errors. Each session is what `wsh ssh` does on the wire
// (mutual TLS to the proxy, ALPN ward-proxy-ssh, then SSH with the login's certificate to the node), driven
// by ssh2 inside this process: starting an OpenSSH and a ProxyCommand per session would measure process
// start-up and, at 20/s on a small machine, starve the servers being measured of CPU.
import { performance } from 'node:perf_hooks';
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import type { Duplex } from 'node:stream';
import { createAuthClient, type TLSIdentity } from '../../api/client.ts';
import { parseDuration } from '../../time/duration.ts';
import { BadParameter, NotFound } from '../../api/errors.ts';
import { listAllResources } from '../../api/list.ts';
import { hostCertVerifier } from '../../crypto/hosttrust.ts';
import { CERT_SUFFIX, parseAuthorizedKey } from '../../crypto/sshkeys.ts';
import { loadCurrentLogin } from './profile.ts';
import { dialNode } from './proxycmd.ts';

/** A session that has not ended in this time counts as failed (and its connection is closed). */
export const SESSION_TIMEOUT_MS = 30_000;
const MAX_RATE = 1000;
const MAX_DURATION_MS = 3_600_000;
/** Sessions in flight at once; past it a new one counts as failed rather than piling up without bound. */
const MAX_IN_FLIGHT = 2000;

/** Everything one SSH session needs: how to reach the node and who to be there. */
export interface SessionTarget {
  /** Opens the byte stream to the node's SSH server (through the proxy, or a direct TCP socket). */
  dial(signal: AbortSignal): Promise<Duplex>;
  login: string;
  /** OpenSSH private key of the login (the `id` file). */
  privateKey: string;
  /** The user certificate blob; absent for plain public-key login (a reference sshd). */
  certificate?: Buffer;
  /** Decides whether the server's host key (a host certificate blob with a certificate) is trusted. */
  hostVerifier(key: Buffer): boolean;
  /** Host key algorithms to offer: the certificate types for a Ward node. */
  hostKeyAlgorithms?: string[];
}

/** Connects and authenticates; resolves with the ready client. Bounded by the signal. */
export function connectSSH(t: SessionTarget, signal: AbortSignal): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err) {
        client.end();
        reject(err);
      } else resolve(client);
    };
    const onAbort = () => settle(new Error(`no session within ${SESSION_TIMEOUT_MS / 1000}s`));
    signal.addEventListener('abort', onAbort, { once: true });
    client.once('ready', () => settle());
    // ssh2 says "All configured authentication methods failed": the node refused this login.
    client.on('error', (err: Error & { level?: string }) =>
      settle(
        err.level === 'client-authentication' ? new Error(`access denied: the node refused login "${t.login}"`) : err,
      ),
    );
    client.once('close', () => settle(new Error('connection closed before the session started')));
    t.dial(signal).then(
      (sock) => {
        if (settled) return sock.destroy();
        // The patched ssh2 (patches/ssh2+*.patch) takes `certificate` and offers cert host key types.
        const config = {
          sock,
          username: t.login,
          privateKey: t.privateKey,
          certificate: t.certificate,
          hostVerifier: (key: Buffer) => t.hostVerifier(key),
          readyTimeout: SESSION_TIMEOUT_MS,
          ...(t.hostKeyAlgorithms ? { algorithms: { serverHostKey: t.hostKeyAlgorithms } } : {}),
        };
        client.connect(config as unknown as ConnectConfig);
      },
      (err: Error) => settle(err),
    );
  });
}

/**
 * One session, start to end: connect, run `command` (exec), or with `interactive` a shell on a PTY that is
 * given `command` and `exit`, and wait for the channel to close. A non-zero exit status is a failure.
 */
export async function runSession(t: SessionTarget, command: string, interactive: boolean): Promise<void> {
  const signal = AbortSignal.timeout(SESSION_TIMEOUT_MS);
  const client = await connectSSH(t, signal);
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(new Error(`session did not end within ${SESSION_TIMEOUT_MS / 1000}s`));
      signal.addEventListener('abort', onAbort, { once: true });
      client.on('error', reject);
      const opened = (err: Error | undefined, stream: ssh2.ClientChannel) => {
        if (err) return reject(err);
        let code: number | undefined;
        let exitSignal: string | undefined;
        stream.on('exit', (c: number | null, sig?: string) => {
          code = c ?? undefined;
          exitSignal = sig;
        });
        stream.on('data', () => undefined); // read and drop the output: the bench times the session
        stream.stderr.on('data', () => undefined);
        stream.once('close', () => {
          signal.removeEventListener('abort', onAbort);
          if (code === 0) resolve();
          else
            reject(
              new Error(
                code !== undefined
                  ? `exit status ${code}`
                  : exitSignal
                    ? `killed by SIG${exitSignal}`
                    : 'no exit status',
              ),
            );
        });
        if (interactive) stream.end(`${command ? command + '\n' : ''}exit\n`);
      };
      if (interactive) client.shell({ term: 'xterm', rows: 24, cols: 80 }, opened);
      else client.exec(command, opened);
    });
  } finally {
    client.end();
  }
}

export interface BenchOptions {
  rate: number;
  durationMs: number;
  interactive: boolean;
  command: string;
}

export interface BenchReport {
  started: number;
  failed: number;
  /** Milliseconds of each successful session, sorted. */
  latenciesMs: number[];
  /** Error message -> count. */
  errors: Map<string, number>;
  /** From the first start to one interval after the last: the achieved rate is started / this. */
  startWindowMs: number;
  /** Until the last session ended. */
  elapsedMs: number;
}

/**
 * Starts a session every 1/rate seconds for the duration, whether or not earlier ones have ended (an open
 * loop: a slow server shows up as latency, not as a lower rate), then waits for the last to end.
 */
export async function benchSessions(t: SessionTarget, opts: BenchOptions): Promise<BenchReport> {
  const total = Math.max(1, Math.round((opts.rate * opts.durationMs) / 1000));
  const latenciesMs: number[] = [];
  const errors = new Map<string, number>();
  let inFlight = 0;
  const fail = (msg: string) => errors.set(msg, (errors.get(msg) ?? 0) + 1);
  const start = performance.now();
  const running: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / opts.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= MAX_IN_FLIGHT) {
      fail(`more than ${MAX_IN_FLIGHT} sessions in flight`);
      continue;
    }
    inFlight++;
    const t0 = performance.now();
    running.push(
      runSession(t, opts.command, opts.interactive)
        .then(
          () => void latenciesMs.push(performance.now() - t0),
          (err: Error) => void fail(oneLine(err)),
        )
        .finally(() => inFlight--),
    );
  }
  // The rate achieved is over the window in which sessions were started, not until the slowest ended.
  const startWindowMs = performance.now() - start + 1000 / opts.rate;
  await Promise.all(running);
  const failed = [...errors.values()].reduce((a, b) => a + b, 0);
  return {
    started: total,
    failed,
    latenciesMs: latenciesMs.sort((a, b) => a - b),
    errors,
    startWindowMs,
    elapsedMs: performance.now() - start,
  };
}

function oneLine(err: Error): string {
  return (err.message || String(err)).split('\n')[0]!.slice(0, 200);
}

/** p-th percentile (0..100) of sorted values, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function formatReport(r: BenchReport, what: string): string {
  const ms = (v: number) => (Number.isNaN(v) ? '-' : `${v.toFixed(1)} ms`);
  const lines = [
    what,
    `* Sessions started:   ${r.started}`,
    `* Sessions succeeded: ${r.started - r.failed}`,
    `* Sessions failed:    ${r.failed}`,
    `* Rate achieved:      ${(r.started / (r.startWindowMs / 1000)).toFixed(1)}/s (the last session ended after ` +
      `${(r.elapsedMs / 1000).toFixed(1)} s)`,
    '',
    'Latency of the sessions that succeeded (connect to end of session):',
    'Percentile  Duration',
    '----------  --------',
    ...(
      [
        ['p50', 50],
        ['p90', 90],
        ['p99', 99],
        ['max', 100],
      ] as const
    ).map(([name, p]) => `${name.padEnd(10)}  ${ms(percentile(r.latenciesMs, p))}`),
  ];
  if (r.errors.size) {
    lines.push('', 'Errors:');
    for (const [msg, n] of [...r.errors].sort((a, b) => b[1] - a[1])) lines.push(`${String(n).padStart(6)} x ${msg}`);
  }
  return lines.join('\n') + '\n';
}

export { hostCertVerifier };

/** Parses `--rate` and `--duration`, and `login@node`, with one-line errors. */
export function parseBenchArgs(
  target: string,
  rate: string,
  duration: string,
): { login: string; host: string; rate: number; durationMs: number } {
  const at = target.lastIndexOf('@');
  if (at <= 0 || at === target.length - 1)
    throw new BadParameter(
      `"${target}" names no login: use login@node (e.g. root@${target.replace(/^@/, '') || 'node'})`,
    );
  const r = Number(rate);
  if (!/^\d+(\.\d+)?$/.test(rate.trim()) || !(r > 0) || r > MAX_RATE)
    throw new BadParameter(`invalid rate "${rate}" (sessions per second, more than 0 and at most ${MAX_RATE})`);
  const durationMs = parseDuration(duration);
  if (durationMs > MAX_DURATION_MS) throw new BadParameter(`duration "${duration}" is longer than 1h`);
  if ((r * durationMs) / 1000 < 1) throw new BadParameter(`--rate ${rate} for ${duration} opens no session`);
  return { login: target.slice(0, at), host: target.slice(at + 1), rate: r, durationMs };
}

/** `wsh bench`: returns the exit code (1 when any session failed). */
export async function bench(
  target: string,
  command: string[],
  flags: { rate: string; duration: string; interactive: boolean },
): Promise<number> {
  const args = parseBenchArgs(target, flags.rate, flags.duration);
  const { profile, dir, creds } = loadCurrentLogin();
  const identity: TLSIdentity = { keyPem: creds.tlsKey, certPem: creds.tlsCert, caPems: creds.tlsCAs };
  // An unknown node is a usage error, not a run of failed sessions. The list is the one `wsh ls` shows
  // (the nodes the user's roles let them see), so this says no more about other nodes than `wsh ls` does.
  await requireVisibleNode(profile.proxy, identity, args.host, profile.cluster);
  const cert = parseAuthorizedKey(creds.sshCert).blob;
  const t: SessionTarget = {
    dial: (signal) => dialNode(profile.proxy, identity, args.host, 22, signal),
    login: args.login,
    privateKey: creds.sshPrivateKey,
    certificate: cert,
    hostVerifier: hostCertVerifier(creds.sshHostCAs, args.host),
    hostKeyAlgorithms: [`ssh-ed25519${CERT_SUFFIX}`, `ecdsa-sha2-nistp256${CERT_SUFFIX}`],
  };
  const cmd = command.join(' ');
  const mode = flags.interactive
    ? `interactive shell (PTY)${cmd ? ` typing "${cmd}"` : ''}`
    : `exec "${cmd || 'true'}"`;
  process.stderr.write(
    `wsh bench: ${args.login}@${args.host} via ${profile.proxy}, ${mode}, ${args.rate}/s for ${flags.duration} ` +
      `(keys: ${dir})\n`,
  );
  const report = await benchSessions(t, {
    rate: args.rate,
    durationMs: args.durationMs,
    interactive: flags.interactive,
    command: flags.interactive ? cmd : cmd || 'true',
  });
  process.stdout.write(formatReport(report, `${report.started} sessions to ${args.login}@${args.host}, ${mode}`));
  return report.failed > 0 ? 1 : 0;
}

async function requireVisibleNode(proxy: string, identity: TLSIdentity, host: string, cluster: string): Promise<void> {
  const auth = createAuthClient({ addr: proxy, identity, describedAs: `the proxy at ${proxy}` });
  const name = host.endsWith(`.${cluster}`) ? host.slice(0, -cluster.length - 1) : host;
  const nodes = await listAllResources(auth, 'node');
  if (nodes.some((n) => n.metadata.name === host || n.spec.hostname === name)) return;
  throw new NotFound(`node "${host}" not found (wsh ls lists the nodes you may reach)`);
}
