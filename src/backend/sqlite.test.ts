import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadParameter, ConnectionProblem, NotFound, StorageLocked } from '../api/errors.ts';
import { FakeClock } from '../time/clock.ts';
import Database from 'better-sqlite3';
import { SqliteBackend } from './sqlite.ts';
import { runBackendConformance } from './conformance.ts';

const conformanceDir = mkdtempSync(join(tmpdir(), 'ward-sqlite-'));
let n = 0;

runBackendConformance(
  'sqlite',
  async (opts) => SqliteBackend.open({ path: join(conformanceDir, `c${++n}.db`), sweepIntervalMs: 50, ...opts }),
  async () => rmSync(conformanceDir, { recursive: true, force: true }),
);

const dir = mkdtempSync(join(tmpdir(), 'ward-sqlite-'));

describe('SqliteBackend', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a file that is not a database, naming the path in one line', () => {
    const path = join(dir, 'garbage.db');
    writeFileSync(path, 'this is not a database, just some text that is long enough to have a header'.repeat(100));
    assert.throws(
      () => SqliteBackend.open({ path }),
      (err: Error) => err instanceof BadParameter && err.message.includes(path) && !err.message.includes('\n'),
    );
  });

  it('reports an unopenable path as a connection problem', () => {
    const path = join(dir, 'no-such-dir', 'x.db');
    assert.throws(
      () => SqliteBackend.open({ path }),
      (err: Error) => err instanceof ConnectionProblem && err.message.includes(path),
    );
  });

  it('creates the database readable by its owner only', async () => {
    const path = join(dir, 'private.db');
    const b = SqliteBackend.open({ path });
    await b.put({ key: '/k', value: 'v' });
    await b.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it('is opened by one auth server at a time, and still read by others while it is', async () => {
    const path = join(dir, 'owned.db');
    const first = SqliteBackend.open({ path });
    await first.put({ key: '/k', value: 'v' });
    assert.throws(
      () => SqliteBackend.open({ path }),
      (err: Error) =>
        err instanceof StorageLocked &&
        err instanceof ConnectionProblem &&
        err.code === 'ERR_STORAGE_LOCKED' &&
        err.message === `${path} is in use by another Ward auth server (SQLite serves one; run several on PostgreSQL)`,
    );
    // A reader of the database itself (sqlite3, a backup) is not blocked by the hold.
    const reader = new Database(path, { readonly: true });
    assert.equal(reader.prepare(`SELECT value FROM items WHERE key = '/k'`).pluck().get(), 'v');
    reader.close();
    await first.close();
    const second = SqliteBackend.open({ path });
    assert.equal((await second.get('/k')).value, 'v');
    await second.close();
  });

  it('keeps items and keeps revisions rising across a restart', async () => {
    const path = join(dir, 'restart.db');
    const first = SqliteBackend.open({ path });
    await first.put({ key: '/a', value: '1' });
    const last = await first.put({ key: '/b', value: '1' });
    await first.delete('/b');
    await first.close();
    const second = SqliteBackend.open({ path });
    assert.equal((await second.get('/a')).value, '1');
    const next = await second.put({ key: '/c', value: '1' });
    assert.ok(BigInt(next.revision) > BigInt(last.revision));
    await second.close();
  });

  it('expires and sweeps by the injected clock', async () => {
    const clock = new FakeClock();
    const b = SqliteBackend.open({ path: ':memory:', clock, sweepIntervalMs: 60_000 });
    const it = b.watch([''])[Symbol.asyncIterator]();
    await b.put({ key: '/x', value: 'v', expires: new Date(clock.now().getTime() + 1_000) });
    clock.advance(1_000);
    await assert.rejects(b.get('/x'), NotFound);
    b.sweep();
    const events = [await it.next(), await it.next(), await it.next()].map((r) => r.value?.type);
    assert.deepEqual(events, ['init', 'put', 'delete']);
    await b.close();
    await assert.rejects(b.get('/x'), ConnectionProblem);
  });
});
