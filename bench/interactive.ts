// Many interactive sessions at once: N PTY sessions held open through one proxy (ward start: auth + proxy +
// node), each typing a key every so often and timing its echo; against the same N PTY sessions to OpenSSH's
// sshd directly on loopback. Both sides are driven by the same in-process ssh2 client (the one `wsh bench`
// uses; Ward's through the proxy's ward-proxy-ssh route with the user's certificate), so the difference is
// the server path. The far side runs `stty raw -echo; exec cat`: the echo makes the full round trip through
// a program, as a shell's line editor does, rather than being answered by the kernel's tty echo.
// Run alone: node --import tsx bench/interactive.ts [--sessions 200] [--keystroke-ms 200] [--seconds 10]
//   [--ward-node-flags "--cpu-prof ..."]
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type ssh2 from 'ssh2';
import { connectSSH, hostCertVerifier, type SessionTarget } from '../src/cli/wsh/bench.ts';
import { dialNode } from '../src/cli/wsh/proxycmd.ts';
import { CERT_SUFFIX, parseAuthorizedKey } from '../src/crypto/sshkeys.ts';
import { percentile, result, type BenchResult } from './result.ts';
import { BENCH_LOGIN, startSshd, startWard } from './ssh.ts';
import { sampleTreeCpu } from './treecpu.ts';

export interface InteractiveOptions {
  sessions: number;
  /** Each session types one key, waits for its echo, then waits this long (with jitter) before the next. */
  keystrokeMs: number;
  /** How long the typing goes on, once every session is open. */
  seconds: number;
  /** Extra node flags for the ward process (profiling). */
  wardNodeFlags: string[];
}

/** Sessions opened at once while ramping up: a burst of 200 handshakes would time the ramp, not the typing. */
const OPEN_CONCURRENCY = 20;
const ECHO_TIMEOUT_MS = 30_000;
const REMOTE = 'stty raw -echo; exec cat';

interface Typist {
  client: ssh2.Client;
  stream: ssh2.ClientChannel;
}

/** Opens one session, starts the echoing program and waits until a first key comes back (stty is applied). */
async function openTypist(t: SessionTarget): Promise<Typist> {
  const client = await connectSSH(t, AbortSignal.timeout(ECHO_TIMEOUT_MS));
  const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
    client.exec(REMOTE, { pty: { term: 'xterm', rows: 24, cols: 80 } }, (err, s) => (err ? reject(err) : resolve(s))),
  );
  stream.stderr.on('data', () => undefined);
  // Until stty has run the tty echoes on its own (and cat would get lines only): probe until a lone
  // key comes back as the only byte.
  const deadline = Date.now() + ECHO_TIMEOUT_MS;
  for (;;) {
    const got = await keystroke(stream, 'x', 500).catch(() => '');
    if (got === 'x') break;
    if (Date.now() > deadline) throw new Error('the remote cat never echoed');
  }
  return { client, stream };
}

/** Writes one key and resolves with what came back when that key is seen (or rejects at the timeout). */
function keystroke(stream: ssh2.ClientChannel, key: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes(key)) done();
    };
    const timer = setTimeout(() => {
      stream.off('data', onData);
      reject(new Error(`no echo within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      resolve(got);
    };
    stream.on('data', onData);
    stream.write(key);
  });
}

/** Opens `n` sessions; each is also added to `all` as it opens, so the caller can close them if a later one fails. */
async function openAll(t: SessionTarget, n: number, all: Typist[]): Promise<{ typists: Typist[]; openMs: number }> {
  const typists: Typist[] = [];
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(OPEN_CONCURRENCY, n) }, async () => {
      while (next < n) {
        next++;
        const typist = await openTypist(t);
        typists.push(typist);
        all.push(typist);
      }
    }),
  );
  return { typists, openMs: performance.now() - start };
}

/** Every session types for `seconds`; returns the echo latencies (ms, sorted) and the number of lost keys. */
async function typeAll(
  typists: Typist[],
  keystrokeMs: number,
  seconds: number,
): Promise<{ ms: number[]; lost: number }> {
  const ms: number[] = [];
  let lost = 0;
  const end = performance.now() + seconds * 1000;
  const keys = 'abcdefghijklmnopqrstuvwyz'; // not 'x', the probe
  await Promise.all(
    typists.map(async ({ stream }, i) => {
      // A random phase, so the sessions do not type in lockstep.
      await new Promise((r) => setTimeout(r, Math.random() * keystrokeMs));
      for (let k = i; performance.now() < end; k++) {
        const t0 = performance.now();
        try {
          await keystroke(stream, keys[k % keys.length]!, ECHO_TIMEOUT_MS);
          ms.push(performance.now() - t0);
        } catch {
          lost++;
        }
        await new Promise((r) => setTimeout(r, keystrokeMs * (0.5 + Math.random())));
      }
    }),
  );
  return { ms: ms.sort((a, b) => a - b), lost };
}

async function closeAll(typists: Typist[]): Promise<void> {
  await Promise.all(
    typists.map(
      ({ client, stream }) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5_000);
          client.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          stream.close();
          client.end();
        }),
    ),
  );
}

interface SideResult {
  p50: number;
  p99: number;
  samples: number;
  lost: number;
  openMs: number;
  /** Server-side CPU milliseconds per keystroke (treecpu.ts). */
  cpuMsPerKey: number;
}

/** Typing goes in this many rounds per side, alternating ABBA, so a change in the machine's load hits both. */
const ROUNDS = 4;

async function measureBoth(
  targets: { ward: SessionTarget; sshd: SessionTarget },
  pids: { ward: number; sshd: number },
  opts: InteractiveOptions,
): Promise<{ ward: SideResult; sshd: SideResult }> {
  const open: Partial<Record<'ward' | 'sshd', { typists: Typist[]; openMs: number }>> = {};
  const opened: Typist[] = [];
  try {
    open.ward = await openAll(targets.ward, opts.sessions, opened);
    open.sshd = await openAll(targets.sshd, opts.sessions, opened);
    const samples = { ward: [] as number[], sshd: [] as number[] };
    const lost = { ward: 0, sshd: 0 };
    const cpu = { ward: 0, sshd: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['ward', 'sshd'] as const) : (['sshd', 'ward'] as const);
      for (const side of order) {
        // The session processes live through the typing, so one reading a second loses nothing.
        const sampler = sampleTreeCpu(pids[side], 1000);
        const r = await typeAll(open[side]!.typists, opts.keystrokeMs, opts.seconds / ROUNDS);
        cpu[side] += sampler.stop();
        samples[side].push(...r.ms);
        lost[side] += r.lost;
      }
    }
    const side = (name: 'ward' | 'sshd'): SideResult => {
      const ms = samples[name].sort((a, b) => a - b);
      const r = {
        p50: percentile(ms, 50),
        p99: percentile(ms, 99),
        samples: ms.length,
        lost: lost[name],
        openMs: open[name]!.openMs,
        cpuMsPerKey: (cpu[name] * 1000) / Math.max(1, ms.length),
      };
      console.log(
        `interactive: ${name}: ${opts.sessions} sessions open in ${(r.openMs / 1000).toFixed(1)} s; ${ms.length} ` +
          `keystrokes, ` +
          `echo p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, lost ${r.lost}; server CPU ` +
          `${r.cpuMsPerKey.toFixed(3)} ms per keystroke`,
      );
      return r;
    };
    return { ward: side('ward'), sshd: side('sshd') };
  } finally {
    await closeAll(opened);
  }
}

export async function benchInteractive(opts: InteractiveOptions): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-interactive-'));
  mkdirSync(join(dir, 'ward'));
  mkdirSync(join(dir, 'sshd'));
  let ward: Awaited<ReturnType<typeof startWard>> | undefined;
  let sshd: Awaited<ReturnType<typeof startSshd>> | undefined;
  try {
    ward = await startWard(join(dir, 'ward'), opts.wardNodeFlags);
    sshd = await startSshd(join(dir, 'sshd'));
    const w = ward;
    const s = sshd;
    const read = (name: string) => readFileSync(join(w.keys, name), 'utf8');
    const identity = {
      keyPem: read('tls.key'),
      certPem: read('tls.crt'),
      caPems: read('cas.pem').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [],
    };
    const wardTarget: SessionTarget = {
      dial: (signal) => dialNode(w.proxy, identity, w.nodeName, 22, signal),
      login: BENCH_LOGIN,
      privateKey: read('id'),
      certificate: parseAuthorizedKey(read('id-cert.pub')).blob,
      hostVerifier: hostCertVerifier(read('known_hosts').split('\n'), w.nodeName),
      hostKeyAlgorithms: [`ssh-ed25519${CERT_SUFFIX}`],
    };
    const sshdTarget: SessionTarget = {
      dial: () =>
        new Promise((resolve, reject) => {
          const sock = net.connect({ host: '127.0.0.1', port: s.port });
          sock.setNoDelay(true);
          sock.once('connect', () => resolve(sock));
          sock.once('error', reject);
        }),
      login: BENCH_LOGIN,
      privateKey: readFileSync(s.keyPath, 'utf8'),
      hostVerifier: (key) => key.toString('base64') === s.hostKey,
    };
    const { ward: wr, sshd: rr } = await measureBoth(
      { ward: wardTarget, sshd: sshdTarget },
      { ward: w.target.serverPid, sshd: s.target.serverPid },
      opts,
    );
    const note =
      `${opts.sessions} concurrent PTY sessions (ssh2 client in the bench process, remote "${REMOTE}"), one key ` +
      `per session every ` +
      `~${opts.keystrokeMs} ms for ${opts.seconds} s per side in ${ROUNDS} alternating rounds (both sets of ` +
      `sessions open throughout); ward: ${wr.samples} keystrokes, ${wr.lost} lost, sessions opened in ` +
      `${(wr.openMs / 1000).toFixed(1)} s ` +
      `through one proxy; sshd: ${rr.samples} keystrokes, ${rr.lost} lost, opened in ` +
      `${(rr.openMs / 1000).toFixed(1)} s`;
    // A latency: the ratio is reference / ward, so above 1 still means Ward is faster.
    const lat = (name: string, wv: number, rv: number): BenchResult => ({
      ...result(name, wv, rv, 'ms', note),
      ratio: Math.round((rv / wv) * 100) / 100,
    });
    return [
      lat(`interactive echo p50, ${opts.sessions} sessions`, wr.p50, rr.p50),
      lat(`interactive echo p99, ${opts.sessions} sessions`, wr.p99, rr.p99),
      // A cost, like a latency: reference / ward.
      {
        ...result(
          `interactive server CPU per keystroke, ${opts.sessions} sessions`,
          wr.cpuMsPerKey * 1000,
          rr.cpuMsPerKey * 1000,
          'us',
          'user+system CPU of the ward process tree (proxy + node + PTY children) vs the sshd tree (listener, ' +
            'per-connection sshd, cat), during typing, per keystroke echoed; ratio = sshd / ward',
        ),
        ratio: Math.round((rr.cpuMsPerKey / wr.cpuMsPerKey) * 100) / 100,
      },
    ];
  } finally {
    sshd?.stop();
    await ward?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function interactiveOptions(argv: string[]): InteractiveOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: {
      sessions: { type: 'string' },
      'keystroke-ms': { type: 'string' },
      seconds: { type: 'string' },
      'ward-node-flags': { type: 'string' },
    },
  });
  return {
    sessions: Number(values.sessions ?? 200),
    keystrokeMs: Number(values['keystroke-ms'] ?? 200),
    seconds: Number(values.seconds ?? 10),
    wardNodeFlags: String(values['ward-node-flags'] ?? '')
      .split(' ')
      .filter(Boolean),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { printTable } = await import('./result.ts');
  printTable(await benchInteractive(interactiveOptions(process.argv.slice(2))));
}
