import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { ConnectionProblem, StorageUnavailable } from '../api/errors.ts';
import { startPostgres, type PostgresServer } from '../../test/fixtures/postgres.ts';
import { PostgresBackend } from './postgres.ts';
import { runBackendConformance, type Store } from './conformance.ts';

let server: Promise<PostgresServer> | undefined;
const connStrings = new WeakMap<Store, string>();
let schemas = 0;

/**
 * A fresh schema on the shared throwaway server, so every test starts empty; the backend finds it
 * through search_path in the connection string (CREATE DATABASE would cost ~250 ms per test).
 */
async function freshDatabase(): Promise<string> {
  server ??= startPostgres();
  const { connString } = await server;
  const schema = `ward_test_${++schemas}`;
  const admin = new pg.Client({ connectionString: connString });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  const url = new URL(connString);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function openOn(connString: string, watchBufferSize?: number): Promise<Store> {
  const b = await PostgresBackend.open({ connString, pollIntervalMs: 200, sweepIntervalMs: 100, watchBufferSize });
  connStrings.set(b, connString);
  return b;
}

runBackendConformance(
  'postgres',
  async (opts) => openOn(await freshDatabase(), opts?.watchBufferSize),
  undefined,
  // Peers are separate PostgresBackend instances (own pools, own LISTEN) on the same database.
  { openPeer: (of) => openOn(connStrings.get(of)!) },
);

describe('PostgresBackend', () => {
  after(async () => {
    if (server) await (await server).stop();
  });

  it('lets several auth servers create the schema at once', async () => {
    const connString = await freshDatabase();
    const backends = await Promise.all(Array.from({ length: 6 }, () => openOn(connString)));
    await backends[0]!.put({ key: '/k', value: 'v' });
    assert.equal((await backends[5]!.get('/k')).value, 'v');
    await Promise.all(backends.map((b) => b.close()));
  });

  it('delivers events written by another instance even without NOTIFY, by polling', async () => {
    const connString = await freshDatabase();
    const a = await openOn(connString);
    const raw = new pg.Client({ connectionString: connString });
    await raw.connect();
    try {
      const it = a.watch(['/x/'])[Symbol.asyncIterator]();
      assert.equal((await it.next()).value?.type, 'init');
      // An event appended without NOTIFY, as if the notification had been lost.
      await raw.query(`INSERT INTO item_events (key, type, value, revision) VALUES ('/x/1', 'put', 'v', 1)`);
      const ev = await it.next();
      assert.deepEqual(ev.value, { type: 'put', item: { key: '/x/1', value: 'v', revision: '1' } });
    } finally {
      await raw.end();
      await a.close();
    }
  });

  it('ends watchers and fails calls with ConnectionProblem when the database goes away', async () => {
    const own = await startPostgres(); // its own server: this test stops it
    let stopped = false;
    const b = await PostgresBackend.open({ connString: own.connString, pollIntervalMs: 100 });
    try {
      const it = b.watch([''])[Symbol.asyncIterator]();
      assert.equal((await it.next()).value?.type, 'init');
      await own.stop();
      stopped = true;
      await assert.rejects(it.next(), ConnectionProblem);
      await assert.rejects(
        b.get('/k'),
        (err: Error) => err instanceof ConnectionProblem && !err.message.includes('\n'),
      );
    } finally {
      await b.close();
      if (!stopped) await own.stop();
    }
  });

  it('reports an unreachable database as a one-line StorageUnavailable without the password', async () => {
    const connString = 'postgres://ward:s3cret@127.0.0.1:1/ward';
    await assert.rejects(PostgresBackend.open({ connString }), (err: Error) => {
      assert.ok(err instanceof StorageUnavailable && err instanceof ConnectionProblem, String(err));
      assert.equal(err.code, 'ERR_STORAGE_UNAVAILABLE');
      assert.match(err.message, /127\.0\.0\.1:1\/ward/);
      assert.ok(!err.message.includes('s3cret') && !err.message.includes('\n'), err.message);
      return true;
    });
  });

  it("reports a database that refuses Ward's login, or a host that is not there, as StorageUnavailable", async () => {
    const { connString } = await (server ??= startPostgres());
    // The throwaway server trusts every local login; a role that does not exist is refused all the same (28000).
    const noRole = new URL(connString);
    noRole.username = 'no_such_role';
    const unavailable = (err: Error) => err instanceof StorageUnavailable && !err.message.includes('\n');
    await assert.rejects(PostgresBackend.open({ connString: noRole.toString() }), unavailable);
    const noHost = new URL(connString);
    noHost.hostname = 'no-such-host.invalid';
    await assert.rejects(PostgresBackend.open({ connString: noHost.toString() }), unavailable);
  });
});
