import pg from 'pg';
import { startPostgres } from './fixtures/postgres.ts';
import { PostgresBackend } from '../src/backend/postgres.ts';
const s = await startPostgres();
const admin = new pg.Client({ connectionString: s.connString }); await admin.connect();
await admin.query('CREATE SCHEMA x');
const url = new URL(s.connString); url.searchParams.set('options', '-c search_path=x');
const cs = url.toString();
const clients = await Promise.all([0,1,2].map(() => PostgresBackend.open({ connString: cs, pollIntervalMs: 200, sweepIntervalMs: 100 })));
const it = clients[0]!.watch(['/cw/'])[Symbol.asyncIterator]();
console.log((await it.next()).value);
await Promise.all(Array.from({ length: 6 }, async (_, w) => { for (let i = 1; i <= 40; i++) await clients[w % 3]!.put({ key: `/cw/${w}`, value: `${i}` }); }));
let last = 0n; const out: string[] = [];
for (let n = 0; n < 240; n++) { const ev = (await it.next()).value as any; const r = BigInt(ev.item.revision); if (r <= last) out.push(`BAD ${n} ${ev.item.key}=${ev.item.value} rev ${r} after ${last}`); last = r; }
console.log(out.slice(0, 10));
console.log((await admin.query('select id, key, value, revision from x.item_events order by id limit 5 offset 0')).rows);
const bad = await admin.query('select a.id, a.revision, b.id as bid, b.revision as brev from x.item_events a join x.item_events b on b.id = a.id + 1 where b.revision < a.revision limit 5');
console.log(bad.rows);
await admin.end(); await Promise.all(clients.map(c => c.close())); await s.stop();
