// The default Auth Service storage: one SQLite file in WAL mode. Exactly one auth process opens it,
// so that process also owns the watch fan-out: changes reach watchers right after their transaction
// commits, in commit order. Audit events live in the same file, in their own table.

import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import {
  AlreadyExists,
  BadParameter,
  CompareFailed,
  ConnectionProblem,
  NotFound,
  StorageLocked,
  isWardError,
} from '../api/errors.ts';
import { systemClock, type Clock } from '../time/clock.ts';
import type { AuditEvent, Backend, EventQuery, EventStore, Item, ItemInput, Watcher } from './backend.ts';
import { WatchFanout, type Change } from './fanout.ts';
import { holdExclusiveLock, type FileLock } from '../files/filelock.ts';
import { auditFilter, auditRow, checkExpires, checkItem, checkKey, rangeLimit } from './validate.ts';

export interface SqliteOptions {
  /** File path, or ':memory:' for a throwaway store. */
  path: string;
  clock?: Clock;
  /** How often expired items are deleted (and their delete events sent). Default 1s. */
  sweepIntervalMs?: number;
  /** Events a watcher may fall behind before it is closed. Default 10,000. */
  watchBufferSize?: number;
}

// The revision is a global counter kept in `meta`, bumped inside each write transaction, so it stays
// monotonic across restarts even when the item holding the highest revision is deleted.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('schema', 1);
CREATE TABLE IF NOT EXISTS items (
  key TEXT PRIMARY KEY, value TEXT NOT NULL, revision INTEGER NOT NULL, expires INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_expires ON items (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit_events (
  id INTEGER PRIMARY KEY, time INTEGER NOT NULL, event TEXT NOT NULL, "user" TEXT, sid TEXT, json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time);
CREATE INDEX IF NOT EXISTS audit_events_event_time ON audit_events (event, time);
CREATE INDEX IF NOT EXISTS audit_events_user_time ON audit_events ("user", time);
CREATE INDEX IF NOT EXISTS audit_events_sid ON audit_events (sid);
`;

const LIVE = '(expires IS NULL OR expires > @now)';
// Prefix scans use `key >= prefix AND key < prefix||0xFF`: SQLite compares TEXT bytewise and 0xFF never
// occurs in UTF-8, so this is exactly "starts with prefix" and stays an index range scan.
const IN_RANGE = 'key >= @lo AND key < CAST(@hi AS TEXT)';
// The limit goes through a subquery. SQLite (3.53, as better-sqlite3 bundles it) plans with the value bound to a
// bare `LIMIT @limit`, so binding it, at every run, makes the statement be prepared again: an empty range read
// took ~5.5 us instead of ~1 us (a literal LIMIT or this form), and every certificate issuance reads the locks.
const LIMIT = 'LIMIT (SELECT @limit)';

interface Row {
  key: string;
  value: string;
  revision: number;
  expires: number | null;
}

function toItem(row: Row): Item {
  const item: Item = { key: row.key, value: row.value, revision: String(row.revision) };
  if (row.expires !== null) item.expires = new Date(row.expires);
  return item;
}

function range(prefix: string): { lo: string; hi: Buffer } {
  if (typeof prefix !== 'string') throw new BadParameter('prefix must be a string');
  return { lo: prefix, hi: Buffer.concat([Buffer.from(prefix, 'utf8'), Buffer.from([0xff])]) };
}

function openError(path: string, err: unknown): Error {
  const code = (err as { code?: unknown }).code;
  const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new BadParameter(`${path} is not a usable SQLite database (${reason})`);
  }
  return new ConnectionProblem(`cannot open SQLite database ${path}: ${reason}`);
}

function prepareStatements(db: Database.Database) {
  return {
    nextRevision: db.prepare(`UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value`).pluck(),
    get: db.prepare(`SELECT key, value, revision, expires FROM items WHERE key = @key AND ${LIVE}`),
    range: db.prepare(
      `SELECT key, value, revision, expires FROM items WHERE ${IN_RANGE} AND ${LIVE} ORDER BY key ${LIMIT}`,
    ),
    // The same range from just past `after`: a page seeks in the index instead of re-reading earlier pages.
    rangeAfter: db.prepare(
      `SELECT key, value, revision, expires FROM items WHERE ${IN_RANGE} AND key > @after AND ${LIVE} ORDER BY ` +
        `key ${LIMIT}`,
    ),
    upsert: db.prepare(
      `INSERT INTO items (key, value, revision, expires) VALUES (@key, @value, @revision, @expires)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision,
         expires = excluded.expires`,
    ),
    update: db.prepare(
      `UPDATE items SET value = @value, revision = @revision, expires = @expires WHERE key = @key AND ${LIVE}`,
    ),
    swap: db.prepare(
      `UPDATE items SET value = @value, revision = @revision, expires = @expires
       WHERE key = @key AND value = @expected AND ${LIVE}`,
    ),
    touch: db.prepare(
      `UPDATE items SET expires = @expires, revision = @revision WHERE key = @key AND ${LIVE}
       RETURNING key, value, revision, expires`,
    ),
    delete: db.prepare(`DELETE FROM items WHERE key = @key AND ${LIVE}`),
    rangeKeys: db.prepare(`SELECT key FROM items WHERE ${IN_RANGE} ORDER BY key`).pluck(),
    deleteRange: db.prepare(`DELETE FROM items WHERE ${IN_RANGE}`),
    expiredKeys: db.prepare(`SELECT key FROM items WHERE expires <= @now ORDER BY key`).pluck(),
    deleteExpired: db.prepare(`DELETE FROM items WHERE expires <= @now`),
    append: db.prepare(
      `INSERT INTO audit_events (time, event, "user", sid, json) VALUES (@time, @event, @user, @sid, @json)`,
    ),
  };
}

export class SqliteBackend implements Backend, EventStore {
  readonly kind = 'sqlite';
  private readonly fanout: WatchFanout;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  private readonly txn: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly s: ReturnType<typeof prepareStatements>;

  private constructor(
    private readonly db: Database.Database,
    private readonly ownerLock: FileLock | undefined,
    private readonly path: string,
    private readonly clock: Clock,
    sweepIntervalMs: number,
    watchBufferSize: number | undefined,
  ) {
    this.fanout = new WatchFanout(watchBufferSize);
    // IMMEDIATE takes the write lock up front, so a read-then-write transaction never has to upgrade
    // its lock (the upgrade is what fails with SQLITE_BUSY when another connection writes).
    this.txn = db.transaction((fn: () => unknown) => fn());
    this.s = prepareStatements(db);
    this.sweeper = setInterval(() => {
      // A failed sweep (e.g. SQLITE_BUSY) is simply retried on the next tick; expired items are
      // already invisible to reads, so a late sweep only delays their delete events.
      try {
        this.sweep();
      } catch {
        /* retried next tick */
      }
    }, sweepIntervalMs);
    this.sweeper.unref();
  }

  /** Opens (creating if needed) the database; throws BadParameter/ConnectionProblem naming the path. */
  static open(opts: SqliteOptions): SqliteBackend {
    let db: Database.Database | undefined;
    let ownerLock: FileLock | undefined;
    try {
      if (opts.path !== ':memory:') {
        // One auth server per file: its watchers see only the writes made in this process, so a second one on
        // the same file would serve stale caches (a lock written through one would not reach the other's proxies).
        const inUse =
          `${opts.path} is in use by another Ward auth server (SQLite serves one; run several on ` + `PostgreSQL)`;
        ownerLock = holdExclusiveLock(`${opts.path}.lock`, inUse, StorageLocked);
        // Create the file 0600 ourselves: SQLite would use the umask, and it holds CA material.
        // The -wal and -shm files inherit the database file's mode.
        try {
          closeSync(openSync(opts.path, 'wx', 0o600));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
      }
      db = new Database(opts.path);
      db.pragma('busy_timeout = 5000');
      // The first real read of the file: a non-database file fails here with SQLITE_NOTADB.
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a commit survives a process crash; only an OS crash or power loss can
      // lose the last few commits. Audit appends use the same setting (an fsync per event is not
      // worth it for a single auth server; HA deployments use PostgreSQL).
      db.pragma('synchronous = NORMAL');
      db.exec(SCHEMA);
    } catch (err) {
      db?.close();
      ownerLock?.release();
      if (isWardError(err)) throw err;
      throw openError(opts.path, err);
    }
    return new SqliteBackend(
      db,
      ownerLock,
      opts.path,
      opts.clock ?? systemClock,
      opts.sweepIntervalMs ?? 1000,
      opts.watchBufferSize,
    );
  }

  async get(key: string): Promise<Item> {
    checkKey(key);
    const row = this.run(() => this.s.get.get({ key, now: this.now() }) as Row | undefined);
    if (!row) throw new NotFound(`${key} not found`);
    return toItem(row);
  }

  async getRange(prefix: string, limit?: number, after?: string): Promise<Item[]> {
    const n = rangeLimit(limit);
    if (after !== undefined && typeof after !== 'string') throw new BadParameter('after must be a string');
    const rows = this.run(
      () =>
        (after === undefined
          ? this.s.range.all({ ...range(prefix), now: this.now(), limit: n })
          : this.s.rangeAfter.all({ ...range(prefix), after, now: this.now(), limit: n })) as Row[],
    );
    return rows.map(toItem);
  }

  async create(item: ItemInput): Promise<Item> {
    const expires = checkItem(item);
    return this.commit((now, changes) => {
      if (this.s.get.get({ key: item.key, now })) throw new AlreadyExists(`${item.key} already exists`);
      // The upsert also replaces an expired row the sweeper has not reached yet.
      return this.write(this.s.upsert, item, expires, changes)!; // an upsert always writes
    });
  }

  async put(item: ItemInput): Promise<Item> {
    const expires = checkItem(item);
    return this.commit((_now, changes) => this.write(this.s.upsert, item, expires, changes)!);
  }

  async update(item: ItemInput): Promise<Item> {
    const expires = checkItem(item);
    return this.commit((now, changes) => {
      const written = this.write(this.s.update, item, expires, changes, { now });
      if (!written) throw new NotFound(`${item.key} not found`);
      return written;
    });
  }

  async compareAndSwap(expected: Pick<Item, 'key' | 'value'>, replaceWith: ItemInput): Promise<Item> {
    const expires = checkItem(replaceWith);
    if (expected.key !== replaceWith.key) throw new BadParameter('compareAndSwap cannot change the key');
    return this.commit((now, changes) => {
      const written = this.write(this.s.swap, replaceWith, expires, changes, { now, expected: expected.value });
      if (written) return written;
      if (this.s.get.get({ key: expected.key, now })) throw new CompareFailed(`${expected.key} has changed`);
      throw new NotFound(`${expected.key} not found`);
    });
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    this.commit((now, changes) => {
      if (this.s.delete.run({ key, now }).changes === 0) throw new NotFound(`${key} not found`);
      changes.push({ type: 'delete', key });
    });
  }

  async deleteRange(prefix: string): Promise<void> {
    const bounds = range(prefix);
    // Expired rows in the range go too, with delete events: watchers saw their put, not yet their end.
    this.commit((_now, changes) => {
      const keys = this.s.rangeKeys.all(bounds) as string[];
      if (keys.length === 0) return;
      this.s.deleteRange.run(bounds);
      for (const key of keys) changes.push({ type: 'delete', key });
    });
  }

  async keepAlive(key: string, expires: Date): Promise<void> {
    checkKey(key);
    const ms = checkExpires(key, expires);
    this.commit((now, changes) => {
      const revision = this.s.nextRevision.get() as number;
      const row = this.s.touch.get({ key, now, expires: ms, revision }) as Row | undefined;
      if (!row) throw new NotFound(`${key} not found`);
      // A put event, so caches move the expiry too instead of dropping a live heartbeat.
      changes.push({ type: 'put', item: toItem(row) });
    });
  }

  watch(prefixes: string[]): Watcher {
    if (this.closed) throw new ConnectionProblem(`SQLite database ${this.path} is closed`);
    if (!Array.isArray(prefixes) || prefixes.some((p) => typeof p !== 'string')) {
      throw new BadParameter('watch prefixes must be strings');
    }
    // Writes emit synchronously after commit on this thread, so the watcher is current the moment
    // it is attached: 'init' can be sent right away.
    const w = this.fanout.create(prefixes);
    this.fanout.attach(w);
    return w;
  }

  async append(events: AuditEvent[]): Promise<void> {
    const rows = events.map(auditRow);
    if (rows.length === 0) return;
    this.run(() => this.inTx(() => rows.forEach((r) => this.s.append.run(r))));
  }

  async search(query: EventQuery): Promise<AuditEvent[]> {
    const f = auditFilter(query);
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: f.limit };
    if (f.from !== null) where.push('time >= @from'), (params.from = f.from);
    if (f.to !== null) where.push('time < @to'), (params.to = f.to);
    if (f.user !== null) where.push('"user" = @user'), (params.user = f.user);
    if (f.sid !== null) where.push('sid = @sid'), (params.sid = f.sid);
    if (f.types !== null) {
      where.push(`event IN (${f.types.map((_, i) => `@t${i}`).join(', ')})`);
      f.types.forEach((t, i) => (params[`t${i}`] = t));
    }
    const dir = f.desc ? 'DESC' : 'ASC';
    const sql = `SELECT json FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY time ${dir}, id ${dir} LIMIT @limit`;
    const rows = this.run(() => this.db.prepare(sql).pluck().all(params) as string[]);
    return rows.map((json) => JSON.parse(json) as AuditEvent);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.fanout.closeAll();
    this.db.close();
    this.ownerLock?.release();
  }

  /** Deletes expired items and tells watchers. Runs on the sweeper timer; exposed for tests. */
  sweep(): void {
    if (this.closed) return;
    this.commit((now, changes) => {
      const keys = this.s.expiredKeys.all({ now }) as string[];
      if (keys.length === 0) return;
      this.s.deleteExpired.run({ now });
      for (const key of keys) changes.push({ type: 'delete', key });
    });
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private inTx<T>(fn: () => T): T {
    return this.txn.immediate(fn) as T;
  }

  /** Runs `fn` in one write transaction and hands its changes to watchers only after COMMIT. */
  private commit<T>(fn: (now: number, changes: Change[]) => T): T {
    const changes: Change[] = [];
    const result = this.run(() => this.inTx(() => fn(this.now(), changes)));
    this.fanout.emit(changes);
    return result;
  }

  /** Writes `item` with a fresh revision through `stmt`; undefined when the statement matched no row. */
  private write(
    stmt: Database.Statement,
    item: ItemInput,
    expires: number | null,
    changes: Change[],
    extra: Record<string, unknown> = {},
  ): Item | undefined {
    const revision = this.s.nextRevision.get() as number;
    const info = stmt.run({ key: item.key, value: item.value, revision, expires, ...extra });
    if (info.changes === 0) return undefined;
    const written = toItem({ key: item.key, value: item.value, revision, expires });
    changes.push({ type: 'put', item: written });
    return written;
  }

  /** Turns SQLite failures (disk full, busy past the timeout, closed handle) into one-line errors. */
  private run<T>(fn: () => T): T {
    if (this.closed) throw new ConnectionProblem(`SQLite database ${this.path} is closed`);
    try {
      return fn();
    } catch (err) {
      if (isWardError(err)) throw err;
      const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
      throw new ConnectionProblem(`SQLite database ${this.path}: ${reason}`);
    }
  }
}
