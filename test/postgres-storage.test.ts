// ward on PostgreSQL: two auth servers (each with its proxy) on one database share the cluster's CAs,
// users and audit log, so either one can log a user in. And a database that is down is one clear line.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type PostgresServer } from './fixtures/postgres.ts';
import { Cluster, cleanup, errorLines, makeTempDir, poll, startAgent, ward } from './harness.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

let pg: PostgresServer;

const config = (connString: string) => `version: v1
auth_service:
  cluster_name: pg-e2e
  listen_addr: 127.0.0.1:0
  storage:
    type: postgres
    conn_string: "${connString}"
proxy_service:
  listen_addr: 127.0.0.1:0
ssh_service:
  enabled: false
`;

before(async () => {
  pg = await startPostgres();
});
after(async () => {
  await cleanup();
  await pg?.stop();
});

describe('auth servers on PostgreSQL', () => {
  it('share CAs and users, and either proxy logs the user in', async () => {
    const a = new Cluster({ config: config(pg.connString) });
    const b = new Cluster({ config: config(pg.connString) });
    await Promise.all([a.start(), b.start()]); // started together: exactly one creates the CAs
    assert.equal(a.caPin, b.caPin);
    const statusA = await a.wctl(['status']);
    const statusB = await b.wctl(['status']);
    assert.equal(statusA.stdout, statusB.stdout);
    assert.match(statusA.stdout, /Backend: +postgres/);

    const add = await a.wctl(['users', 'add', 'alice', '--roles', 'access', '--logins', 'root', '--password-stdin'], {
      stdin: 'a long password\n',
    });
    assert.equal(add.code, 0, add.stderr);
    const home = b.newWshHome();
    const login = await b.wsh(
      home,
      ['login', '--proxy', b.proxyAddr, '--user', 'alice', '--password-stdin', '--ca-pin', b.caPin],
      { stdin: 'a long password\n' },
    );
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /cluster "pg-e2e"/);

    // The login that went through b is in the audit log that a reads.
    const events = await a.adminClient().searchEvents({ types: ['user.login'], user: 'alice' });
    assert.equal(events.events.length, 1);
    assert.equal(JSON.parse(events.events[0]!).success, true);

    // A node joined through proxy a keeps a reverse tunnel to every proxy of the cluster, so a user
    // who comes in through proxy b reaches it too.
    const proxies = await a.wctl(['get', 'proxies', '--format', 'json']);
    assert.equal(JSON.parse(proxies.stdout).length, 2, proxies.stdout);
    const agent = await startAgent(a, 'tunnelled', ['--tunnel']);
    let last = '';
    const viaB = await poll(
      'the node to be reachable through proxy b',
      async () => {
        const r = await b.wsh(home, ['ssh', 'root@tunnelled', 'echo reached']);
        last = r.stderr;
        return r.code === 0 ? r.stdout : undefined;
      },
      20_000,
      250,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nlast wsh stderr: ${last}\nagent log: ${agent.log.slice(-3000)}`);
    });
    assert.equal(viaB, 'reached\n');
    await agent.stop();

    // State survives a restart of both.
    await a.stop();
    await b.restart();
    const users = await b.wctl(['users', 'ls']);
    assert.match(users.stdout, /alice/);
  });

  it("refuses to start with one clear line when the database is down or refuses Ward's login", async () => {
    const startOn = async (connString: string) => {
      const dir = makeTempDir();
      const path = join(dir, 'ward.yaml');
      writeFileSync(path, config(connString));
      const r = await ward(['start', '-c', path, '-d', join(dir, 'data')], { timeoutMs: 30_000 });
      assert.notEqual(r.code, 0);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      const lines = errorLines(r);
      assert.equal(lines.length, 1, r.stderr);
      return lines[0]!;
    };
    const down = await startOn('postgres://ward@127.0.0.1:1/ward');
    const unreachable = 'PostgreSQL 127.0.0.1:1/ward: connect ECONNREFUSED 127.0.0.1:1';
    assert.equal(down, `ERROR: cannot reach the backend: ${unreachable}`);
    // Up, but it will not let this role in (SQLSTATE 28000): to Ward, as unreachable as a closed port.
    const url = new URL(pg.connString);
    url.username = 'no_such_role';
    const refused = await startOn(url.toString());
    assert.match(refused, /^ERROR: cannot reach the backend: PostgreSQL .*: role "no_such_role" does not exist$/);
  });
});
