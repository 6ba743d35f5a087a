// Tails PostgreSQL's item_events log for one auth server and feeds its watchers. NOTIFY only makes
// delivery prompt; correctness comes from reading "WHERE id > last_seen ORDER BY id", which is
// complete because writers commit event ids in id order (see WRITE_LOCK in postgres.ts).

import pg from 'pg';
import type { Item, Watcher } from './backend.ts';
import { WatchFanout, type BufferedWatcher, type Change } from './fanout.ts';

export const CHANNEL = 'ward_items';
const POLL_BATCH = 1_000;
const LISTEN_RETRY_MS = 1_000;

export interface ItemRow {
  key: string;
  value: string;
  revision: string;
  expires: string | null;
}

interface EventRow {
  id: string;
  key: string;
  type: string;
  value: string | null;
  revision: string | null;
  expires: string | null;
}

/** bigint columns arrive as strings from pg: the revision stays one, the expiry becomes a Date. */
export function itemFromRow(row: ItemRow): Item {
  const item: Item = { key: row.key, value: row.value, revision: row.revision };
  if (row.expires !== null) item.expires = new Date(Number(row.expires));
  return item;
}

function changeFromRow(row: EventRow): Change {
  if (row.type === 'delete') return { type: 'delete', key: row.key };
  const item = itemFromRow({
    key: row.key,
    value: row.value ?? '',
    revision: row.revision ?? '',
    expires: row.expires,
  });
  return { type: 'put', item };
}

export class EventLogTail {
  private readonly fanout: WatchFanout;
  private pending: BufferedWatcher[] = [];
  private lastSeen = 0n;
  private polling = false;
  private pollAgain = false;
  private listener: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly connString: string,
    private readonly toError: (err: unknown) => Error,
    watchBufferSize: number | undefined,
  ) {
    this.fanout = new WatchFanout(watchBufferSize);
  }

  /** Starts at the current end of the log; rejects if the database cannot be reached. */
  async start(pollIntervalMs: number): Promise<void> {
    this.lastSeen = await this.maxId();
    await this.listen();
    this.timer = setInterval(() => this.requestPoll(), pollIntervalMs);
    this.timer.unref();
  }

  watch(prefixes: string[]): Watcher {
    // 'init' is sent only after a poll that started after this call: from then on, every event
    // not yet delivered has an id above last_seen, so the caller's read of current state misses nothing.
    const w = this.fanout.create(prefixes);
    this.pending.push(w);
    this.requestPoll();
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.fanout.closeAll();
    for (const w of this.pending.splice(0)) w.close();
    await this.listener?.end().catch(() => {});
  }

  private async maxId(): Promise<bigint> {
    const { rows } = await this.pool.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM item_events');
    return BigInt(rows[0]!.id);
  }

  /** Starts a poll, or asks the running one to go again, so polls never overlap. */
  private requestPoll(): void {
    if (this.closed) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    void (async () => {
      try {
        do {
          this.pollAgain = false;
          await this.poll();
        } while (this.pollAgain && !this.closed);
      } finally {
        this.polling = false;
      }
    })();
  }

  private async poll(): Promise<void> {
    const joining = this.pending.splice(0);
    try {
      if (this.fanout.size === 0) {
        // Nobody to deliver to: skip the backlog. Joining watchers only need events after this point.
        const max = await this.maxId();
        if (max > this.lastSeen) this.lastSeen = max;
      } else {
        for (;;) {
          // Qualified: a bare `id` in ORDER BY would mean the text alias and sort '100' before '99'.
          const { rows } = await this.pool.query<EventRow>(
            `SELECT id::text AS id, key, type, value, revision::text AS revision, expires
             FROM item_events WHERE item_events.id > $1 ORDER BY item_events.id LIMIT ${POLL_BATCH}`,
            [this.lastSeen.toString()],
          );
          if (this.closed) return;
          if (rows.length > 0) this.lastSeen = BigInt(rows[rows.length - 1]!.id);
          this.fanout.emit(rows.map(changeFromRow));
          if (rows.length < POLL_BATCH) break;
        }
      }
      for (const w of joining) this.fanout.attach(w);
    } catch (err) {
      if (this.closed) return;
      // Watchers cannot tell what they missed, so they end; their owners re-watch and re-read.
      const problem = this.toError(err);
      this.fanout.closeAll(problem);
      for (const w of joining) w.fail(problem);
    }
  }

  /** Keeps one dedicated LISTEN connection; reconnects after a loss, polling covers the gap. */
  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.connString,
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
    });
    let lost = false;
    const onLost = () => {
      if (lost) return;
      lost = true;
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => {});
      if (this.closed) return;
      setTimeout(() => void this.listen().catch(() => {}), LISTEN_RETRY_MS).unref();
    };
    client.on('error', onLost);
    client.on('end', onLost);
    client.on('notification', () => this.requestPoll());
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      onLost();
      throw err;
    }
    if (this.closed) return void client.end().catch(() => {});
    this.listener = client;
    this.requestPoll(); // a NOTIFY sent while we were not listening is not replayed
  }
}
