// The cluster every hostile-input test file attacks: `ward start` with its home-lab node and one user,
// plus the check that it still serves real clients normally (wsh login, an SSH session through the
// proxy, an Auth API call through the proxy's pass-through).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { delay, startCluster, type Cluster, type ClusterOptions, type RunResult } from '../harness.ts';

export function ok(r: RunResult): string {
  assert.equal(
    r.code,
    0,
    `expected success, got exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
  );
  return r.stdout;
}

export interface Target {
  cluster: Cluster;
  user: string;
  password: string;
  /** The home-lab node's name, as `ward start` chose it (the machine's short host name). */
  node: string;
  /** A real user's round trip: log in, run a command on the node through the proxy, call the API. */
  assertServing(): Promise<void>;
}

export async function startTarget(options: ClusterOptions = {}): Promise<Target> {
  const cluster = await startCluster({ node: true, ...options });
  const user = 'alice';
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  ok(
    await cluster.wctl(['users', 'add', user, '--roles', 'access', '--logins', 'root', '--password-stdin'], {
      stdin: `${password}\n`,
    }),
  );
  const node = hostname().split('.')[0]!;
  const assertServing = async () => {
    const home = cluster.newWshHome();
    ok(
      await cluster.wsh(
        home,
        ['login', '--proxy', cluster.proxyAddr, '--user', user, '--password-stdin', '--ca-pin', cluster.caPin],
        { stdin: `${password}\n` },
      ),
    );
    const marker = randomBytes(6).toString('hex');
    assert.equal(ok(await cluster.wsh(home, ['ssh', `root@${node}`, `echo ${marker}`])).trim(), marker);
    const ping = await cluster.client(undefined, cluster.proxyAddr).ping({});
    assert.equal(ping.clusterName, cluster.clusterName);
  };
  // The proxy routes from its watch-fed node cache: the first round trip may come before the node is in it.
  for (let attempt = 1; ; attempt++) {
    try {
      await assertServing();
      break;
    } catch (err) {
      if (attempt >= 50) throw err;
      await delay(200);
    }
  }
  return { cluster, user, password, node, assertServing };
}
