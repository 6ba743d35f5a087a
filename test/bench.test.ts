// End to end: `wsh bench` against a real cluster (ward start with its home-lab node), through the proxy's
// ward-proxy-ssh route, as a logged-in user. Checks that the figures it prints are consistent with the
// run it was asked for, that a refused login is counted as failed sessions with a non-zero exit, and
// that bad input is one line of error before any session starts.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { cleanup, errorLines, startCluster, type Cluster, type RunResult } from './harness.ts';

let cluster: Cluster;
let wshHome: string;
/** The home-lab node's name: the machine's host name, as `ward start` chose it. */
const node = hostname().split('.')[0]!;

before(async () => {
  cluster = await startCluster({ node: true });
  const password = 'bench-test password 1';
  const added = await cluster.wctl(
    ['users', 'add', 'bencher', '--roles', 'access', '--logins', 'root', '--password-stdin'],
    { stdin: `${password}\n` },
  );
  assert.equal(added.code, 0, added.stderr);
  wshHome = cluster.newWshHome();
  const login = await cluster.wsh(
    wshHome,
    ['login', '--proxy', cluster.proxyAddr, '--user', 'bencher', '--password-stdin', '--ca-pin', cluster.caPin],
    { stdin: `${password}\n` },
  );
  assert.equal(login.code, 0, login.stderr);
});
after(cleanup);

const bench = (args: string[]) => cluster.wsh(wshHome, ['bench', ...args], { timeoutMs: 90_000 });

interface Figures {
  started: number;
  succeeded: number;
  failed: number;
  rate: number;
  /** p50, p90, p99, max in ms; NaN when no session succeeded. */
  p: Record<'p50' | 'p90' | 'p99' | 'max', number>;
  errors: string;
}

function figures(r: RunResult): Figures {
  const num = (re: RegExp) => {
    const m = re.exec(r.stdout);
    assert.ok(m, `no ${re} in:\n${r.stdout}\n${r.stderr}`);
    return Number(m[1]);
  };
  const pct = (name: string) => {
    const m = new RegExp(`^${name} +(\\S+)`, 'm').exec(r.stdout);
    assert.ok(m, `no ${name} row in:\n${r.stdout}`);
    return m[1] === '-' ? NaN : Number(m[1]);
  };
  return {
    started: num(/Sessions started: +(\d+)/),
    succeeded: num(/Sessions succeeded: +(\d+)/),
    failed: num(/Sessions failed: +(\d+)/),
    rate: num(/Rate achieved: +([\d.]+)\/s/),
    p: { p50: pct('p50'), p90: pct('p90'), p99: pct('p99'), max: pct('max') },
    errors: r.stdout.split('\nErrors:\n')[1] ?? '',
  };
}

describe('wsh bench', () => {
  it('opens sessions at the asked rate through the proxy and prints ordered, plausible percentiles', async () => {
    const t0 = Date.now();
    const r = await bench(['--rate', '5', '--duration', '2s', `root@${node}`]);
    const wall = Date.now() - t0;
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const f = figures(r);
    assert.equal(f.started, 10, '5/s for 2 s is 10 sessions');
    assert.equal(f.succeeded, 10);
    assert.equal(f.failed, 0);
    assert.equal(f.errors, '');
    // Open loop: the sessions start on schedule, so the rate is what was asked (timers may run a little late).
    assert.ok(f.rate > 4 && f.rate <= 5.2, `rate ${f.rate}`);
    const { p50, p90, p99, max } = f.p;
    assert.ok(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max, JSON.stringify(f.p));
    // A session is a TLS dial, SSH key exchange, certificate login and an exec: it takes some milliseconds,
    // and none can take longer than the whole command did.
    assert.ok(p50 >= 1, `p50 ${p50} ms is too fast to be a real session`);
    assert.ok(max < wall, `max ${max} ms exceeds the command's ${wall} ms`);
  });

  it('runs an interactive shell on a PTY with --interactive', async () => {
    const r = await bench(['--rate', '4', '--duration', '1s', '--interactive', `root@${node}`, 'echo typed']);
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const f = figures(r);
    assert.equal(f.started, 4);
    assert.equal(f.succeeded, 4);
    assert.match(r.stdout, /interactive shell \(PTY\)/);
  });

  it('counts sessions the node refuses as failed and exits non-zero', async () => {
    // The node is visible to the user, but their certificate does not carry this login.
    const r = await bench(['--rate', '5', '--duration', '1s', `nobody@${node}`]);
    assert.equal(r.code, 1, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const f = figures(r);
    assert.equal(f.started, 5);
    assert.equal(f.failed, 5);
    assert.equal(f.succeeded, 0);
    assert.ok(Number.isNaN(f.p.p50), 'no latency for failed sessions');
    assert.match(f.errors, /^ +5 x access denied: the node refused login "nobody"$/m);
  });

  it('counts a command that fails as a failed session', async () => {
    const r = await bench(['--rate', '2', '--duration', '1s', `root@${node}`, 'exit 3']);
    assert.equal(r.code, 1);
    assert.match(figures(r).errors, /2 x exit status 3/);
  });

  for (const [what, args, message] of [
    ['a bad duration', ['--duration', '10parsecs', `root@${node}`], /^ERROR: invalid duration "10parsecs"/],
    ['a bad rate', ['--rate', 'fast', `root@${node}`], /^ERROR: invalid rate "fast"/],
    ['no login', [node], /^ERROR: "[^"]+" names no login: use login@node/],
    ['an unknown node', ['--duration', '1s', 'root@no-such-node'], /^ERROR: node "no-such-node" not found/],
  ] as const) {
    it(`refuses ${what} with one line and no session`, async () => {
      const r = await bench([...args]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      const lines = errorLines(r).filter((l) => !l.startsWith('wsh bench:'));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, message);
    });
  }

  it('explains itself in --help', async () => {
    const r = await bench(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: wsh bench \[options\] <login@node> \[command\.\.\.\]/);
    assert.match(r.stdout, /--rate <n>/);
    assert.match(r.stdout, /--duration <d>/);
    assert.match(r.stdout, /--interactive/);
    assert.match(r.stdout, /mutual TLS to the proxy/);
  });
});
