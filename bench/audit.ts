// Audit ingest rate through EventStore.append, on SQLite (temp file) and PostgreSQL (throwaway server),
// one event per call and 100 per call, against the same rows written with the driver directly:
// better-sqlite3 (prepared INSERT, one transaction per call) and pg (one multi-row INSERT per call).
// Both sides write into identical tables (same columns and indexes), sequentially, one call at a time.
// Run alone: node --import tsx bench/audit.ts [--seconds 1.5]
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startPostgres } from '../test/fixtures/postgres.ts';
import type { AuditEvent, EventStore } from '../src/backend/backend.ts';
import { PostgresBackend } from '../src/backend/postgres.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { result, type BenchResult } from './result.ts';

export interface AuditOptions {
  /** Seconds per measured case (8 cases). */
  seconds: number;
}

const BATCH = 100;
const TABLE = `(
  id INTEGER PRIMARY KEY, time INTEGER NOT NULL, event TEXT NOT NULL, "user" TEXT, sid TEXT, json TEXT NOT NULL
)`;
const INDEXES = (table: string) => `
CREATE INDEX ${table}_time ON ${table} (time);
CREATE INDEX ${table}_event_time ON ${table} (event, time);
CREATE INDEX ${table}_user_time ON ${table} ("user", time);
CREATE INDEX ${table}_sid ON ${table} (sid);`;

/** A session.start event as the node service writes it: ~300 bytes of JSON. */
function sessionStart(i: number): AuditEvent {
  return {
    event: 'session.start',
    code: 'WS2000I',
    time: new Date(Date.UTC(2025, 0, 1) + i).toISOString(),
    uid: randomUUID(),
    cluster: 'prod.example.com',
    user: `user${i % 50}@example.com`,
    login: 'ubuntu',
    server_id: '5f0c1e62-8d0b-4c47-9d1e-b2f1c7a0e3aa',
    server_hostname: `web-${i % 20}.prod`,
    sid: randomUUID(),
    remote_addr: '203.0.113.44:53122',
  };
}

interface Row {
  time: number;
  event: string;
  user: string | null;
  sid: string | null;
  json: string;
}

const toRow = (e: AuditEvent): Row => ({
  time: Date.parse(e.time),
  event: e.event,
  user: e.user ?? null,
  sid: (e.sid as string) ?? null,
  json: JSON.stringify(e),
});

/**
 * Calls `write(batch)` over consecutive batches of `size` (wrapping around `items`, so rows repeat; the
 * tables have no unique column besides the generated id) until `seconds` pass; returns items/s.
 */
async function rate<T>(items: T[], size: number, seconds: number, write: (batch: T[]) => unknown): Promise<number> {
  const batches = Array.from({ length: Math.floor(items.length / size) }, (_, i) =>
    items.slice(i * size, (i + 1) * size),
  );
  let done = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  for (let i = 0; performance.now() < deadline; i++) {
    await write(batches[i % batches.length]!);
    done += size;
  }
  return done / ((performance.now() - start) / 1000);
}

async function benchStore(
  store: EventStore,
  reference: (batch: Row[]) => unknown,
  events: AuditEvent[],
  seconds: number,
): Promise<{ single: [number, number]; batch: [number, number] }> {
  const rows = events.map(toRow);
  // Warm up both paths (statement caches, JIT) on rows the timed runs do not reuse.
  await rate(events.slice(-500), 1, 0.2, (b) => store.append(b));
  await rate(rows.slice(-500), 1, 0.2, reference);
  const half = events.length / 2;
  return {
    single: [
      await rate(events.slice(0, half), 1, seconds, (b) => store.append(b)),
      await rate(rows.slice(0, half), 1, seconds, reference),
    ],
    batch: [
      await rate(events.slice(half), BATCH, seconds, (b) => store.append(b)),
      await rate(rows.slice(half), BATCH, seconds, reference),
    ],
  };
}

export async function benchAudit(opts: AuditOptions): Promise<BenchResult[]> {
  const events = Array.from({ length: 40_000 }, (_, i) => sessionStart(i));
  const bytes = Math.round(events.slice(0, 100).reduce((n, e) => n + JSON.stringify(e).length, 0) / 100);
  const out: BenchResult[] = [];
  const record = (backend: string, r: Awaited<ReturnType<typeof benchStore>>, ref: string) => {
    const note = `~${bytes}-byte session.start events; reference = ${ref}`;
    out.push(result(`audit append, ${backend}, 1 event/call`, r.single[0], r.single[1], 'events/s', note));
    out.push(result(`audit append, ${backend}, ${BATCH} events/call`, r.batch[0], r.batch[1], 'events/s', note));
    console.log(
      `audit ${backend}: single ${r.single[0].toFixed(0)} vs ${r.single[1].toFixed(0)} events/s, ` +
        `batch ${r.batch[0].toFixed(0)} vs ${r.batch[1].toFixed(0)} events/s (ward vs reference)`,
    );
  };

  // SQLite: Ward's backend and the reference each get their own file with the same pragmas.
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-audit-'));
  try {
    const ward = SqliteBackend.open({ path: join(dir, 'ward.db') });
    const db = new Database(join(dir, 'ref.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE audit_events ${TABLE}; ${INDEXES('audit_events')}`);
    const insert = db.prepare(
      `INSERT INTO audit_events (time, event, "user", sid, json) VALUES (@time, @event, @user, @sid, @json)`,
    );
    const insertAll = db.transaction((batch: Row[]) => {
      for (const r of batch) insert.run(r);
    });
    try {
      record(
        'SQLite',
        await benchStore(ward, (b) => insertAll.immediate(b), events, opts.seconds),
        'better-sqlite3 prepared INSERT of pre-serialised rows, one transaction per call',
      );
    } finally {
      await ward.close();
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // PostgreSQL: one throwaway server (fsync off, as in the test fixture), Ward and the reference in
  // separate databases.
  const server = await startPostgres();
  try {
    const admin = new pg.Client({ connectionString: server.connString });
    await admin.connect();
    await admin.query('CREATE DATABASE ward_bench');
    await admin.query('CREATE DATABASE ref_bench');
    await admin.end();
    const url = (db: string) => server.connString.replace(/\/postgres$/, `/${db}`);
    const ward = await PostgresBackend.open({ connString: url('ward_bench') });
    const client = new pg.Client({ connectionString: url('ref_bench') });
    await client.connect();
    await client.query(
      `CREATE TABLE audit_events (id bigserial PRIMARY KEY, time bigint NOT NULL, event text NOT NULL,
         "user" text, sid text, json text NOT NULL);
       ${INDEXES('audit_events')}`,
    );
    const insert = (batch: Row[]) => {
      const values = batch
        .map((_, i) => `($${i * 5 + 1}, $${i * 5 + 2}, $${i * 5 + 3}, $${i * 5 + 4}, $${i * 5 + 5})`)
        .join(', ');
      return client.query(
        `INSERT INTO audit_events (time, event, "user", sid, json) VALUES ${values}`,
        batch.flatMap((r) => [r.time, r.event, r.user, r.sid, r.json]),
      );
    };
    try {
      record(
        'PostgreSQL',
        await benchStore(ward, insert, events, opts.seconds),
        'pg multi-row INSERT ... VALUES of pre-serialised rows, one statement per call',
      );
    } finally {
      await ward.close();
      await client.end();
    }
  } finally {
    await server.stop();
  }
  return out;
}

export function auditOptions(argv: string[]): AuditOptions {
  const { values } = parseArgs({ args: argv, strict: false, options: { seconds: { type: 'string' } } });
  return { seconds: Number(values.seconds ?? 1.5) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { printTable } = await import('./result.ts');
  printTable(await benchAudit(auditOptions(process.argv.slice(2))));
}
