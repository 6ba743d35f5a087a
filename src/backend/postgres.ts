// Storage for highly available auth: several auth servers share one PostgreSQL database. Each write
// appends to an event log (item_events) in the same transaction; every instance tails that log
// (pgtail.ts) and fans the events out to its own watchers.

import pg from 'pg';
import {
  AlreadyExists,
  BadParameter,
  CompareFailed,
  ConnectionProblem,
  NotFound,
  StorageUnavailable,
  isWardError,
} from '../api/errors.ts';
import { systemClock, type Clock } from '../time/clock.ts';
import type { AuditEvent, Backend, EventQuery, EventStore, Item, ItemInput, Watcher } from './backend.ts';
import { CHANNEL, EventLogTail, itemFromRow as toItem, type ItemRow as Row } from './pgtail.ts';
import { auditFilter, auditRow, checkExpires, checkItem, checkKey, rangeLimit } from './validate.ts';

export interface PostgresOptions {
  connString: string;
  clock?: Clock;
  /** Safety-net poll of the event log when no NOTIFY arrives. Default 1s. */
  pollIntervalMs?: number;
  /** How often expired items are deleted (and their delete events written). Default 1s. */
  sweepIntervalMs?: number;
  /** Events a watcher may fall behind before it is closed. Default 10,000. */
  watchBufferSize?: number;
  poolSize?: number;
}

const PRUNE_INTERVAL_MS = 60_000;
// Kept long enough for any instance to catch up after a pause; an instance that falls further
// behind has already failed its watchers (a failed poll closes them) and starts over from "now".
const EVENT_LOG_RETENTION = '10 minutes';

// Why every write takes one transaction-level advisory lock: event ids come from a sequence, and
// sequence values are handed out at INSERT time, not at COMMIT. Without the lock, id 7 could commit
// before id 6; a poller that saw 7 would move past 6 and never deliver it. Holding the lock from
// before the insert until commit makes ids commit in id order, so "WHERE id > last_seen ORDER BY id"
// misses nothing. It serializes writes across all auth servers, which the auth write rate allows.
const WRITE_LOCK = `pg_advisory_xact_lock(hashtext('ward/items'))`;
// CREATE ... IF NOT EXISTS is not safe against a concurrent identical CREATE (duplicate pg_type
// row), so auth servers starting together migrate one at a time.
const MIGRATE_LOCK = `pg_advisory_xact_lock(hashtext('ward/migrate'))`;

const SCHEMA = `
CREATE SEQUENCE IF NOT EXISTS item_revisions;
CREATE TABLE IF NOT EXISTS items (
  key text COLLATE "C" PRIMARY KEY, value text NOT NULL, revision bigint NOT NULL, expires bigint
);
CREATE INDEX IF NOT EXISTS items_expires ON items (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS item_events (
  id bigserial PRIMARY KEY, key text NOT NULL, type text NOT NULL, value text, revision bigint, expires bigint,
  created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS item_events_created ON item_events (created);
CREATE TABLE IF NOT EXISTS audit_events (
  id bigserial PRIMARY KEY, time bigint NOT NULL, event text NOT NULL, "user" text, sid text, json text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time);
CREATE INDEX IF NOT EXISTS audit_events_event_time ON audit_events (event, time);
CREATE INDEX IF NOT EXISTS audit_events_user_time ON audit_events ("user", time);
CREATE INDEX IF NOT EXISTS audit_events_sid ON audit_events (sid);
`;

/** The row is visible: not expired at the clock time bound to parameter $n. */
const live = (n: number) => `(expires IS NULL OR expires > $${n})`;
const COLUMNS = 'key, value, revision::text AS revision, expires';
/** Wraps a statement returning written rows so the same statement also logs them as put events. */
const LOG_PUTS = (write: string) =>
  `WITH w AS (${write} RETURNING key, value, revision, expires)
   INSERT INTO item_events (key, type, value, revision, expires) SELECT key, 'put', value, revision, expires FROM w
   RETURNING ${COLUMNS}`;
/** Same for deletions; ORDER BY makes a range delete log its keys in key order. */
const LOG_DELETES = (del: string) =>
  `WITH d AS (${del} RETURNING key) INSERT INTO item_events (key, type) SELECT key, 'delete' FROM d ORDER BY key ` +
  `RETURNING key`;
const UPSERT = `INSERT INTO items (key, value, revision, expires) VALUES ($1, $2, nextval('item_revisions'), $3)
  ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, expires = excluded.expires`;

/** A LIKE pattern matching exactly the keys that start with `prefix`. */
function likePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw new BadParameter('prefix must be a string');
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Failures that mean the database cannot be reached or will not let Ward in: the address (refused, no such
 * host, no route) or the credentials (SQLSTATE class 28, invalid authorization, e.g. a wrong password).
 */
const UNREACHABLE_ERRNOS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
function isUnreachable(code: string): boolean {
  return UNREACHABLE_ERRNOS.has(code) || code.startsWith('28');
}

/** host:port/database from a connection string, never its password. */
function describeTarget(connString: string): string {
  try {
    const u = new URL(connString);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'the configured database';
  }
}

export class PostgresBackend implements Backend, EventStore {
  readonly kind = 'postgres';
  private readonly tail: EventLogTail;
  private readonly target: string;
  private readonly timers: NodeJS.Timeout[] = [];
  private sweeping = false;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    opts: PostgresOptions,
    private readonly clock: Clock,
  ) {
    this.target = describeTarget(opts.connString);
    this.tail = new EventLogTail(pool, opts.connString, (err) => this.mapError(err), opts.watchBufferSize);
  }

  /** Connects, creates the schema if needed and starts tailing the event log; throws ConnectionProblem. */
  static async open(opts: PostgresOptions): Promise<PostgresBackend> {
    const pool = new pg.Pool({
      connectionString: opts.connString,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      // Bound every wait, including the write lock, and free the lock if a client stalls mid-transaction.
      statement_timeout: 30_000,
      idle_in_transaction_session_timeout: 30_000,
      application_name: 'ward-auth',
    });
    // An idle client that loses its connection is dropped by the pool; the next query reconnects.
    pool.on('error', () => {});
    const b = new PostgresBackend(pool, opts, opts.clock ?? systemClock);
    try {
      await b.inTransaction(MIGRATE_LOCK, async (c) => void (await c.query(SCHEMA)));
      await b.tail.start(opts.pollIntervalMs ?? 1_000);
    } catch (err) {
      b.closed = true;
      await b.tail.close(); // also stops the listener's reconnect timer
      await pool.end().catch(() => {});
      throw b.mapError(err);
    }
    b.every(opts.sweepIntervalMs ?? 1_000, () => b.sweep());
    const prune = `DELETE FROM item_events WHERE created < now() - interval '${EVENT_LOG_RETENTION}'`;
    b.every(PRUNE_INTERVAL_MS, () => b.pool.query(prune).catch(() => {})); // retried next interval
    return b;
  }

  async get(key: string): Promise<Item> {
    checkKey(key);
    const rows = await this.query<Row>(`SELECT ${COLUMNS} FROM items WHERE key = $1 AND ${live(2)}`, [key, this.now()]);
    if (!rows[0]) throw new NotFound(`${key} not found`);
    return toItem(rows[0]);
  }

  async getRange(prefix: string, limit?: number, after?: string): Promise<Item[]> {
    const n = rangeLimit(limit);
    if (after !== undefined && typeof after !== 'string') throw new BadParameter('after must be a string');
    // key is COLLATE "C": ">" is byte order, the same order as ORDER BY key and as SQLite's.
    const rows = await this.query<Row>(
      `SELECT ${COLUMNS} FROM items WHERE key LIKE $1 ESCAPE '\\' AND ${live(2)} AND ($4::text IS NULL OR key > ` +
        `$4) ORDER BY key LIMIT $3`,
      [likePrefix(prefix), this.now(), n, after ?? null],
    );
    return rows.map(toItem);
  }

  async create(item: ItemInput): Promise<Item> {
    const expires = checkItem(item);
    // The conflict branch only fires for an expired row, which create may replace.
    const sql = LOG_PUTS(`${UPSERT} WHERE items.expires IS NOT NULL AND items.expires <= $4`);
    const rows = await this.write((c) => this.run<Row>(c, sql, [item.key, item.value, expires, this.now()]));
    if (!rows[0]) throw new AlreadyExists(`${item.key} already exists`);
    return toItem(rows[0]);
  }

  async put(item: ItemInput): Promise<Item> {
    const expires = checkItem(item);
    const rows = await this.write((c) => this.run<Row>(c, LOG_PUTS(UPSERT), [item.key, item.value, expires]));
    return toItem(rows[0]!);
  }

  async update(item: ItemInput): Promise<Item> {
    const expires = checkItem(item);
    const sql = LOG_PUTS(
      `UPDATE items SET value = $2, revision = nextval('item_revisions'), expires = $3 WHERE key = $1 AND ${live(4)}`,
    );
    const rows = await this.write((c) => this.run<Row>(c, sql, [item.key, item.value, expires, this.now()]));
    if (!rows[0]) throw new NotFound(`${item.key} not found`);
    return toItem(rows[0]);
  }

  async compareAndSwap(expected: Pick<Item, 'key' | 'value'>, replaceWith: ItemInput): Promise<Item> {
    const expires = checkItem(replaceWith);
    if (expected.key !== replaceWith.key) throw new BadParameter('compareAndSwap cannot change the key');
    // The value test sits in the UPDATE itself: PostgreSQL re-checks it on the locked row, so two
    // instances swapping from the same value cannot both succeed, with or without the write lock.
    const sql = LOG_PUTS(
      `UPDATE items SET value = $2, revision = nextval('item_revisions'), expires = $3
       WHERE key = $1 AND value = $5 AND ${live(4)}`,
    );
    const row = await this.write(async (c) => {
      const now = this.now();
      const rows = await this.run<Row>(c, sql, [replaceWith.key, replaceWith.value, expires, now, expected.value]);
      if (rows[0]) return rows[0];
      const found = await this.run(c, `SELECT 1 FROM items WHERE key = $1 AND ${live(2)}`, [expected.key, now]);
      throw found.length > 0
        ? new CompareFailed(`${expected.key} has changed`)
        : new NotFound(`${expected.key} not found`);
    });
    return toItem(row);
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    const sql = LOG_DELETES(`DELETE FROM items WHERE key = $1 AND ${live(2)}`);
    const rows = await this.write((c) => this.run(c, sql, [key, this.now()]));
    if (rows.length === 0) throw new NotFound(`${key} not found`);
  }

  async deleteRange(prefix: string): Promise<void> {
    // Expired rows in the range go too, with delete events: watchers saw their put, not yet their end.
    const sql = LOG_DELETES(`DELETE FROM items WHERE key LIKE $1 ESCAPE '\\'`);
    await this.write((c) => this.run(c, sql, [likePrefix(prefix)]));
  }

  async keepAlive(key: string, expires: Date): Promise<void> {
    checkKey(key);
    const ms = checkExpires(key, expires);
    // A put event, so caches move the expiry too instead of dropping a live heartbeat.
    const sql = LOG_PUTS(
      `UPDATE items SET expires = $2, revision = nextval('item_revisions') WHERE key = $1 AND ${live(3)}`,
    );
    const rows = await this.write((c) => this.run(c, sql, [key, ms, this.now()]));
    if (rows.length === 0) throw new NotFound(`${key} not found`);
  }

  watch(prefixes: string[]): Watcher {
    if (this.closed) throw new ConnectionProblem(`PostgreSQL ${this.target}: backend is closed`);
    if (!Array.isArray(prefixes) || prefixes.some((p) => typeof p !== 'string')) {
      throw new BadParameter('watch prefixes must be strings');
    }
    return this.tail.watch(prefixes);
  }

  async append(events: AuditEvent[]): Promise<void> {
    const rows = events.map(auditRow);
    if (rows.length === 0) return;
    await this.query(
      `INSERT INTO audit_events (time, event, "user", sid, json)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])`,
      [
        rows.map((r) => r.time),
        rows.map((r) => r.event),
        rows.map((r) => r.user),
        rows.map((r) => r.sid),
        rows.map((r) => r.json),
      ],
    );
  }

  async search(query: EventQuery): Promise<AuditEvent[]> {
    const f = auditFilter(query);
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (cond: string, value: unknown) => (
      params.push(value), where.push(cond.replace('?', `$${params.length}`))
    );
    if (f.from !== null) add('time >= ?', f.from);
    if (f.to !== null) add('time < ?', f.to);
    if (f.user !== null) add('"user" = ?', f.user);
    if (f.sid !== null) add('sid = ?', f.sid);
    if (f.types !== null) add('event = ANY(?::text[])', f.types);
    params.push(f.limit);
    const dir = f.desc ? 'DESC' : 'ASC';
    const rows = await this.query<{ json: string }>(
      `SELECT json FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY time ${dir}, id ${dir} LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => JSON.parse(r.json) as AuditEvent);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.tail.close();
    await this.pool.end().catch(() => {});
  }

  private every(ms: number, fn: () => unknown): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private async sweep(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      const now = this.now();
      // Check without the write lock first: most sweeps find nothing and should not serialize writers.
      const due = await this.pool.query('SELECT 1 FROM items WHERE expires <= $1 LIMIT 1', [now]);
      if (due.rowCount === 0) return;
      await this.write((c) => c.query(LOG_DELETES('DELETE FROM items WHERE expires <= $1'), [now]));
    } catch {
      // Retried on the next tick; expired items are already invisible to reads.
    } finally {
      this.sweeping = false;
    }
  }

  /** A write transaction: takes the write lock, and NOTIFYs the tailing instances on commit. */
  private write<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.inTransaction(WRITE_LOCK, fn, `NOTIFY ${CHANNEL}; `);
  }

  private async inTransaction<T>(lock: string, fn: (c: pg.PoolClient) => Promise<T>, beforeCommit = ''): Promise<T> {
    if (this.closed) throw new ConnectionProblem(`PostgreSQL ${this.target}: backend is closed`);
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw this.mapError(err);
    }
    let broken = false;
    try {
      await c.query(`BEGIN; SELECT ${lock}`);
      const result = await fn(c);
      await c.query(`${beforeCommit}COMMIT`);
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => (broken = true));
      throw this.mapError(err);
    } finally {
      c.release(broken);
    }
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private async run<R extends pg.QueryResultRow = pg.QueryResultRow>(
    c: pg.Pool | pg.PoolClient,
    sql: string,
    params: unknown[],
  ): Promise<R[]> {
    return (await c.query<R>(sql, params)).rows;
  }

  private async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    if (this.closed) throw new ConnectionProblem(`PostgreSQL ${this.target}: backend is closed`);
    try {
      return await this.run<R>(this.pool, sql, params);
    } catch (err) {
      throw this.mapError(err);
    }
  }

  /**
   * One-line errors for callers. Invalid data (SQLSTATE class 22) is the caller's fault; a database that
   * cannot be reached or refuses Ward's credentials is StorageUnavailable; anything else from the driver or
   * server (reset, timed out, shutting down) means the database is not usable right now.
   */
  private mapError(err: unknown): Error {
    if (isWardError(err)) return err;
    const e = err as { message?: string; code?: string };
    const reason = (e.message || e.code || 'connection failed').split('\n')[0];
    if (typeof e.code === 'string' && e.code.startsWith('22'))
      return new BadParameter(`PostgreSQL ${this.target}: ${reason}`);
    if (typeof e.code === 'string' && isUnreachable(e.code)) {
      return new StorageUnavailable(`PostgreSQL ${this.target}: ${reason}`);
    }
    return new ConnectionProblem(`PostgreSQL ${this.target}: ${reason}`);
  }
}
