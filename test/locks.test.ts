// End to end: locks (`wctl lock`). A lock on a user, a role or a node refuses new certificates and
// connections at once and ends the target's live sessions within seconds, with the admin's message,
// through the watch stream that feeds every proxy's and node's cache; unlocking or the TTL lifts it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYAML } from 'yaml';
import {
  cleanup,
  delay,
  makeTempDir,
  poll,
  run,
  startAgent,
  startCluster,
  type Cluster,
  type RunResult,
} from './harness.ts';
import { addUser as addTestUser, ok, wshLogin, type TestUser as User } from './users.ts';
import { killTerminals, Terminal } from './terminal.ts';

let main: Cluster;
let work: string;
let home: string;
const users: Record<string, User> = {};

async function addUser(name: string, roles: string): Promise<User> {
  users[name] = await addTestUser(main, work, name, roles);
  return users[name]!;
}

function login(wshHome: string, name: string, password: string): Promise<RunResult> {
  return wshLogin(main, { wshHome, name, password });
}

const ssh = (u: User, node: string, command = 'true') =>
  run('ssh', ['-F', u.cfg, `root@${node}`, command], { env: { WSH_HOME: u.wshHome } });
const terminal = (u: User, node: string) =>
  new Terminal('ssh', ['-F', u.cfg, '-tt', `root@${node}`], { WSH_HOME: u.wshHome });

async function lock(args: string[]): Promise<string> {
  const out = ok(await main.wctl(['lock', ...args]));
  return /Lock id: (\S+)/.exec(out)![1]!;
}

/** An open shell, proven live by a command's output. */
async function openShell(u: User, node: string): Promise<Terminal> {
  const t = terminal(u, node);
  t.type('echo shell-up-$((40+2))\n');
  await t.waitFor(/shell-up-42/);
  return t;
}

async function events(type: string): Promise<Array<Record<string, unknown>>> {
  const out = ok(await main.wctl(['events', '--format', 'json', '--type', type, '--limit', '1000']));
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

before(async () => {
  work = makeTempDir('ward-e2e-locks-');
  main = await startCluster({ node: true });
  home = JSON.parse(readFileSync(join(main.dataDir, 'node', 'identity.json'), 'utf8')).hostname as string;
  await main.adminClient().upsertResource({
    resource: {
      json: JSON.stringify(
        parseYAML(
          'kind: role\nversion: v1\nmetadata: {name: ops}\nspec:\n  allow:\n    logins: [root]\n    node_labels: ' +
            '{"*": "*"}\n',
        ),
      ),
    },
    overwrite: false,
  });
  await Promise.all([addUser('alice', 'access'), addUser('bob', 'access,ops')]);
  await startAgent(main, 'other', ['--tunnel']);
  for (const node of [home, 'other'])
    await poll(
      `the proxy to reach ${node}`,
      async () => ((await ssh(users.alice!, node)).code === 0 ? true : undefined),
      20_000,
      200,
    );
});

after(async () => {
  killTerminals();
  await cleanup();
});

describe('locks', () => {
  it(
    "ends a locked user's live session within 5 s with the message, " +
      'and refuses them everything new until unlocked',
    async () => {
      const alice = users.alice!;
      const shell = await openShell(alice, home);
      const bobShell = await openShell(users.bob!, home);
      const t0 = Date.now();
      const id = await lock(['--user', 'alice', '--message', 'incident 42: call security']);
      const code = await shell.exited;
      const took = Date.now() - t0;
      assert.ok(took < 5_000, `the session ended ${took} ms after the lock`);
      assert.notEqual(code, 0);
      assert.match(
        shell.output.toString(),
        /user "alice" is locked: incident 42: call security; this session is ended/,
      );

      const again = await ssh(alice, home);
      assert.equal(again.code, 255, 'a new connection is refused');
      assert.match(again.stderr, /locked/);
      const relogin = await login(alice.wshHome, 'alice', alice.password);
      assert.equal(relogin.code, 1);
      assert.match(relogin.stderr, /locked: incident 42/);
      const ls = await main.wsh(alice.wshHome, ['ls']);
      assert.equal(ls.code, 1, 'API calls with the certificate she still holds are refused');
      assert.match(ls.stderr, /user "alice" is locked/);

      bobShell.type('echo bob-still-here\n');
      await bobShell.waitFor(/bob-still-here/, "bob's session going on");
      assert.equal((await ssh(users.bob!, home)).code, 0, 'others are not affected');

      const listed = ok(await main.wctl(['locks', 'ls']));
      assert.match(listed, new RegExp(`${id}.*user=alice.*incident 42`));
      ok(await main.wctl(['unlock', id]));
      await poll(
        'alice to get in again',
        async () => ((await ssh(alice, home)).code === 0 ? true : undefined),
        5_000,
        100,
      );
      ok(await login(alice.wshHome, 'alice', alice.password));
      assert.equal(await bobShell.exit(), 0);

      const created = (await events('lock.created')).find((e) => e.name === id);
      assert.deepEqual(created?.target, { user: 'alice' });
      assert.ok((await events('lock.deleted')).some((e) => e.name === id));
      assert.ok(
        (await events('session.terminated')).some((e) => e.user === 'alice' && /incident 42/.test(String(e.reason))),
      );
    },
  );

  it('locks everyone holding a role, and nobody else', async () => {
    const bobShell = await openShell(users.bob!, home);
    const id = await lock(['--role', 'ops']);
    await bobShell.exited;
    assert.match(bobShell.output.toString(), /role "ops" is locked/);
    assert.equal((await ssh(users.bob!, home)).code, 255);
    assert.equal((await ssh(users.alice!, home)).code, 0);
    ok(await main.wctl(['unlock', id]));
    await poll(
      'bob to get in again',
      async () => ((await ssh(users.bob!, home)).code === 0 ? true : undefined),
      5_000,
      100,
    );
  });

  it('locks a node: its sessions end and the proxy routes nobody to it; other nodes go on', async () => {
    const onOther = await openShell(users.bob!, 'other');
    const onHome = await openShell(users.alice!, home);
    const id = await lock(['--node', 'other', '--message', 'maintenance']);
    await onOther.exited;
    assert.match(onOther.output.toString(), /node "other" is locked: maintenance/);
    const refused = await ssh(users.alice!, 'other');
    assert.equal(refused.code, 255);
    assert.match(refused.stderr, /node "other" is locked: maintenance/, 'the proxy says why');
    onHome.type('echo home-fine\n');
    await onHome.waitFor(/home-fine/);
    ok(await main.wctl(['unlock', id]));
    await poll(
      'other to be reachable again',
      async () => ((await ssh(users.alice!, 'other')).code === 0 ? true : undefined),
      5_000,
      100,
    );
    assert.equal(await onHome.exit(), 0);
  });

  // An account lock (`locked_until`, written by an admin) is the same check as a lock, at the node, the proxy and the
  // auth server alike (rbac/identity.ts): it ends the user's live sessions too, with the same one line everywhere.
  it('ends a live session when an admin locks the account, and answers alike at node, proxy and API', async () => {
    const carol = await addUser('carol', 'access');
    const shell = await openShell(carol, home);
    const aliceShell = await openShell(users.alice!, home);
    const doc = parseYAML(ok(await main.wctl(['get', 'users', 'carol']))) as { spec: Record<string, unknown> };
    const lockedUntil = (until: string | undefined) => {
      const user = { ...doc, spec: { ...doc.spec, locked_until: until } };
      return main.wctl(['create', '--force', '-f', '-'], { stdin: JSON.stringify(user) });
    };
    ok(await lockedUntil(new Date(Date.now() + 3_600_000).toISOString()));
    const ended = await Promise.race([shell.exited.then(() => true), delay(5_000).then(() => false)]);
    assert.ok(ended, 'the node ended the live session within 5 s of the account lock');
    assert.match(shell.output.toString(), /user "carol" is locked; this session is ended/);
    const again = await ssh(carol, home);
    assert.equal(again.code, 255, 'a new connection is refused');
    assert.match(again.stderr, /user "carol" is locked/, 'the proxy says why');
    const ls = await main.wsh(carol.wshHome, ['ls']);
    assert.equal(ls.code, 1, 'API calls with the certificate she still holds are refused');
    assert.match(ls.stderr, /user "carol" is locked/);

    aliceShell.type('echo alice-still-here\n');
    await aliceShell.waitFor(/alice-still-here/, "alice's session going on");
    ok(await lockedUntil(undefined));
    const back = async () => ((await ssh(carol, home)).code === 0 ? true : undefined);
    await poll('carol to get in again', back, 5_000, 100);
    assert.equal(await aliceShell.exit(), 0);
  });

  it('lifts itself after --ttl', async () => {
    const t0 = Date.now();
    await lock(['--user', 'alice', '--ttl', '8s']);
    // The lock reaches the node through the watch stream: refused as soon as it is there...
    await poll(
      'the lock to reach the node',
      async () => ((await ssh(users.alice!, home)).code === 255 ? true : undefined),
      5_000,
      100,
    );
    // ...and let in again once it expires, with nobody lifting it.
    await poll(
      'the lock to expire',
      async () => ((await ssh(users.alice!, home)).code === 0 ? true : undefined),
      20_000,
      200,
    );
    assert.ok(Date.now() - t0 >= 7_000, 'not before its time');
    assert.match(ok(await main.wctl(['locks', 'ls'])), /no locks/);
  });

  it('says what is wrong with a lock command', async () => {
    const two = await main.wctl(['lock', '--user', 'alice', '--node', 'other']);
    assert.equal(two.code, 1);
    assert.match(two.stderr, /exactly one of --user, --role, --node/);
    const bad = await main.wctl(['lock', '--user', 'alice', '--ttl', 'soon']);
    assert.equal(bad.code, 1);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
    const unknown = await main.wctl(['unlock', '00000000-0000-4000-8000-000000000000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /not found/);
  });
});
